"""canonical_json takes Python's C encoder for plain values: it must give RFC 8785's exact bytes
(the reference `rfc8785` library) for every value, the awkward ones included."""

from __future__ import annotations

import random

import pytest
import rfc8785

from stella_operators.evidence.canonical import canonical_json, canonical_plain

AWKWARD = ["", "plain", 'quote " and \\ backslash', "tab\tnew\nline\rcr\bbs\fff", "\x00\x01\x1f\x7f",
           "ünïcödé", "emoji 🚀 and 𝄞", "\u2028\u2029", "\ue000 private use", "</script>", "€", "mixed \u0000 end"]
KEYS = ["a", "B", "_", "a1", "a_b", "Z", "aa", "key with space", "", "é", "\ue000", "😀", "zz"]


def _value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return rng.choice(AWKWARD)
    if kind == 1:
        return rng.choice([0, 1, -1, 2**53 - 1, -(2**53 - 1), 123456789, 42])
    if kind == 2:
        return rng.choice([True, False, None])
    if kind == 3:
        return rng.choice([0.0, 1.5, -2.25, 1e21, 1e-7, 3.0, 0.1])
    if kind in (4, 5):
        return "".join(rng.choice(AWKWARD) for _ in range(rng.randrange(3)))
    if kind in (6, 7):
        return {rng.choice(KEYS) + rng.choice(["", "x", "é"]): _value(rng, depth + 1) for _ in range(rng.randrange(5))}
    return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]


@pytest.mark.parametrize("seed", range(40))
def test_the_fast_path_writes_exactly_what_rfc8785_writes(seed):
    rng = random.Random(seed)
    for _ in range(50):
        value = _value(rng)
        assert canonical_plain(value) == rfc8785.dumps(value), value
        assert canonical_json(value) == rfc8785.dumps(value)


def test_keys_sort_by_utf16_code_units_where_code_points_would_differ():
    value = {"\ue000": 1, "😀": 2}  # U+E000 sorts after U+1F600's surrogates in UTF-16, before it by code point
    assert canonical_plain(value) == rfc8785.dumps(value) == '{"😀":2,"\ue000":1}'.encode()


@pytest.mark.parametrize("bad", [{"a": "\ud800"}, {"a": float("nan")}, {"a": 2**53}, [-(2**53)], {"n": 10**20}])
def test_what_rfc8785_refuses_is_still_refused(bad):
    with pytest.raises(Exception) as ours:  # noqa: B017 - rfc8785's own error types
        canonical_plain(bad)
    with pytest.raises(Exception) as reference:  # noqa: B017
        rfc8785.dumps(bad)
    assert type(ours.value) is type(reference.value)
