"""The Astro-style layout: Airflow sees only the dags/, plugins/ and include/ folders and the
package on a path. Real plugin manager and DagBag in a fresh process each (Airflow caches plugins
per process)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
import importlib, json, os, sys
if os.environ.get("HIDE_STELLA_DISTRIBUTION"):
    # Play a deployment where stella-operators is not pip-installed: its distribution metadata (and
    # so its entry points) is invisible, to the stdlib and to the backport Airflow uses on 3.11.
    # Airflow itself is untouched.
    def hide(md):
        original = md.Distribution.discover.__func__
        def discover(cls, **kw):
            return (d for d in original(cls, **kw) if (d.metadata["Name"] or "").lower() != "stella-operators")
        md.Distribution.discover = classmethod(discover)
    for name in ("importlib.metadata", "importlib_metadata"):
        try:
            hide(importlib.import_module(name))
        except ImportError:
            pass
from airflow import plugins_manager
from airflow.dag_processing.dagbag import DagBag
import stella_operators
plugins, errors = plugins_manager._get_plugins()
apps, _ = plugins_manager.get_fastapi_plugins()
bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
print(json.dumps({
    "package": stella_operators.__file__,
    "stella": [str(p.source) for p in plugins if p.name == "stella_operators"],
    "plugin_errors": errors,
    "fastapi": [a["url_prefix"] for a in apps],
    "timetables": sorted(plugins_manager.get_timetables_plugins()),
    "dags": sorted(bag.dags), "import_errors": bag.import_errors,
}))
"""


@pytest.fixture()
def layout(tmp_path):
    """AIRFLOW_HOME with dags/ (rendered), plugins/ (the shim), include/estate.yaml; the package
    copied to its own path."""
    home = tmp_path / "home"
    shutil.copytree(ROOT / "plugins", home / "plugins", ignore=shutil.ignore_patterns("__pycache__"))
    (home / "include").mkdir(parents=True)
    shutil.copy(ROOT / "include" / "estate.yaml", home / "include" / "estate.yaml")
    pkg = tmp_path / "pkg"
    shutil.copytree(ROOT / "stella_operators", pkg / "stella_operators", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "STELLA", "_AIRFLOW"))}
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "PYTHONPATH": str(pkg)})  # no STELLA_ESTATE: the default is include/ beside dags/
    r = subprocess.run([sys.executable, "-m", "stella_operators.cli.main", "dags", "render", "-o", str(home / "dags")],
                       env=env, capture_output=True, text=True, timeout=120, cwd=home, check=False)
    assert r.returncode == 0, r.stderr
    return home, pkg, env


def probe(env, hide: bool) -> dict:
    env = {**env, **({"HIDE_STELLA_DISTRIBUTION": "1"} if hide else {})}
    r = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300,
                       cwd=env["AIRFLOW_HOME"], check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_plugins_folder_registers_the_plugin_when_not_pip_installed(layout):
    _, pkg, env = layout
    out = probe(env, hide=True)
    assert out["package"].startswith(str(pkg))
    assert out["stella"] == ["$PLUGINS_FOLDER/stella_plugin.py"]  # once, from the folder (as Airflow names it)
    assert out["plugin_errors"] == {}
    assert "/stella" in out["fastapi"]
    assert "stella_operators.timetables.freeze_aware.FreezeAwareCronTimetable" in out["timetables"]
    # the estate's DAGs parse with the built-in target and gate types (no entry points here)
    assert out["import_errors"] == {}
    assert "stella_release__shop" in out["dags"] and "stella_promote__shop__stage" in out["dags"]


def test_entry_point_and_folder_shim_do_not_register_it_twice(layout):
    _, _, env = layout
    out = probe(env, hide=False)
    assert len(out["stella"]) == 1 and "stella_plugin.py" not in out["stella"][0]  # the entry point's
    assert out["plugin_errors"] == {}  # no "already registered" error
    assert "/stella" in out["fastapi"] and out["import_errors"] == {}
