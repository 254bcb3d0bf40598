"""Load an estate file: YAML -> pydantic -> cross-reference checks, every problem reported at once."""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from stella_operators.estate.checks import cross_check
from stella_operators.estate.errors import EstateError, Problem
from stella_operators.estate.models import Estate

Loc = tuple[str | int, ...]


def load_estate(path: str | Path) -> Estate:
    """Read and validate an estate file; raise EstateError naming file, field path and fix."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise EstateError(str(p), [Problem("", f"cannot read the estate file: {exc.strerror or exc}")]) from None
    return parse_estate(text, source=str(p))


_CACHE: dict[str, tuple[tuple[int, int], Estate]] = {}


def cached_estate(path: str | Path) -> Estate:
    """`load_estate`, re-read only when the file changes (mtime, size). For long-lived processes
    that consult the estate often: triggers polling every few seconds, the API server. An Estate
    is frozen, so sharing one is safe."""
    key = str(Path(path).resolve())
    try:
        st = Path(key).stat()
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        return load_estate(key)  # raises the usual EstateError
    hit = _CACHE.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    estate = load_estate(key)
    _CACHE[key] = (stamp, estate)
    return estate


def parse_estate(text: str, *, source: str = "<estate>") -> Estate:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise EstateError(source, [Problem("", f"not valid YAML: {getattr(exc, 'problem', exc)}", line)]) from None
    if not isinstance(data, dict):
        raise EstateError(source, [Problem("", "the estate must be a mapping with apps and environments")])
    try:
        estate = Estate.model_validate(data)
    except ValidationError as exc:
        problems = [_problem_from(err, root) for err in exc.errors()]
        raise EstateError(source, problems) from None
    problems = [Problem(path, msg, _line_of(root, loc)) for loc, path, msg in cross_check(estate)]
    if problems:
        raise EstateError(source, problems)
    return estate


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _problem_from(err: dict[str, Any], root: yaml.Node | None) -> Problem:
    loc: Loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        msg = f"unknown key {loc[-1]!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
        msg += f" (allowed: {', '.join(allowed)})" if allowed else ""
    elif kind == "string_pattern_mismatch":
        pattern = err.get("ctx", {}).get("pattern", "")
        msg = f"{err.get('input')!r} is not allowed here: it must match {pattern}"
        if "a-z0-9-" in pattern:
            msg += " (lowercase letters, digits and '-': names reach command lines, so no shell characters)"
    elif kind == "missing":
        msg = "required field is missing"
    elif kind == "literal_error":
        msg = f"{err.get('input')!r} is not one of the allowed values: {err.get('ctx', {}).get('expected', '')}"
    else:
        msg = f"{msg} (got {err.get('input')!r})" if "input" in err and not isinstance(err["input"], (dict, list)) else msg
    return Problem(format_loc(loc), msg, _line_of(root, loc))


def _allowed_keys(loc: Loc) -> list[str]:
    model: Any = Estate
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return []
        model = _model_in(fields[part].annotation)
        if model is None:
            return []
    fields = getattr(model, "model_fields", {})
    return sorted(fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found:
            return found
    return None


def _line_of(node: yaml.Node | None, loc: Loc) -> int | None:
    """1-based line of the deepest YAML node reached along `loc` (None when unknown)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            node = None
        if node is None:
            break
        line = node.start_mark.line + 1
    return line
