"""Mutations of valid documents and files, for the loaders' fuzz tests.

Each mutation keeps most of a valid input and breaks one thing the way an
attacker or a careless upstream would: truncation, flipped bits, huge or
non-finite numbers, deep nesting, values of the wrong type, keys removed or
added. Everything is drawn from a seeded :class:`random.Random`, so a run is
reproducible from its seed.
"""

from __future__ import annotations

import copy
import json
import random
import sys
from collections.abc import Callable, Iterator
from typing import Any

#: Values that replace a node of a document: each is wrong somewhere.
ODD_VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    1,
    2**63,
    -(2**63) - 1,
    10**400,
    -(10**400),
    1e308,
    -1e308,
    1.7976931348623157e308,
    5e-324,
    1.3e154,
    float("nan"),
    float("inf"),
    float("-inf"),
    "",
    "x",
    "\ud800",
    "inf",
    "nan",
    "1e999",
    [],
    {},
    [None],
    {"": None},
    "a" * 1000,
    [1] * 50,
)


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a node of *doc* (dict keys and list indexes), the root first."""
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from paths(value, (*prefix, i))


def replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A copy of *doc* with the node at *path* replaced by *value*."""
    if not path:
        return value
    out = copy.deepcopy(doc)
    node = out
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return out


def _delete(doc: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return doc
    out = copy.deepcopy(doc)
    node = out
    for step in path[:-1]:
        node = node[step]
    del node[path[-1]]
    return out


def nested(depth: int) -> Any:
    """A list nested *depth* deep."""
    out: Any = []
    for _ in range(depth):
        out = [out]
    return out


def mutate_value(doc: Any, rng: random.Random, *, deep: bool = True) -> Any:
    """*doc* with one to four nodes replaced, deleted, wrapped, nested deep or joined by a key."""
    out = doc
    for _ in range(1 if rng.random() < 0.8 else rng.randint(2, 4)):
        out = _mutate_once(out, rng)
    if deep and rng.random() < 0.08:
        # Last, so that nothing recurses through the deep part while mutating.
        path = rng.choice(list(paths(out)))
        out = replace(out, path, nested(rng.choice((50, 5_000, 100_000))))
    return out


def dumps(value: Any) -> str:
    """JSON text of *value*, integers of any length included (``json.dumps`` refuses them)."""
    previous = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        return json.dumps(value, allow_nan=True)
    finally:
        sys.set_int_max_str_digits(previous)


def _mutate_once(doc: Any, rng: random.Random) -> Any:
    path = rng.choice(list(paths(doc)))
    node = doc
    for step in path:
        node = node[step]
    how = rng.random()
    if how < 0.6:
        return replace(doc, path, copy.deepcopy(rng.choice(ODD_VALUES)))
    if how < 0.72:
        return _delete(doc, path)
    if how < 0.82:
        if isinstance(node, dict):
            return replace(doc, path, {**node, rng.choice(("extra", "", "format")): 1})
        return replace(doc, path, [node])
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        big = rng.choice((10 ** rng.randint(20, 5_000), 1e308, 1.3e154, 2**64))
        return replace(doc, path, -big if rng.random() < 0.5 else big)
    return replace(doc, path, copy.deepcopy(rng.choice(ODD_VALUES)))


def show(data: Any, limit: int = 500) -> str:
    """The start of *data*'s repr, even for deeply nested data."""
    try:
        return repr(data)[:limit]
    except (RecursionError, ValueError):
        return f"<{type(data).__name__} too deep or too long to show>"


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """*data* truncated, with flipped bits, or with bytes inserted or repeated."""
    if not data:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 20)))
    how = rng.random()
    if how < 0.25:
        return data[: rng.randrange(len(data))]
    if how < 0.55:
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
        return bytes(out)
    if how < 0.7:
        i = rng.randrange(len(data) + 1)
        junk = rng.choice(
            (b"\x00", b"\xff\xfe", b"9" * rng.randint(1, 6_000), b"[" * 3_000, b'"', b",", b"\n")
        )
        return data[:i] + junk + data[i:]
    if how < 0.85:
        i = rng.randrange(len(data))
        j = min(len(data), i + rng.randint(1, 64))
        return data[:i] + data[i:j] * rng.randint(2, 50) + data[j:]
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))


def mutate_json(doc: Any, rng: random.Random) -> str | bytes:
    """A JSON text near *doc*: a mutated value written out, or mutated bytes of it."""
    if rng.random() < 0.5:
        text = dumps(mutate_value(doc, rng, deep=False))
        if rng.random() < 0.1:
            i = rng.randrange(len(text) + 1)
            depth = rng.choice((50, 5_000, 100_000))
            text = text[:i] + "[" * depth + "]" * depth + text[i:]
        return text
    mutated = mutate_bytes(dumps(doc).encode(), rng)
    return mutated if rng.random() < 0.5 else mutated.decode("utf-8", "replace")


def run(
    cases: int,
    seed: int,
    make: Callable[[random.Random], Any],
    load: Callable[[Any], object],
    allowed: tuple[type[BaseException], ...],
) -> dict[str, int]:
    """Load *cases* inputs from *make*; return counts by outcome, raising on a stray exception.

    Outcomes are ``"ok"`` and the names of the allowed exception types.
    """
    rng = random.Random(seed)
    seen: dict[str, int] = {}
    for case in range(cases):
        data = make(rng)
        try:
            load(data)
        except allowed as e:
            name = type(e).__name__
        except BaseException as e:
            raise AssertionError(
                f"case {case} (seed {seed}) raised {type(e).__name__}: {str(e)[:200]}\n"
                f"input: {show(data)}"
            ) from e
        else:
            name = "ok"
        seen[name] = seen.get(name, 0) + 1
    return seen
