"""CEL (Common Expression Language) for the estate's expressions: policy rules, analysis conditions.

Evaluated by `cel-python` (package `celpy`) with its tree-walking interpreter (`InterpretedRunner`);
nothing is ever turned into Python source, `eval`'d or `exec`'d. Expressions are compiled once per
text (cached) and at estate validation time, so a syntax error is a configuration error.
"""

from __future__ import annotations

import sys
from functools import lru_cache

import celpy


def _environment() -> celpy.Environment:
    # celpy.Environment() sets the recursion limit to 2500 (CEL nesting); never lower a higher one
    before = sys.getrecursionlimit()
    env = celpy.Environment(runner_class=celpy.InterpretedRunner)
    sys.setrecursionlimit(max(before, sys.getrecursionlimit()))
    return env


_ENV = _environment()


class CelExpressionError(ValueError):
    """A CEL expression does not compile."""


@lru_cache(maxsize=1024)
def compile_expression(text: str) -> celpy.Runner:
    """Compile a CEL expression (cached by its text); CelExpressionError on a syntax error."""
    if not text.strip():
        raise CelExpressionError("empty expression")
    try:
        return _ENV.program(_ENV.compile(text))
    except celpy.CELParseError as exc:
        where = f" at line {exc.line}, column {exc.column}" if getattr(exc, "line", None) else ""
        snippet = text.strip().splitlines()[0] if text.strip() else ""
        raise CelExpressionError(f"CEL syntax error{where} in {snippet!r}") from None
    except Exception as exc:  # lark / celpy internals
        raise CelExpressionError(f"cannot compile: {type(exc).__name__}: {exc}") from None


