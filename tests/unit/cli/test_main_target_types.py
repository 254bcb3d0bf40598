"""`stella target-types`: the installed target types, as the estate schema promises."""

import json
import subprocess
import sys
from importlib.metadata import entry_points

from stella_operators.estate.schema import estate_json_schema


def run(*args):
    return subprocess.run([sys.executable, "-m", "stella_operators.cli.main", "target-types", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_lists_installed_target_types_one_per_line():
    installed = sorted(ep.name for ep in entry_points(group="stella_operators.targets"))
    r = run()
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == installed and "docker" in installed


def test_json_names_where_each_type_comes_from():
    r = run("--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    docker = next(x for x in rows if x["name"] == "docker")
    assert docker["object"] == "stella_operators.targets.docker:TARGET_TYPE"
    assert docker["distribution"] == "stella-operators"
    assert docker["tested_against"] and docker["summary"]
    assert docker["settings"]["additionalProperties"] is False  # no settings: every key is refused


def test_the_schema_names_a_command_that_exists():
    assert "stella target-types" in json.dumps(estate_json_schema())
