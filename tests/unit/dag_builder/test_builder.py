"""The trigger forms the generated DAGs give Airflow: what is required, what may stay empty."""

from __future__ import annotations

import copy
import textwrap

import pytest

from stella_operators.dag_builder import (
    promote_dag_id,
    release_dag_id,
)
from tests.unit.dag_builder.estates import SHOP_DEV

ESTATE = textwrap.dedent(SHOP_DEV + """\
      - name: stage
        auto_promote: true
        targets: [{name: stage-1, type: docker, connection: c_stage}]
""")


def filled(dag, **values):
    """The DAG's params as a trigger with these values would get them."""
    params = copy.deepcopy(dag.params)
    for k, v in values.items():
        params[k] = v
    return params


def required_fields(dag) -> set[str]:
    """What Airflow's trigger form insists on: every param whose type does not admit null."""
    out = set()
    for name, param in dag.params.items():
        kinds = param.schema.get("type")
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if "null" not in kinds:
            out.add(name)
    return out


def test_fields_labelled_optional_are_optional_in_the_form(dags):
    for dag in dags.values():
        for name, param in dag.params.items():
            if "(optional)" in (param.schema.get("title") or ""):
                assert name not in required_fields(dag), f"{dag.dag_id}: {name} is labelled optional"
    assert required_fields(dags[release_dag_id("shop")]) == {"name", "web"}
    assert required_fields(dags[promote_dag_id("shop", "dev")]) == {"release", "reason"}


def test_a_run_with_only_the_required_fields_validates(dags):
    release = filled(dags[release_dag_id("shop")], name="shop-1.0.0", web="1.0.0")
    assert release.validate()["source_commit"] is None
    dev = filled(dags[promote_dag_id("shop", "dev")], release="shop-1.0.0", reason="first deploy")
    assert dev.validate()["freeze_override_reason"] is None
    stage = filled(dags[promote_dag_id("shop", "stage")])   # automatic: nothing to fill in
    assert stage.validate()["release"] is None


@pytest.mark.parametrize("reason", ["   ", "\t \n"])
def test_a_reason_of_white_space_does_not_validate(dags, reason):
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError, match="reason"):
        filled(dags[promote_dag_id("shop", "dev")], release="shop-1.0.0", reason=reason).validate()


def test_empty_optional_fields_render_as_empty_strings_not_none(dags):
    dev = dags[promote_dag_id("shop", "dev")]
    assert dev.get_task("gates").freeze_override_reason == "{{ params.freeze_override_reason or '' }}"
    assert dev.get_task("request").release == "{{ params.release or '' }}"
    create = dags[release_dag_id("shop")].get_task("create_release")
    assert create.source == {"commit": "{{ params.source_commit or '' }}"}
