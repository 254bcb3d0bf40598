"""Analysis queries with variables: checked when the estate is read, filled in per canary step."""

from __future__ import annotations

import pytest

from stella_operators.analysis.model import Analysis, check_variables, render_queries

METRIC = {"name": "errors", "success_condition": "result < 0.05"}


def analysis(query: str, **more: str) -> dict:
    return {"metrics": [{**METRIC, "query": query, **more}]}


def test_variables_are_filled_in_per_step_and_dollar_dollar_stays_a_dollar():
    a = Analysis.model_validate(analysis('sum(rate(e{target=~"${targets}"}[1m])) > $$x',
                                         baseline_query='sum(rate(e{group="${previous_group}"}[1m]))'))
    done = render_queries(a.model_dump(mode="json"), {"group": "green", "previous_group": "blue",
                                                      "targets": "web-2|web-4", "previous_targets": "web-1",
                                                      "release": "shop-1.2.0"})
    [m] = done["metrics"]
    assert m["query"] == 'sum(rate(e{target=~"web-2|web-4"}[1m])) > $x'
    assert m["baseline_query"] == 'sum(rate(e{group="blue"}[1m]))'
    assert Analysis.model_validate(done).metrics[0].query == m["query"]   # what the trigger gets


@pytest.mark.parametrize("query, says", [
    ('rate(e{target="${host}"}[1m])', "unknown variable(s) ${host}"),
    ("rate(e[1m]) * $", "write $$ for a literal $"),
])
def test_an_unknown_or_broken_variable_is_refused_naming_the_known_ones(query, says):
    with pytest.raises(ValueError) as err:
        check_variables(Analysis.model_validate(analysis(query)))
    assert says in str(err.value)
    if "unknown" in says:
        assert "${targets}" in str(err.value) and "${release}" in str(err.value)
