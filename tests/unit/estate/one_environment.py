"""An estate with one app and one environment `prod` whose targets are in groups: the strategy
settings tests add lines to the environment and read what the estate makes of them."""

from __future__ import annotations

import pytest

from stella_operators.estate import EstateError, parse_estate
from stella_operators.estate.models import Estate


class OneEnvironment:
    def __init__(self, groups: dict[str, str], *, app: str = "shop", component: str = "web",
                 repository: str = "reg.local:5000/demo/web"):
        targets = "".join(f"      - {{name: {t}, type: docker, connection: c{i}, group: {g}}}\n"
                          for i, (t, g) in enumerate(groups.items(), 1))
        self.base = f"""
version: 1
registries: [{{host: "reg.local:5000", scheme: http}}]
apps:
  - name: {app}
    components:
      - {{name: {component}, repository: {repository}}}
environments:
  - name: prod
    targets:
{targets}"""

    def estate(self, extra: str) -> Estate:
        """The estate with `extra` (YAML lines of the environment, e.g. "strategy: canary") added."""
        lines = "".join(f"    {line}\n" for line in extra.strip().splitlines())
        return parse_estate(self.base + lines, source="estate.yaml")

    def refused(self, extra: str) -> str:
        """The error an estate with `extra` gets (it must be refused)."""
        with pytest.raises(EstateError) as info:
            self.estate(extra)
        return str(info.value)
