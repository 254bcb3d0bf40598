"""One resolution of the estate file for DAG files, API server and CLI."""

from pathlib import Path

from stella_operators.settings import estate_path


def test_stella_estate_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("STELLA_ESTATE", str(tmp_path / "mine.yaml"))
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", "/somewhere/dags")
    assert estate_path() == tmp_path / "mine.yaml"


def test_default_is_include_beside_the_dags_folder(monkeypatch):
    monkeypatch.delenv("STELLA_ESTATE", raising=False)
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", "/opt/airflow/dags")
    assert estate_path() == Path("/opt/airflow/include/estate.yaml")


def test_default_dags_folder_is_airflow_homes(monkeypatch):
    monkeypatch.delenv("STELLA_ESTATE", raising=False)
    monkeypatch.delenv("AIRFLOW__CORE__DAGS_FOLDER", raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", "/usr/local/airflow")
    assert estate_path() == Path("/usr/local/airflow/include/estate.yaml")


def test_cli_and_api_use_the_same_resolution(monkeypatch, tmp_path):
    from stella_operators.api import app as api
    from stella_operators.cli.main import build_parser

    estate = tmp_path / "estate.yaml"
    estate.write_text(Path(__file__).resolve().parents[2].joinpath("include", "estate.yaml").read_text())
    monkeypatch.delenv("STELLA_ESTATE", raising=False)
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path / "dags"))
    (tmp_path / "include").mkdir()
    estate.rename(tmp_path / "include" / "estate.yaml")
    assert build_parser().parse_args(["validate"]).file == str(tmp_path / "include" / "estate.yaml")
    assert build_parser().parse_args(["status"]).estate == str(tmp_path / "include" / "estate.yaml")
    assert api._estate().apps  # read from the same file
