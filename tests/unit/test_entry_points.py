"""The built-in entry points used without a pip install are the ones pyproject.toml declares."""

import tomllib
from pathlib import Path

from stella_operators.entry_points import BUILT_IN, PLUGIN_OBJECT, stella_entry_points

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())


def test_built_in_table_equals_pyproject():
    declared = PYPROJECT["project"]["entry-points"]
    for group, table in BUILT_IN.items():
        assert declared[group] == table, group
    assert declared["airflow.plugins"] == {"stella": PLUGIN_OBJECT}


def test_installed_types_are_listed_once():
    names = [ep.name for ep in stella_entry_points("stella_operators.gates")]
    assert sorted(names) == sorted(set(names)) and {"freeze", "policy", "security"} <= set(names)
