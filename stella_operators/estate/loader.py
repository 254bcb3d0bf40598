"""Load an estate file: YAML -> pydantic -> cross-reference checks, every problem reported at once."""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from stella_operators.estate.checks import cross_check
from stella_operators.estate.errors import EstateError, Problem
from stella_operators.estate.models import Estate
from stella_operators.settings import estate_cache_dir

Loc = tuple[str | int, ...]


def load_estate(path: str | Path, *, prime_cache: bool = False) -> Estate:
    """Read and validate an estate file; raise EstateError naming file, field path and fix.

    `prime_cache`: also store the parsed YAML for `load_estate_for_app` (the dag-processor's full
    parse does, so that task starts after it read no YAML)."""
    p = Path(path)
    text = _read(p)
    data = _yaml_data(text, str(p))
    if prime_cache:
        _store_parsed(p, text, data)
    return validate_estate_data(data, text, source=str(p))


def _read(p: Path) -> str:
    try:
        return p.read_text(encoding="utf-8")
    except OSError as exc:
        raise EstateError(str(p), [Problem("", f"cannot read the estate file: {exc.strerror or exc}")]) from None


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


# libyaml when present: 5-10x faster than the pure-Python parser; the line-numbered node tree
# (pure Python, slow) is composed only when there is a problem to locate.
_FastLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_estate(text: str, *, source: str = "<estate>") -> Estate:
    return validate_estate_data(_yaml_data(text, source), text, source=source)


def load_estate_for_app(path: str | Path, app: str) -> Estate:
    """The part of an estate file that one app's DAGs use, validated: every registry, approver
    group and environment (they are shared and few) and this app only. For a task start, which
    rebuilds one DAG: its cost does not grow with the number of apps, apart from reading the YAML
    (C parser). The whole file is validated where it matters: by the dag-processor's full parse
    and by every operator (`load_estate`) before it acts. Unknown app: EstateError.

    Even the C parser costs ~0.1-0.2 s per task start at 500 apps, so the parsed YAML is kept as
    JSON (an order of magnitude faster to read) under `$STELLA_HOME/cache`, keyed by the file's
    path and the SHA-256 of its exact text: a changed file is a miss, never a stale hit."""
    p = Path(path)
    text = _read(p)
    data = _parsed(p, text)
    apps = data.get("apps")
    mine = [a for a in apps if isinstance(a, dict) and a.get("name") == app][:1] if isinstance(apps, list) else []
    if not mine:
        raise EstateError(str(p), [Problem("apps", f"no app {app!r} in the estate (removed after this DAG's "
                                                   "run was created?); its DAGs no longer exist")])
    try:
        return validate_estate_data({**data, "apps": mine}, None, source=str(p))
    except EstateError:
        return load_estate(p)  # the whole file, for errors with true line numbers and indices


def _cache_file(p: Path) -> Path:
    return estate_cache_dir() / f"estate-{hashlib.sha256(str(p.resolve()).encode()).hexdigest()[:24]}.json"


def _parsed(p: Path, text: str) -> dict[str, Any]:
    digest = hashlib.sha256(text.encode()).hexdigest()
    try:
        cached = json.loads(_cache_file(p).read_text(encoding="utf-8"))
        if isinstance(cached, dict) and cached.get("sha256") == digest and isinstance(cached.get("data"), dict):
            return typing.cast(dict[str, Any], cached["data"])
    except (OSError, ValueError):
        pass
    data = _yaml_data(text, str(p))
    _store_parsed(p, text, data)
    return data


def _store_parsed(p: Path, text: str, data: dict[str, Any]) -> None:
    """Best effort (a read-only STELLA_HOME just means no cache). Only data that JSON carries
    unchanged is stored: YAML timestamps or non-string keys would come back different."""
    try:
        encoded = json.dumps(data)
        if json.loads(encoded) != data:
            return
    except (TypeError, ValueError):
        return
    target = _cache_file(p)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"sha256": hashlib.sha256(text.encode()).hexdigest(), "source": str(p),
                                   "data": data}), encoding="utf-8")
        os.replace(tmp, target)  # atomic: a reader sees the old or the new file, never half of one
    except OSError:
        pass


def _yaml_data(text: str, source: str) -> dict[str, Any]:
    try:
        data = yaml.load(text, Loader=_FastLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise EstateError(source, [Problem("", f"not valid YAML: {getattr(exc, 'problem', exc)}", line)]) from None
    if not isinstance(data, dict):
        raise EstateError(source, [Problem("", "the estate must be a mapping with apps and environments")])
    return data


def validate_estate_data(data: dict[str, Any], text: str | None, *, source: str) -> Estate:
    """Validate parsed YAML; problems carry line numbers when `text` is given."""
    def root() -> yaml.Node | None:
        return yaml.compose(text, Loader=yaml.SafeLoader) if text is not None else None

    try:
        estate = Estate.model_validate(data)
    except ValidationError as exc:
        node = root()
        raise EstateError(source, [_problem_from(err, node) for err in exc.errors()]) from None
    found = list(cross_check(estate))
    if found:
        node = root()
        raise EstateError(source, [Problem(path, msg, _line_of(node, loc)) for loc, path, msg in found])
    return estate


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _problem_from(err: ErrorDetails, root: yaml.Node | None) -> Problem:
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
    elif kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    elif kind == "literal_error":
        msg = f"{err.get('input')!r} is not one of the allowed values: {err.get('ctx', {}).get('expected', '')}"
    else:
        if "input" in err and not isinstance(err["input"], (dict, list)):
            msg = f"{msg} (got {err.get('input')!r})"
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
