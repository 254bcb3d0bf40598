"""Remote sites: the tasks that touch targets go to the site's Edge workers, nothing else does."""

from __future__ import annotations

import textwrap

import pytest

from stella_operators.dag_builder import build_estate_dags, promote_dag_id
from stella_operators.estate.errors import EstateError
from stella_operators.estate.loader import parse_estate
from tests.unit.dag_builder.estates import SHOP_DEV

ESTATE = textwrap.dedent(SHOP_DEV + """\
      - name: plant
        targets:
          - {name: plant-1, type: docker, connection: c_p1, site: plant-a}
          - {name: plant-2, type: docker, connection: c_p2, site: %s}
""")


def test_deploy_and_verify_run_on_the_sites_queue_through_the_edge_executor(tmp_path):
    path = tmp_path / "estate.yaml"
    path.write_text(ESTATE % "plant-a")
    dags = build_estate_dags(path)
    plant = dags[promote_dag_id("shop", "plant")]
    routed = {t.task_id: (t.executor, t.queue) for t in plant.tasks}
    assert routed["deploy"] == ("EdgeExecutor", "plant-a")
    assert routed["verify"] == ("EdgeExecutor", "plant-a")
    # the decisions stay on the control plane: they need the ledger and the registry, not the hosts
    for step in ("request", "gates", "approval"):
        assert routed[step][0] is None and routed[step][1] != "plant-a", step
    dev = dags[promote_dag_id("shop", "dev")]
    assert all(t.executor is None and t.queue != "plant-a" for t in dev.tasks)


def test_one_environment_in_two_places_is_refused_naming_the_targets(tmp_path):
    with pytest.raises(EstateError) as err:
        parse_estate(ESTATE % "null", source="estate.yaml")
    text = str(err.value)
    assert "environments[1].targets[1].site" in text
    assert "plant-1: plant-a, plant-2: control plane" in text and "one per site" in text


def test_without_the_edge_executor_only_the_site_environment_is_refused_by_a_real_dagbag(tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    estate = tmp_path / "estate.yaml"
    estate.write_text(ESTATE % "plant-a")
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "stella_estate.py").write_text(
        "from airflow.sdk import DAG  # noqa: F401\n"
        "from stella_operators.dag_builder import build_estate_dags\n"
        f"globals().update(build_estate_dags({str(estate)!r}))\n")
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    bag = DagBag(str(dags))
    assert promote_dag_id("shop", "dev") in bag.dags  # the rest of the estate is untouched
    assert promote_dag_id("shop", "plant") not in bag.dags
    (error,) = bag.import_errors.values()
    assert "EdgeExecutor" in error and "not available" in error
