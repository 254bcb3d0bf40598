"""Estate problems, each naming the file, the field path and what to do about it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    path: str       # e.g. "environments[2].targets[0].connection"
    message: str
    line: int | None = None

    def render(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line else source
        return f"{where}: {self.path or '<root>'}: {self.message}"


class EstateError(ValueError):
    """An estate file that cannot be used. `str()` gives one line per problem, no traceback needed."""

    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = sorted(problems, key=lambda p: (p.line or 0, p.path, p.message))
        super().__init__("\n".join(p.render(source) for p in self.problems))
