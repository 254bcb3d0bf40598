"""`stella dags render`: shard files, stale files removed, hand-written files left alone."""

import textwrap

from stella_operators.cli.main import main
from stella_operators.dag_builder.builder import app_of_dag_id, shard_of
from stella_operators.dag_builder.render import MARKER, shard_count


def estate(n: int) -> str:
    apps = "\n".join(f"  - {{name: app{i:02d}, components: [{{name: web, repository: reg.local:5000/d/a{i}}}]}}"
                     for i in range(n))
    return ("registries: [{host: \"reg.local:5000\", scheme: http}]\napps:\n" + apps + "\n" + textwrap.dedent("""
        environments:
          - name: dev
            targets: [{name: dev-1, type: docker, connection: c_dev}]
    """))


def test_render_splits_by_apps_per_file_and_removes_stale_shards(tmp_path, capsys):
    e = tmp_path / "estate.yaml"
    e.write_text(estate(30))
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "stella_estate_mine.py").write_text("# hand-written, not ours\n")
    assert main(["dags", "render", "--estate", str(e), "-o", str(dags), "--apps-per-file", "10"]) == 0
    names = sorted(p.name for p in dags.glob("stella_estate_0*.py"))
    assert names == ["stella_estate_000_of_003.py", "stella_estate_001_of_003.py", "stella_estate_002_of_003.py"]
    assert "shard=2, shards=3" in (dags / names[2]).read_text()
    assert main(["dags", "render", "--estate", str(e), "-o", str(dags), "--shards", "1"]) == 0
    assert sorted(p.name for p in dags.iterdir()) == ["stella_estate.py", "stella_estate_mine.py"]
    assert (dags / "stella_estate.py").read_text().startswith(MARKER)
    assert "removed" in capsys.readouterr().out


def test_render_refuses_an_invalid_estate(tmp_path, capsys):
    e = tmp_path / "estate.yaml"
    e.write_text(estate(2).replace("connection: c_dev", "conection: c_dev"))
    assert main(["dags", "render", "--estate", str(e), "-o", str(tmp_path / "dags")]) == 1
    assert "did you mean 'connection'" in capsys.readouterr().err
    assert not (tmp_path / "dags").exists()


def test_shards_are_stable_and_cover_every_app():
    assert shard_count(0) == 1 and shard_count(25) == 1 and shard_count(26) == 2 and shard_count(500) == 20
    # sha256, not Python's per-process salted hash(): every process agrees
    assert [shard_of(f"app{i}", 4) for i in range(6)] == [shard_of(f"app{i}", 4) for i in range(6)]
    assert shard_of("shop", 7) == int.from_bytes(__import__("hashlib").sha256(b"shop").digest()[:8], "big") % 7


def test_dag_ids_name_their_app():
    assert app_of_dag_id("stella_release__shop") == "shop"
    assert app_of_dag_id("stella_promote__my-app__prod-eu") == "my-app"
    assert app_of_dag_id("stella_promote__shop") is None
    assert app_of_dag_id("some_other_dag") is None
