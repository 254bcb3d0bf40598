"""What an analysis measures, modelled on Argo Rollouts' AnalysisTemplate (and Kayenta's
baseline-vs-canary comparison):

    analysis:
      metrics:
        - name: error-rate
          provider: prometheus                  # or http_json
          query: sum(rate(errors_total{v="canary"}[1m])) / sum(rate(requests_total{v="canary"}[1m]))
          baseline_query: ...{v="stable"}...              # optional: `baseline` in the conditions
          success_condition: result < 0.01                # CEL over result / results / baseline
          failure_condition: result >= 0.05
          interval_s: 10
          count: 6                                        # measurements that must be taken
          initial_delay_s: 5
          failure_limit: 0                                # failed measurements tolerated
          inconclusive_limit: 0                           # inconclusive measurements tolerated
          consecutive_error_limit: 2                      # provider errors in a row tolerated
          min_samples: 1                                  # fewer data points: inconclusive

Every field has an effect (analysis/evaluate.py); conditions are compiled at estate validation.

Queries may name the version under analysis through variables (`$$` for a literal `$`), filled in
when a canary step is analysed (`render_queries`), because which group gets a release alternates:

    ${group} / ${previous_group}       the target group running the new / the previous release
    ${targets} / ${previous_targets}   their target names as a regex alternation (`web-2|web-4`),
                                       for a label set per scrape target: {target=~"${targets}"}
    ${release}                         the release's name
"""

from __future__ import annotations

from string import Template
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stella_operators.cel import CelExpressionError, compile_expression

QUERY_VARIABLES = ("group", "previous_group", "targets", "previous_targets", "release")


def check_variables(analysis: Analysis) -> None:
    """Raise ValueError naming the metric when a query uses an unknown or broken variable. Checked
    where queries are rendered (a canary's analysis), not on every Analysis: a rendered query is
    final, and a `$` left in it is meant."""
    for i, m in enumerate(analysis.metrics):
        for key in ("query", "baseline_query"):
            try:
                _known_variables(getattr(m, key))
            except ValueError as exc:
                raise ValueError(f"metrics.{i}.{key}: {exc}") from None


def _known_variables(query: str | None) -> None:
    if query is None:
        return
    t = Template(query)
    if not t.is_valid():
        raise ValueError(f"{query!r}: a `$` starts a variable (${{name}}); write $$ for a literal $")
    unknown = sorted(set(t.get_identifiers()) - set(QUERY_VARIABLES))
    if unknown:
        raise ValueError(f"unknown variable(s) {', '.join('${' + u + '}' for u in unknown)} in {query!r}; "
                         f"known: {', '.join('${' + v + '}' for v in QUERY_VARIABLES)}")


def render_queries(analysis: dict[str, object], values: dict[str, str]) -> dict[str, object]:
    """The analysis with every metric's query and baseline_query filled in from `values`."""
    metrics = []
    for metric in analysis.get("metrics", []):  # type: ignore[attr-defined]
        m = dict(metric)
        for key in ("query", "baseline_query"):
            if m.get(key):
                m[key] = Template(m[key]).substitute(values)
        metrics.append(m)
    return {**analysis, "metrics": metrics}


class Metric(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")
    provider: Literal["prometheus", "http_json"] = "prometheus"
    query: str = Field(min_length=1, description="PromQL (prometheus) or URL (http_json)")
    baseline_query: str | None = Field(None, description="the same measure for the baseline version")
    json_path: str | None = Field(None, description="http_json: dotted path to the number(s) in the answer")
    range_s: float | None = Field(None, gt=0, description="prometheus: a range query over this window "
                                                           "(data points = samples) instead of an instant query")
    success_condition: str | None = None
    failure_condition: str | None = None
    interval_s: float = Field(30, gt=0, le=3600)
    count: int = Field(1, ge=1, le=1000)
    initial_delay_s: float = Field(0, ge=0, le=3600)
    failure_limit: int = Field(0, ge=0)
    inconclusive_limit: int = Field(0, ge=0)
    consecutive_error_limit: int = Field(4, ge=0)
    min_samples: int = Field(1, ge=1)

    @field_validator("success_condition", "failure_condition")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                compile_expression(v)
            except CelExpressionError as exc:
                raise ValueError(str(exc)) from None
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Metric:
        if self.success_condition is None and self.failure_condition is None:
            raise ValueError(f"metric {self.name!r} needs a success_condition, a failure_condition or both")
        if self.provider == "http_json" and not self.json_path:
            raise ValueError(f"metric {self.name!r}: provider http_json needs json_path")
        if self.provider == "prometheus" and self.json_path:
            raise ValueError(f"metric {self.name!r}: json_path is for provider http_json only")
        return self

    @property
    def bound_s(self) -> float:
        """How long a failing version can go unnoticed at most: interval x (failure_limit + 1)."""
        return self.interval_s * (self.failure_limit + 1)


class Analysis(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    metrics: tuple[Metric, ...] = Field(min_length=1)

    @field_validator("metrics")
    @classmethod
    def _unique(cls, v: tuple[Metric, ...]) -> tuple[Metric, ...]:
        names = [m.name for m in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"metric names must be unique (repeated: {', '.join(dupes)})")
        return v
