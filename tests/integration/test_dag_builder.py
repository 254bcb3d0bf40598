"""Generated DAGs parsed by a real DagBag; trigger forms validated by the real REST API."""

import textwrap
from datetime import UTC
from pathlib import Path

import pytest

from stella_operators.dag_builder import drift_dag_id, promote_dag_id, release_dag_id, rollback_dag_id
from stella_operators.dag_builder.audit_dag import AUDIT_CHECKPOINT_DAG_ID

ROOT = Path(__file__).resolve().parents[2]


def estate_text(auto: bool = False) -> str:
    return textwrap.dedent(f"""
        registries: [{{host: "reg.local:5000", scheme: http}}]
        apps:
          - name: shop
            components:
              - {{name: web, repository: reg.local:5000/demo/web}}
              - {{name: api, repository: reg.local:5000/demo/api}}
        environments:
          - name: dev
            targets: [{{name: dev-1, type: docker, connection: c_dev}}]
          - name: stage
            auto_promote: {str(auto).lower()}
            targets: [{{name: stage-1, type: docker, connection: c_stage}}]
    """)


def dag_file(folder: Path, name: str, estate: Path) -> Path:
    f = folder / f"{name}.py"
    f.write_text("from airflow.sdk import DAG  # noqa\n"
                 "from stella_operators.dag_builder import build_estate_dags\n"
                 f"globals().update(build_estate_dags({str(estate)!r}))\n")
    return f


@pytest.fixture()
def folder(tmp_path):
    d = tmp_path / "dags"
    d.mkdir()
    return d


def parse(folder):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(folder))


def test_generated_dags_shape(folder, tmp_path, monkeypatch):
    estate = tmp_path / "estate.yaml"
    estate.write_text(estate_text(auto=True))
    monkeypatch.setenv("STELLA_HOME", str(tmp_path / "stella-home"))
    dag_file(folder, "shop_estate", estate)
    bag = parse(folder)
    assert bag.import_errors == {}
    assert sorted(bag.dags) == sorted([promote_dag_id("shop", "dev"), promote_dag_id("shop", "stage"),
                                       release_dag_id("shop"), rollback_dag_id("shop", "dev"),
                                       rollback_dag_id("shop", "stage"), drift_dag_id("shop", "dev"),
                                       drift_dag_id("shop", "stage"), AUDIT_CHECKPOINT_DAG_ID])
    release = bag.dags[release_dag_id("shop")]
    assert set(release.params.keys()) == {"name", "web", "api", "source_commit"}
    dev = bag.dags[promote_dag_id("shop", "dev")]
    assert [t.task_id for t in dev.tasks] == ["request", "gates", "approval", "deploy", "verify"]
    assert dev.max_active_runs == 16 and type(dev.timetable).__name__ == "NullTimetable"
    stage = bag.dags[promote_dag_id("shop", "stage")]
    # auto_promote: stage is scheduled on dev's "verified" Asset
    assert "x-stella://shop/dev" in str(stage.timetable.asset_condition)
    outlets = dev.get_task("verify").outlets
    assert [o.uri for o in outlets] == ["x-stella://shop/dev"]
    # parsing did no ledger I/O: no ledger file, no key was created (only the parsed-estate cache)
    assert [p.name for p in (tmp_path / "stella-home").iterdir()] == ["cache"]


def test_broken_estate_is_an_import_error_of_its_own_file_only(folder, tmp_path):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(estate_text())
    bad.write_text(estate_text().replace("name: shop", "name: other").replace("connection: c_stage", "connexion: c"))
    dag_file(folder, "good_estate", good)
    bad_file = dag_file(folder, "bad_estate", bad)
    (folder / "unrelated.py").write_text(textwrap.dedent("""
        from datetime import datetime
        from airflow.sdk import DAG
        with DAG("unrelated", schedule=None, start_date=datetime(2026, 1, 1)):
            pass
    """))
    bag = parse(folder)
    assert set(bag.import_errors) == {str(bad_file)}
    err = bag.import_errors[str(bad_file)]
    assert f"{bad}:" in err and "environments[1].targets[0].connexion: unknown key 'connexion'" in err
    assert "did you mean 'connection'?" in err
    assert {"unrelated", release_dag_id("shop"), promote_dag_id("shop", "dev")} <= set(bag.dags)


def test_trigger_form_is_validated_by_the_rest_api(airflow_api):
    """The UI's trigger form and the REST API both validate params; bad input is refused, nothing runs."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    airflow_api.sync_dags(bag)
    dag_id = promote_dag_id("shop", "dev")
    url = f"/api/v2/dags/{dag_id}/dagRuns"
    r = airflow_api.request("POST", url, user="alice",
                            json={"logical_date": None, "conf": {"release": "shop 1.0; rm -rf /", "reason": "why not"}})
    assert r.status_code == 400, r.text
    assert "release" in r.text
    r = airflow_api.request("POST", url, user="alice", json={"logical_date": None, "conf": {"release": "shop-1.0.0"}})
    assert r.status_code == 400 and "reason" in r.text
    r = airflow_api.request("POST", url, user="alice",
                            json={"logical_date": None, "conf": {"release": "shop-1.0.0", "reason": "first deploy"}})
    assert r.status_code == 200, r.text
    assert r.json()["conf"] == {"release": "shop-1.0.0", "reason": "first deploy"}
    runs = airflow_api.request("GET", url, user="alice").json()["dag_runs"]
    assert len(runs) == 1
    # a viewer may not trigger a promotion
    r = airflow_api.request("POST", url, user="vera",
                            json={"logical_date": None, "conf": {"release": "shop-1.0.0", "reason": "viewer"}})
    assert r.status_code == 403


def test_scheduled_promotion_uses_a_freeze_aware_timetable(folder, tmp_path):
    estate = tmp_path / "estate.yaml"
    estate.write_text(estate_text().replace("    auto_promote: false\n", textwrap.indent(textwrap.dedent("""
        schedule: {cron: "0 9 * * *", timezone: Europe/Berlin}
        gates:
          - type: freeze
            windows:
              - {name: xmas, kind: deny, timezone: Europe/Berlin,
                 start: "2026-12-24T00:00:00", end: "2026-12-27T00:00:00"}
    """), "    ")))
    dag_file(folder, "sched", estate)
    bag = parse(folder)
    assert bag.import_errors == {}
    stage = bag.dags[promote_dag_id("shop", "stage")]
    assert type(stage.timetable).__name__ == "FreezeAwareCronTimetable"
    from datetime import datetime

    from airflow.timetables.base import DataInterval, TimeRestriction

    last = datetime(2026, 12, 23, 8, 0, tzinfo=UTC)  # 09:00 Berlin on the 23rd
    nxt = stage.timetable.next_dagrun_info(last_automated_data_interval=DataInterval(last, last),
                                           restriction=TimeRestriction(None, None, catchup=True))
    assert nxt.run_after == datetime(2026, 12, 27, 8, 0, tzinfo=UTC)  # the 24th..26th are frozen
    assert stage.params["release"] is None  # scheduled runs take the release verified upstream (optional in the form)


# --- Estate split over shard files; a task start builds only its own DAG -------------------------

def many_apps_estate(n: int) -> str:
    apps = "\n".join(f"  - {{name: app{i:02d}, components: [{{name: web, repository: reg.local:5000/demo/a{i}}}]}}"
                     for i in range(n))
    return ("registries: [{host: \"reg.local:5000\", scheme: http}]\napps:\n" + apps + "\n" + textwrap.dedent("""
        environments:
          - name: dev
            targets: [{name: dev-1, type: docker, connection: c_dev}]
          - name: stage
            targets: [{name: stage-1, type: docker, connection: c_stage}]
    """))


@pytest.fixture()
def sharded(folder, tmp_path, monkeypatch):
    """An estate of 12 apps rendered into 3 shard files, as `stella dags render` writes them."""
    from stella_operators.dag_builder.render import render_dag_files

    estate = tmp_path / "estate.yaml"
    estate.write_text(many_apps_estate(12))
    monkeypatch.setenv("STELLA_ESTATE", str(estate))
    files, _ = render_dag_files(folder, 3)
    return estate, files


def all_ids(n: int) -> set[str]:
    """Every app's DAGs, plus the one audit checkpoint DAG (in shard 0's file)."""
    return {AUDIT_CHECKPOINT_DAG_ID} | {
        d for i in range(n) for d in (release_dag_id(f"app{i:02d}"),
                                      *(f(f"app{i:02d}", env) for env in ("dev", "stage")
                                        for f in (promote_dag_id, rollback_dag_id, drift_dag_id)))}


def test_full_parse_builds_every_dag_once_split_over_the_shard_files(sharded, folder):
    from stella_operators.dag_builder.builder import shard_of

    _, files = sharded
    bag = parse(folder)
    assert bag.import_errors == {}
    assert set(bag.dags) == all_ids(12)
    per_file = {f.name: {d for d, dag in bag.dags.items() if Path(dag.fileloc).name == f.name} for f in files}
    assert all(per_file.values()), per_file  # 12 apps over 3 files: none is empty
    for i in range(12):
        app = f"app{i:02d}"
        assert Path(bag.dags[release_dag_id(app)].fileloc).name == files[shard_of(app, 3)].name


def test_task_start_parse_builds_only_the_dag_it_runs(sharded, folder, monkeypatch):
    """Airflow sets the parsing context when a task starts and parses only its DAG's file."""
    from stella_operators.dag_builder.builder import shard_of

    _, files = sharded
    wanted = promote_dag_id("app07", "stage")
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", wanted)
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID", "deploy")
    own = files[shard_of("app07", 3)]
    bag = parse(own)
    assert bag.import_errors == {}
    assert list(bag.dags) == [wanted]
    assert [t.task_id for t in bag.dags[wanted].tasks] == ["request", "gates", "approval", "deploy", "verify"]
    for other in files:
        if other != own:
            assert parse(other).dags == {}
    # the release DAG too
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", release_dag_id("app07"))
    assert list(parse(own).dags) == [release_dag_id("app07")]


def test_a_broken_estate_breaks_only_its_own_shard_files(sharded, folder, monkeypatch):
    estate, files = sharded
    estate.write_text(estate.read_text().replace("connection: c_stage", "connexion: c_stage"))
    (folder / "unrelated.py").write_text(textwrap.dedent("""
        from datetime import datetime
        from airflow.sdk import DAG
        with DAG("unrelated", schedule=None, start_date=datetime(2026, 1, 1)):
            pass
    """))
    bag = parse(folder)
    assert set(bag.import_errors) == {str(f) for f in files}
    assert all("connexion: unknown key 'connexion'" in e for e in bag.import_errors.values())
    assert set(bag.dags) == {"unrelated"}
    # a task start of a broken estate fails to parse too, with the estate's error and its line
    from stella_operators.dag_builder.builder import shard_of

    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", promote_dag_id("app03", "dev"))
    own = files[shard_of("app03", 3)]
    errors = parse(own).import_errors
    assert list(errors) == [str(own)]
    assert f"{estate}:" in errors[str(own)] and "connexion" in errors[str(own)]


def test_one_estate_file_under_the_parsing_context_builds_one_dag(folder, tmp_path, monkeypatch):
    estate = tmp_path / "estate.yaml"
    estate.write_text(many_apps_estate(5))
    f = dag_file(folder, "one_file", estate)
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", promote_dag_id("app02", "dev"))
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID", "request")
    assert list(parse(f).dags) == [promote_dag_id("app02", "dev")]
    monkeypatch.delenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID")
    monkeypatch.delenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID")
    assert set(parse(f).dags) == all_ids(5)
