"""Per-feature input profiles: small, mergeable summaries of a data set.

A reference profile is built from training data; it fixes, per numeric
feature, bin edges at the data's quantiles, and per categorical feature the
known categories. Serving profiles are built on the same layout
(``reference.builder()``), so that comparing them is a few array operations and
merging them is addition.

A :class:`Profile` and its per-feature parts are frozen values; the counting
happens in a :class:`ProfileBuilder` (mutable, with one private accumulator
per feature), whose :meth:`~ProfileBuilder.build` takes a snapshot.

Numeric bins are counted by comparing a chunk of values with each edge
(a handful of vectorized passes): on 20 edges that is several times faster
than ``np.searchsorted`` with unsorted values, and it needs no sketch. The
edges themselves come from exact quantiles of at most 100,000 values
(a seeded sample of larger columns): they only have to be good bins, the
counts in them are exact.
"""

from __future__ import annotations

import heapq
import math
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar, Final, Literal, TypeAlias

import attrs
import numpy as np
from numpy.typing import NDArray

from ._errors import ConfigError, ProfileFormatError, ProfileMismatchError
from ._model import canonical_json, fingerprint_bytes
from ._reading import brief, loads, reading

__all__ = [
    "CategoricalProfile",
    "FeatureSpec",
    "NumericProfile",
    "Profile",
    "ProfileBuilder",
    "Schema",
]

FORMAT: Final = "guardrail.profile"
VERSION: Final = 2
Kind: TypeAlias = Literal["numeric", "categorical"]
F64: TypeAlias = NDArray[np.float64]
I64: TypeAlias = NDArray[np.int64]

_EDGE_SAMPLE: Final = 100_000
_CHUNK: Final = 65_536
_NEARLY_ALL_MISSING: Final = 0.95
NUMBER_TYPES: Final = frozenset(
    {float, int, bool, np.float64, np.float32, np.float16, np.int64, np.int32, np.int16,
     np.int8, np.uint64, np.uint32, np.uint16, np.uint8, np.bool_}
)  # fmt: skip
REAL: Final = (int, float, np.integer, np.floating, np.bool_)


# ---------------------------------------------------------------------------
# Columns: turning whatever the user has into values, missing and invalid counts


def numeric_column(values: Any) -> tuple[F64, int, int]:
    """Finite-or-not float64 values, the number of missing (None) and of wrong-typed."""
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise ConfigError(f"a column must be 1-D, got shape {values.shape}")
        kind = values.dtype.kind
        if kind == "f":
            return values.astype(np.float64, copy=False), 0, 0
        if kind in "iub":
            return values.astype(np.float64), 0, 0
        if kind in "USMmV":
            return np.empty(0, np.float64), 0, len(values)
        values = values.tolist()
    elif not isinstance(values, list):
        values = list(values)
    types = set(map(type, values))
    if types <= NUMBER_TYPES:
        try:
            return np.array(values, dtype=np.float64), 0, 0
        except OverflowError:
            return np.array([to_float(v) for v in values], dtype=np.float64), 0, 0
    # Not values.count(None): it compares with ==, which an array value answers with an array.
    missing = sum(1 for v in values if v is None) if type(None) in types else 0
    kept = [v for v in values if type(v) in NUMBER_TYPES]
    if len(kept) + missing < len(values):
        # Subclasses of numbers (say, an IntEnum) count as numbers; strings and
        # complex numbers never.
        kept = [v for v in values if v is not None and isinstance(v, REAL)]
    invalid = len(values) - len(kept) - missing
    return np.array([to_float(v) for v in kept], dtype=np.float64), missing, invalid


def to_float(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:  # an int beyond float range is infinite as a float
        return math.inf if value > 0 else -math.inf


def count_values(values: Any) -> tuple[dict[str, int], int, int]:
    """Counts per category, the number of missing (None, NaN) and of wrong-typed."""
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise ConfigError(f"a column must be 1-D, got shape {values.shape}")
        kind = values.dtype.kind
        if kind == "f":
            nan = int(np.count_nonzero(np.isnan(values)))
            return {}, nan, len(values) - nan
        if kind in "iubMmV":
            return {}, 0, len(values)
        values = values.tolist()
    elif not isinstance(values, list):
        values = list(values)
    try:
        return _classify_counts(Counter(values))
    except Exception:  # noqa: BLE001 - unhashable values (lists, arrays): wrong type, one by one
        counted: Counter[Any] = Counter()
        unhashable = 0
        for value in values:
            try:
                counted[value] += 1
            except Exception:  # noqa: BLE001 - a value that cannot be counted is of the wrong type
                unhashable += 1
        counts, missing, invalid = _classify_counts(counted)
        return counts, missing, invalid + unhashable


#: pandas' missing-value scalars (``pd.NA``, ``pd.NaT``), known by type name
#: so that reading a column never imports pandas.
_PANDAS_MISSING = frozenset({"NAType", "NaTType"})


def _classify_counts(counted: Mapping[Any, int]) -> tuple[dict[str, int], int, int]:
    counts: dict[str, int] = {}
    missing = invalid = 0
    for value, count in counted.items():
        if type(value) is str:
            counts[value] = count
        elif (
            value is None
            or (isinstance(value, float) and value != value)
            or type(value).__name__ in _PANDAS_MISSING
        ):
            missing += count
        elif isinstance(value, str):
            key = str(value)
            counts[key] = counts.get(key, 0) + count
        else:
            invalid += count
    return counts, missing, invalid


def _infer_kind(values: Any) -> Kind:
    """numeric for number dtypes or mostly-number objects, else categorical."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iufb":
        return "numeric"
    if isinstance(values, np.ndarray):
        if values.dtype.kind != "O":
            return "categorical"
        values = values.tolist()
    elif not isinstance(values, list):
        values = list(values)
    numbers = strings = 0
    for value in values[:10_000] if len(values) > 10_000 else values:
        if isinstance(value, str):
            strings += 1
        elif isinstance(value, (int, float, np.number)) and not (
            isinstance(value, float) and value != value
        ):
            numbers += 1
    return "numeric" if numbers > strings else "categorical"


# ---------------------------------------------------------------------------
# Strict reading helpers


def _get(data: Mapping[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise ProfileFormatError(f"{where}: missing key {key!r}")
    value = data[key]
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ProfileFormatError(f"{where}.{key}: expected {types}, got a bool")
    if not isinstance(value, types):
        raise ProfileFormatError(f"{where}.{key}: expected {types}, got {type(value).__name__}")
    return value


def _count(data: Mapping[str, Any], key: str, where: str) -> int:
    value = _get(data, key, int, where)
    if value < 0:
        raise ProfileFormatError(f"{where}.{key}: a count cannot be negative")
    return int(value)


def _number(data: Mapping[str, Any], key: str, where: str, *, optional: bool = False) -> float:
    if optional and data.get(key, 0) is None:
        return math.nan
    value = _finite(_get(data, key, (int, float), where))
    if value is None:
        raise ProfileFormatError(f"{where}.{key}: must be finite")
    return value


def _finite(value: int | float) -> float | None:
    """The value as a finite float, or None (NaN, infinite, an int beyond float range)."""
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _counts_list(data: Mapping[str, Any], key: str, length: int, where: str) -> I64:
    value = _get(data, key, list, where)
    if len(value) != length:
        raise ProfileFormatError(f"{where}.{key}: expected {length} counts, got {len(value)}")
    counts = np.array(value, dtype=object if set(map(type, value)) - {int} else None)
    # Only JSON integers (not bools) give an integer array; huge ones do not.
    if len(value) and (counts.dtype.kind != "i" or counts.min() < 0):
        raise ProfileFormatError(f"{where}.{key}: counts are non-negative integers")
    return counts.astype(np.int64, copy=False)


def _only_keys(data: Mapping[str, Any], keys: frozenset[str], where: str) -> None:
    unknown = set(data) - keys
    if unknown:
        raise ProfileFormatError(f"{where}: unknown keys {sorted(unknown)}")


def _finite_or_none(value: float) -> float | None:
    return None if math.isnan(value) else value


# ---------------------------------------------------------------------------
# Feature profiles: frozen values


def _frozen_array(values: Any, dtype: np.dtype[Any]) -> Any:
    """A read-only array that nothing else can write to (copied unless it already is one)."""
    if (
        type(values) is np.ndarray
        and values.dtype is dtype
        and values.base is None
        and not values.flags.writeable
    ):
        return values
    return _read_only(np.array(values, dtype=dtype))


def _read_only(array: Any) -> Any:
    """Lock an array that nothing else holds, so that a frozen value can take it as it is."""
    array.flags.writeable = False
    return array


def _frozen_floats(values: Any) -> F64:
    frozen: F64 = _frozen_array(values, _F64_DTYPE)
    return frozen


def _frozen_counts(values: Any) -> I64:
    frozen: I64 = _frozen_array(values, _I64_DTYPE)
    return frozen


def _frozen_mapping(values: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(values))


def _same_float(a: float, b: float) -> bool:
    """Equal, with NaN (no value) equal to NaN."""
    return a == b or (a != a and b != b)


# Arrays compare by their values; NaN (no min or max yet) equals NaN. Neither is
# hashed: a hash of the other fields stays consistent with equality.
_ARRAY_EQ: Final = attrs.cmp_using(eq=np.array_equal)
_F64_DTYPE: Final = np.dtype(np.float64)
_I64_DTYPE: Final = np.dtype(np.int64)
_FLOAT_EQ: Final = attrs.cmp_using(eq=_same_float)
_NAN_ARRAY_EQ: Final = attrs.cmp_using(eq=lambda a, b: np.array_equal(a, b, equal_nan=True))
_NO_FLOATS: Final = np.empty(0, np.float64)


@attrs.frozen(kw_only=True)
class NumericProfile:
    """The summary of one numeric feature (a value: read-only, arrays included).

    Counts: ``count`` (every row seen), ``missing`` (None or absent),
    ``nan``, ``posinf``, ``neginf``, ``invalid`` (a value of the wrong type,
    such as a string) and ``n`` (finite values). Over the finite values:
    ``min``, ``max`` (NaN when ``n`` is 0), ``mean``, ``variance`` (merged
    with Chan et al.'s formula), ``bins`` (counts between the reference's
    quantile ``edges``; the first and last bins are open-ended) and ``below``
    / ``above`` (how many were outside the reference range ``[low, high]``);
    ``tail_low`` / ``tail_high`` are the sums of the values in the two outer
    bins.

    Point masses and where values sit in their bins (format version 2;
    -1 and empty arrays where a profile does not keep them, as one read
    from a version-1 document): ``at_min`` / ``at_max`` count the values
    equal to ``min`` / ``max``; ``mode`` is a frequent value and
    ``mode_count`` at least its count; ``heaviest`` is at least the count of
    any single value; per bin, ``sums`` of the values, their smallest
    and largest (``lows`` / ``highs``, NaN for an empty bin) and how many
    equal those (``at_lows`` / ``at_highs``). They show
    clipping and stuck values (``pile_up`` in a comparison) and make the
    Wasserstein distance of heaped or tied values accurate.
    """

    kind: ClassVar[Kind] = "numeric"

    name: str
    edges: F64 = attrs.field(converter=_frozen_floats, eq=_ARRAY_EQ, hash=False)
    low: float
    high: float
    count: int
    missing: int
    nan: int
    posinf: int
    neginf: int
    invalid: int
    n: int
    min: float = attrs.field(eq=_FLOAT_EQ, hash=False)
    max: float = attrs.field(eq=_FLOAT_EQ, hash=False)
    mean: float
    m2: float
    bins: I64 = attrs.field(converter=_frozen_counts, eq=_ARRAY_EQ, hash=False)
    below: int
    above: int
    tail_low: float
    tail_high: float
    at_min: int = -1
    at_max: int = -1
    mode: float = attrs.field(default=math.nan, eq=_FLOAT_EQ, hash=False)
    mode_count: int = -1
    heaviest: int = -1
    sums: F64 = attrs.field(
        default=_NO_FLOATS, converter=_frozen_floats, eq=_NAN_ARRAY_EQ, hash=False
    )
    lows: F64 = attrs.field(
        default=_NO_FLOATS, converter=_frozen_floats, eq=_NAN_ARRAY_EQ, hash=False
    )
    highs: F64 = attrs.field(
        default=_NO_FLOATS, converter=_frozen_floats, eq=_NAN_ARRAY_EQ, hash=False
    )
    at_lows: I64 = attrs.field(
        default=np.empty(0, np.int64), converter=_frozen_counts, eq=_ARRAY_EQ, hash=False
    )
    at_highs: I64 = attrs.field(
        default=np.empty(0, np.int64), converter=_frozen_counts, eq=_ARRAY_EQ, hash=False
    )

    @property
    def points(self) -> bool:
        """Whether the point-mass counts (``at_min``, ``at_max``, ``mode_count``...) are kept."""
        return self.n == 0 or self.at_min >= 0

    @property
    def spread(self) -> bool:
        """Whether the bins' ``sums``, ``lows`` and ``highs`` are kept."""
        return self.n == 0 or len(self.sums) == len(self.bins)

    @property
    def variance(self) -> float:
        """The population variance of the finite values (NaN when there are none)."""
        return self.m2 / self.n if self.n else math.nan

    @property
    def std(self) -> float:
        """The population standard deviation of the finite values."""
        return math.sqrt(self.variance)

    @property
    def missing_rate(self) -> float:
        """Share of rows that were missing or NaN."""
        return (self.missing + self.nan) / self.count if self.count else 0.0

    @property
    def invalid_rate(self) -> float:
        """Share of rows of the wrong type or infinite."""
        return (self.invalid + self.posinf + self.neginf) / self.count if self.count else 0.0

    def _layout(self) -> tuple[Any, ...]:
        return ("numeric", self.name, self.edges.tobytes(), self.low, self.high)

    def _accumulator(self) -> _NumericAccumulator:
        """An empty accumulator on exactly this layout."""
        return _NumericAccumulator(self.name, self.edges, self.low, self.high)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (see :meth:`Profile.to_dict`)."""
        return {
            "name": self.name,
            "kind": "numeric",
            "count": self.count,
            "missing": self.missing,
            "nan": self.nan,
            "posinf": self.posinf,
            "neginf": self.neginf,
            "invalid": self.invalid,
            "n": self.n,
            "min": _finite_or_none(self.min),
            "max": _finite_or_none(self.max),
            "mean": self.mean,
            "m2": self.m2,
            "low": self.low,
            "high": self.high,
            "edges": self.edges.tolist(),
            "bins": self.bins.tolist(),
            "below": self.below,
            "above": self.above,
            "tail_low": self.tail_low,
            "tail_high": self.tail_high,
            **self._points_dict(),
        }

    def _points_dict(self) -> dict[str, Any]:
        points, spread = self.points, self.spread
        empty = not self.n

        def floats(values: F64) -> list[float | None]:
            return [_finite_or_none(v) for v in values.tolist()]

        return {
            "at_min": (0 if empty else self.at_min) if points else None,
            "at_max": (0 if empty else self.at_max) if points else None,
            "mode": _finite_or_none(self.mode) if points and not empty else None,
            "mode_count": (0 if empty else self.mode_count) if points else None,
            "heaviest": (0 if empty else self.heaviest) if points else None,
            "sums": (floats(self.sums) if len(self.sums) else None) if spread else None,
            "lows": (floats(self.lows) if len(self.lows) else None) if spread else None,
            "highs": (floats(self.highs) if len(self.highs) else None) if spread else None,
            "at_lows": (self.at_lows.tolist() if len(self.sums) else None) if spread else None,
            "at_highs": (self.at_highs.tolist() if len(self.sums) else None) if spread else None,
        }

    _KEYS_V1: ClassVar[frozenset[str]] = frozenset(
        {"name", "kind", "count", "missing", "nan", "posinf", "neginf", "invalid", "n", "min",
         "max", "mean", "m2", "low", "high", "edges", "bins", "below", "above", "tail_low",
         "tail_high"}
    )  # fmt: skip
    _KEYS: ClassVar[frozenset[str]] = _KEYS_V1 | frozenset(
        {
            "at_min",
            "at_max",
            "mode",
            "mode_count",
            "heaviest",
            "sums",
            "lows",
            "highs",
            "at_lows",
            "at_highs",
        }
    )

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], where: str, version: int = VERSION
    ) -> NumericProfile:
        """Read :meth:`to_dict` output back, strictly (version 1: without point masses)."""
        _only_keys(data, cls._KEYS if version >= 2 else cls._KEYS_V1, where)
        if version >= 2:
            for key in cls._KEYS - cls._KEYS_V1:
                if key not in data:
                    raise ProfileFormatError(f"{where}.{key}: missing")
        edges_raw = _get(data, "edges", list, where)
        if not all(type(e) in (int, float) and _finite(e) is not None for e in edges_raw):
            raise ProfileFormatError(f"{where}.edges: finite numbers only")
        edges = _read_only(np.array(edges_raw, dtype=np.float64))
        if len(edges) > 1 and not (np.diff(edges) > 0).all():
            raise ProfileFormatError(f"{where}.edges: must be strictly increasing")
        counts = {
            key: _count(data, key, where)
            for key in ("count", "missing", "nan", "posinf", "neginf", "invalid", "n")
        }
        feature = cls(
            name=_get(data, "name", str, where),
            edges=edges,
            low=_number(data, "low", where),
            high=_number(data, "high", where),
            **counts,
            min=_number(data, "min", where, optional=True),
            max=_number(data, "max", where, optional=True),
            mean=_number(data, "mean", where),
            m2=_number(data, "m2", where),
            bins=_read_only(_counts_list(data, "bins", len(edges) + 1, where)),
            below=_count(data, "below", where),
            above=_count(data, "above", where),
            tail_low=_number(data, "tail_low", where),
            tail_high=_number(data, "tail_high", where),
            **(_read_points(data, len(edges) + 1, where) if version >= 2 else {}),
        )
        parts = (
            feature.missing
            + feature.nan
            + feature.posinf
            + feature.neginf
            + feature.invalid
            + feature.n
        )
        if parts != feature.count or int(feature.bins.sum()) != feature.n:
            raise ProfileFormatError(f"{where}: counts do not add up")
        if feature.below + feature.above > feature.n or feature.m2 < 0:
            raise ProfileFormatError(f"{where}: inconsistent statistics")
        if feature.n and (math.isnan(feature.min) or math.isnan(feature.max)):
            raise ProfileFormatError(f"{where}: min and max are required when n > 0")
        if feature.at_min >= 0 and (
            max(feature.at_min, feature.at_max, feature.mode_count, feature.heaviest) > feature.n
            or min(feature.at_min, feature.at_max, feature.mode_count, feature.heaviest) < 0
            or feature.mode_count > feature.heaviest
        ):
            raise ProfileFormatError(f"{where}: inconsistent point masses")
        return feature


def _read_points(data: Mapping[str, Any], bins: int, where: str) -> dict[str, Any]:
    """The version-2 point masses and bin spreads of a numeric feature (null: not kept)."""
    out: dict[str, Any] = {}
    counts = ("at_min", "at_max", "mode_count", "heaviest")
    if all(data.get(key) is None for key in counts):
        if data.get("mode") is not None:
            raise ProfileFormatError(f"{where}.mode: given without its count")
    else:
        for key in counts:
            out[key] = _count(data, key, where)
        out["mode"] = _number(data, "mode", where, optional=True)
    arrays = ("sums", "lows", "highs")
    if any(data.get(key) is not None for key in arrays):
        for key in arrays:
            raw = _get(data, key, list, where)
            if len(raw) != bins or not all(
                v is None or (type(v) in (int, float) and _finite(v) is not None) for v in raw
            ):
                raise ProfileFormatError(f"{where}.{key}: {bins} finite numbers or nulls")
            if key == "sums" and None in raw:
                raise ProfileFormatError(f"{where}.sums: numbers only")
            out[key] = np.array([math.nan if v is None else v for v in raw], dtype=np.float64)
        for key in ("at_lows", "at_highs"):
            out[key] = _counts_list(data, key, bins, where)
    return out


@attrs.frozen(kw_only=True)
class CategoricalProfile:
    """The summary of one categorical (string) feature (a value: read-only).

    ``counts`` are the counts of the reference's known ``categories``;
    ``other`` counts every other value, and ``heavy`` names the most frequent
    of those (a Misra-Gries summary of at most ``heavy_k`` entries: each
    count is low by at most :attr:`heavy_error`). ``missing`` counts None,
    NaN and absent values; ``invalid`` values that are not strings.
    """

    kind: ClassVar[Kind] = "categorical"

    name: str
    categories: tuple[str, ...]
    heavy_k: int
    count: int
    missing: int
    invalid: int
    other: int
    counts: I64 = attrs.field(converter=_frozen_counts, eq=_ARRAY_EQ, hash=False)
    heavy: Mapping[str, int] = attrs.field(converter=_frozen_mapping, hash=False)

    @property
    def n(self) -> int:
        """Rows with a string value."""
        return int(self.counts.sum()) + self.other

    @property
    def missing_rate(self) -> float:
        """Share of rows that were missing."""
        return self.missing / self.count if self.count else 0.0

    @property
    def invalid_rate(self) -> float:
        """Share of rows whose value was not a string."""
        return self.invalid / self.count if self.count else 0.0

    @property
    def heavy_error(self) -> float:
        """How much any ``heavy`` count (or an absent one) may undercount."""
        return (self.other - sum(self.heavy.values())) / (self.heavy_k + 1)

    def _layout(self) -> tuple[Any, ...]:
        return ("categorical", self.name, self.categories, self.heavy_k)

    def _accumulator(self) -> _CategoricalAccumulator:
        """An empty accumulator on exactly this layout."""
        return _CategoricalAccumulator(self.name, self.categories, self.heavy_k)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (see :meth:`Profile.to_dict`)."""
        return {
            "name": self.name,
            "kind": "categorical",
            "count": self.count,
            "missing": self.missing,
            "invalid": self.invalid,
            "categories": list(self.categories),
            "counts": self.counts.tolist(),
            "other": self.other,
            "heavy_k": self.heavy_k,
            "heavy": [[v, c] for v, c in sorted(self.heavy.items())],
        }

    _KEYS: ClassVar[frozenset[str]] = frozenset(
        {"name", "kind", "count", "missing", "invalid", "categories", "counts", "other",
         "heavy_k", "heavy"}
    )  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> CategoricalProfile:
        """Read :meth:`to_dict` output back, strictly."""
        _only_keys(data, cls._KEYS, where)
        categories = _get(data, "categories", list, where)
        if not all(isinstance(c, str) for c in categories) or len(set(categories)) != len(
            categories
        ):
            raise ProfileFormatError(f"{where}.categories: distinct strings only")
        heavy_k = _count(data, "heavy_k", where)
        if heavy_k < 1:
            raise ProfileFormatError(f"{where}.heavy_k: must be at least 1")
        known = set(categories)
        other = _count(data, "other", where)
        heavy_raw = _get(data, "heavy", list, where)
        if len(heavy_raw) > heavy_k:
            raise ProfileFormatError(f"{where}.heavy: more than heavy_k entries")
        heavy: dict[str, int] = {}
        for item in heavy_raw:
            if (
                not isinstance(item, list)
                or len(item) != 2
                or not isinstance(item[0], str)
                or type(item[1]) is not int
                or item[1] <= 0
                or item[0] in known
            ):
                raise ProfileFormatError(f"{where}.heavy: [new category, count > 0] pairs")
            heavy[item[0]] = item[1]
        if len(heavy) != len(heavy_raw) or sum(heavy.values()) > other:
            raise ProfileFormatError(f"{where}.heavy: inconsistent with 'other'")
        feature = cls(
            name=_get(data, "name", str, where),
            categories=tuple(categories),
            heavy_k=heavy_k,
            count=_count(data, "count", where),
            missing=_count(data, "missing", where),
            invalid=_count(data, "invalid", where),
            other=other,
            counts=_read_only(_counts_list(data, "counts", len(categories), where)),
            heavy=heavy,
        )
        if feature.n + feature.missing + feature.invalid != feature.count:
            raise ProfileFormatError(f"{where}: counts do not add up")
        return feature


def _moments(
    n: int, mean: float, m2: float, other_n: int, other_mean: float, other_m2: float
) -> tuple[int, float, float]:
    """Count, mean and sum of squared deviations of two parts together (Chan et al.)."""
    if not n:  # taken as they are, so that a copy is exact
        return other_n, other_mean, other_m2
    if not other_n:
        return n, mean, m2
    total = n + other_n
    # Symmetric in the two sides, so that merging is exactly commutative.
    delta = other_mean - mean
    joint = (n * mean + other_n * other_mean) / total
    if not math.isfinite(joint):  # means near the float limits: weigh each first
        joint = mean * (n / total) + other_mean * (other_n / total)
    return total, joint, _saturated(m2 + other_m2 + delta * delta * (n * other_n / total))


#: Below this magnitude, squared deviations of a chunk cannot overflow.
_SQUARES_SAFE: Final = 2.0**480
_FLOAT_MAX: Final = sys.float_info.max


def _saturated(x: float) -> float:
    """*x*, held within the finite floats (a sum past the float limits stays the largest)."""
    if math.isfinite(x):
        return x
    if math.isnan(x):
        return _FLOAT_MAX  # inf - inf: two saturated sums of opposite sides
    return _FLOAT_MAX if x > 0 else -_FLOAT_MAX


def _sum(values: F64) -> float:
    """The sum of finite *values*, saturated rather than overflowing."""
    with np.errstate(over="ignore", invalid="ignore"):
        return _saturated(float(values.sum()))


def _scaled_moments(chunk: F64, largest: float) -> tuple[float, float]:
    """Mean and sum of squared deviations of values near the float limits.

    Scaled by a power of two (exact) so that neither the sum nor the squares
    overflow; a sum of squares beyond the largest float saturates there.
    """
    if bool((chunk == chunk[0]).all()):
        return float(chunk[0]), 0.0
    scale = math.ldexp(1.0, math.frexp(largest)[1] - 1)
    scaled = chunk / scale
    mean = float(scaled.mean())
    deviation = scaled - mean
    np.square(deviation, out=deviation)
    m2 = float(deviation.sum())
    return mean * scale, _saturated(m2 * scale * scale)


def _merge_features(a: FeatureProfile, b: FeatureProfile) -> FeatureProfile:
    """Two features of the same layout added up, as a new value."""
    if isinstance(a, NumericProfile):
        assert isinstance(b, NumericProfile)
        n, mean, m2 = _moments(a.n, a.mean, a.m2, b.n, b.mean, b.m2)
        return NumericProfile(
            name=a.name,
            edges=a.edges,
            low=a.low,
            high=a.high,
            count=a.count + b.count,
            missing=a.missing + b.missing,
            nan=a.nan + b.nan,
            posinf=a.posinf + b.posinf,
            neginf=a.neginf + b.neginf,
            invalid=a.invalid + b.invalid,
            n=n,
            min=b.min if not a.n else a.min if not b.n else min(a.min, b.min) + 0.0,
            max=b.max if not a.n else a.max if not b.n else max(a.max, b.max) + 0.0,
            mean=mean,
            m2=m2,
            bins=_read_only(a.bins + b.bins),
            below=a.below + b.below,
            above=a.above + b.above,
            tail_low=_saturated(a.tail_low + b.tail_low),
            tail_high=_saturated(a.tail_high + b.tail_high),
            **_merge_points(a, b),
        )
    assert isinstance(b, CategoricalProfile)
    return CategoricalProfile(
        name=a.name,
        categories=a.categories,
        heavy_k=a.heavy_k,
        count=a.count + b.count,
        missing=a.missing + b.missing,
        invalid=a.invalid + b.invalid,
        other=a.other + b.other,
        counts=_read_only(a.counts + b.counts),
        heavy=_misra_gries(a.heavy, b.heavy, a.heavy_k),
    )


def _points_of(f: NumericProfile | _NumericAccumulator) -> dict[str, Any]:
    """A feature's point masses and bin spreads (an empty one's are known: nothing)."""
    if not f.n:
        size = len(f.bins)
        nan = np.full(size, math.nan)
        zeros = np.zeros(size, np.int64)
        return {
            "at_min": 0, "at_max": 0, "mode": math.nan, "mode_count": 0, "heaviest": 0,
            "sums": np.zeros(size), "lows": nan, "highs": nan.copy(),
            "at_lows": zeros, "at_highs": zeros.copy(),
        }  # fmt: skip
    return {key: getattr(f, key) for key in _POINT_KEYS}


_POINT_KEYS: Final = ("at_min", "at_max", "mode", "mode_count", "heaviest", "sums", "lows",
                      "highs", "at_lows", "at_highs")  # fmt: skip


def _merge_points(
    a: NumericProfile | _NumericAccumulator, b: NumericProfile | _NumericAccumulator
) -> dict[str, Any]:
    """The point masses and bin spreads of two features added up (unknown stays unknown)."""
    if not b.n:
        return _points_of(a)
    if not a.n:
        return _points_of(b)
    out: dict[str, Any] = {}
    if a.at_min < 0 or b.at_min < 0:
        out.update(at_min=-1, at_max=-1, mode=math.nan, mode_count=-1, heaviest=-1)
    else:
        out["at_min"] = (
            a.at_min if a.min < b.min else b.at_min if b.min < a.min else a.at_min + b.at_min
        )
        out["at_max"] = (
            a.at_max if a.max > b.max else b.at_max if b.max > a.max else a.at_max + b.at_max
        )
        if a.mode == b.mode:
            out["mode"], out["mode_count"] = a.mode, a.mode_count + b.mode_count
        elif (a.mode_count, -a.mode) >= (b.mode_count, -b.mode):  # ties: the smaller value
            out["mode"], out["mode_count"] = a.mode, a.mode_count
        else:
            out["mode"], out["mode_count"] = b.mode, b.mode_count
        out["heaviest"] = min(a.heaviest + b.heaviest, a.n + b.n)
    if len(a.sums) != len(a.bins) or len(b.sums) != len(b.bins):
        none = np.empty(0, np.int64)
        out.update(sums=_NO_FLOATS, lows=_NO_FLOATS, highs=_NO_FLOATS, at_lows=none, at_highs=none)
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            out["sums"] = _saturated_array(a.sums + b.sums)
        out["lows"] = np.fmin(a.lows, b.lows)
        out["highs"] = np.fmax(a.highs, b.highs)
        out["at_lows"] = _at_extreme(a.lows, a.at_lows, b.lows, b.at_lows, np.less)
        out["at_highs"] = _at_extreme(a.highs, a.at_highs, b.highs, b.at_highs, np.greater)
    return out


def _at_extreme(a: F64, a_at: I64, b: F64, b_at: I64, beyond: Any) -> I64:
    """Counts at the per-bin extremes of two sides: the further one's, or both when equal."""
    a_empty, b_empty = np.isnan(a), np.isnan(b)
    out: I64 = np.where(
        a == b,
        a_at + b_at,
        np.where(b_empty | (~a_empty & beyond(a, b)), a_at, b_at),
    ).astype(np.int64)
    return out


def _saturated_array(values: F64) -> F64:
    """:func:`_saturated`, element by element."""
    if np.isfinite(values).all():
        return values
    out: F64 = np.where(np.isnan(values), _FLOAT_MAX, np.clip(values, -_FLOAT_MAX, _FLOAT_MAX))
    return out


def _misra_gries(a: Mapping[str, int], b: Mapping[str, int], k: int) -> dict[str, int]:
    """Merge two Misra-Gries summaries (or a summary and exact counts), keep k.

    Agarwal et al., "Mergeable Summaries" (PODS 2012): add the counters, then
    subtract the (k+1)-th largest from all and drop those left at zero.
    """
    merged = dict(a)
    for value, count in b.items():
        merged[value] = merged.get(value, 0) + count
    if len(merged) <= k:
        return merged
    cut = heapq.nlargest(k + 1, merged.values())[-1]
    return {v: c - cut for v, c in merged.items() if c > cut}


FeatureProfile: TypeAlias = NumericProfile | CategoricalProfile


# ---------------------------------------------------------------------------
# Feature accumulators: the mutable state behind a ProfileBuilder


@attrs.define(eq=False, init=False)
class _NumericAccumulator:
    """Counts, moments and bins of one numeric feature, updated in place."""

    name: str
    edges: F64
    low: float
    high: float
    count: int
    missing: int
    nan: int
    posinf: int
    neginf: int
    invalid: int
    n: int
    below: int
    above: int
    min: float
    max: float
    mean: float
    m2: float
    tail_low: float
    tail_high: float
    bins: I64
    at_min: int
    at_max: int
    mode: float
    mode_count: int
    heaviest: int
    sums: F64
    lows: F64
    highs: F64
    at_lows: I64
    at_highs: I64

    def __init__(self, name: str, edges: F64, low: float, high: float) -> None:
        self.name = name
        self.edges = _frozen_floats(edges)  # shared by every profile built on this layout
        self.low = low
        self.high = high
        self.count = self.missing = self.nan = self.posinf = self.neginf = 0
        self.invalid = self.n = self.below = self.above = 0
        self.min = self.max = math.nan
        self.mean = 0.0
        self.m2 = 0.0
        self.tail_low = self.tail_high = 0.0
        self.bins = np.zeros(len(edges) + 1, dtype=np.int64)
        for key, value in _points_of(self).items():
            setattr(self, key, value)

    def _layout(self) -> tuple[Any, ...]:
        return ("numeric", self.name, self.edges.tobytes(), self.low, self.high)

    def _add(self, values: F64, missing: int = 0, invalid: int = 0) -> None:
        """Fold a column of values in: one sort, then bisection and one moments pass.

        Sorting the finite values once pays for itself: the bins, the outer
        bins' sums, the extremes and the counts beyond the layout's range are
        bisections of the sorted values instead of one comparison pass per
        bin edge, and the point masses need the order anyway.
        """
        self.count += len(values) + missing + invalid
        self.missing += missing
        self.invalid += invalid
        if not len(values):
            return
        finite = np.isfinite(values)
        if not finite.all():
            nan = int(np.count_nonzero(np.isnan(values)))
            pos = int(np.count_nonzero(values == math.inf))
            self.nan += nan
            self.posinf += pos
            self.neginf += len(values) - int(np.count_nonzero(finite)) - nan - pos
            values = values[finite]
        size = len(values)
        if not size:
            return
        ordered = np.sort(values)
        ordered += 0.0  # -0.0 is 0.0: one value, one spelling
        # Point masses over the whole call (exact within it), before n, min and max move.
        self._add_points(ordered)
        for start in range(0, size, _CHUNK):
            chunk = ordered[start : start + _CHUNK]
            largest = max(-float(chunk[0]), float(chunk[-1]))
            if largest < _SQUARES_SAFE:
                mean = float(chunk.mean())
                deviation = chunk - mean
                # square-and-sum in place: np.dot goes through BLAS, which is
                # several times slower here on freshly allocated chunks.
                np.square(deviation, out=deviation)
                self._merge_moments(len(chunk), mean, float(deviation.sum()))
            else:
                self._merge_moments(len(chunk), *_scaled_moments(chunk, largest))
        low, high = float(ordered[0]), float(ordered[-1])
        if self.n == size or low < self.min:
            self.min = low
        if self.n == size or high > self.max:
            self.max = high
        cuts = np.searchsorted(ordered, self.edges, side="left")  # values below each edge
        if len(cuts):
            self.bins[0] += int(cuts[0])
            self.bins[1:-1] += np.diff(cuts)
            self.bins[-1] += size - int(cuts[-1])
            # Sums in the open-ended outer bins make Wasserstein's tails exact.
            if cuts[0]:
                self.tail_low = _saturated(self.tail_low + _sum(ordered[: cuts[0]]))
            if cuts[-1] < size:
                self.tail_high = _saturated(self.tail_high + _sum(ordered[cuts[-1] :]))
        else:
            self.bins[0] += size
        if low < self.low:
            self.below += int(np.searchsorted(ordered, self.low, side="left"))
        if high > self.high:
            self.above += size - int(np.searchsorted(ordered, self.high, side="right"))

    def _merge_moments(self, n: int, mean: float, m2: float) -> None:
        self.n, self.mean, self.m2 = _moments(self.n, self.mean, self.m2, n, mean, m2)

    def _add_points(self, ordered: F64) -> None:
        """Point masses and bin spreads of sorted finite values (before n, min and max move).

        Everything is bisection of the sorted values and one pass for the
        longest run of equal values.
        """
        size = len(ordered)
        first = self.n == 0

        def run(value: float) -> int:
            return int(
                np.searchsorted(ordered, value, side="right")
                - np.searchsorted(ordered, value, side="left")
            )

        if self.at_min >= 0:
            low, high = float(ordered[0]), float(ordered[-1])
            at_low, at_high = run(low), run(high)
            if first or low < self.min:
                self.at_min = at_low
            elif low == self.min:
                self.at_min += at_low
            if first or high > self.max:
                self.at_max = at_high
            elif high == self.max:
                self.at_max += at_high
            if not first:
                self.mode_count += run(self.mode)
            new = np.empty(size, dtype=bool)
            new[0] = True
            np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
            starts_of_runs = np.flatnonzero(new)
            lengths = np.diff(np.append(starts_of_runs, size))
            longest = int(np.argmax(lengths))
            count = int(lengths[longest])
            if count > self.mode_count:
                self.mode, self.mode_count = float(ordered[starts_of_runs[longest]]), count
            self.heaviest = min(self.heaviest + count, self.n + size)
        if len(self.sums):
            cuts = np.searchsorted(ordered, self.edges, side="left")
            starts = np.concatenate([[0], cuts])
            stops = np.concatenate([cuts, [size]])
            present = np.flatnonzero(stops > starts)
            begin, end = starts[present], stops[present]
            bottom, top = ordered[begin], ordered[end - 1]
            at_bottom = np.searchsorted(ordered, bottom, side="right") - begin
            at_top = end - np.searchsorted(ordered, top, side="left")
            with np.errstate(over="ignore", invalid="ignore"):
                sums = np.zeros(len(self.bins))
                sums[present] = np.add.reduceat(ordered, begin)
                self.sums = _saturated_array(self.sums + sums)
            old_low, old_high = self.lows[present], self.highs[present]
            self.at_lows[present] = np.where(
                np.isnan(old_low) | (bottom < old_low),
                at_bottom,
                np.where(
                    bottom == old_low, self.at_lows[present] + at_bottom, self.at_lows[present]
                ),
            )
            self.at_highs[present] = np.where(
                np.isnan(old_high) | (top > old_high),
                at_top,
                np.where(top == old_high, self.at_highs[present] + at_top, self.at_highs[present]),
            )
            self.lows[present] = np.fmin(old_low, bottom)
            self.highs[present] = np.fmax(old_high, top)

    def _fold(self, other: NumericProfile) -> None:
        """Add a profile on the same layout."""
        self.count += other.count
        self.missing += other.missing
        self.nan += other.nan
        self.posinf += other.posinf
        self.neginf += other.neginf
        self.invalid += other.invalid
        self.below += other.below
        self.above += other.above
        self.bins += other.bins
        self.tail_low = _saturated(self.tail_low + other.tail_low)
        self.tail_high = _saturated(self.tail_high + other.tail_high)
        for key, value in _merge_points(self, other).items():
            setattr(self, key, value.copy() if isinstance(value, np.ndarray) else value)
        if other.n:
            self.min = other.min if not self.n else min(self.min, other.min)
            self.max = other.max if not self.n else max(self.max, other.max)
            self._merge_moments(other.n, other.mean, other.m2)

    def _build(self) -> NumericProfile:
        return NumericProfile(
            name=self.name,
            edges=self.edges,
            low=self.low,
            high=self.high,
            count=self.count,
            missing=self.missing,
            nan=self.nan,
            posinf=self.posinf,
            neginf=self.neginf,
            invalid=self.invalid,
            n=self.n,
            min=self.min,
            max=self.max,
            mean=self.mean,
            m2=self.m2,
            bins=self.bins,  # copied: the accumulator keeps counting into its own
            below=self.below,
            above=self.above,
            tail_low=self.tail_low,
            tail_high=self.tail_high,
            at_min=self.at_min,
            at_max=self.at_max,
            mode=self.mode,
            mode_count=self.mode_count,
            heaviest=self.heaviest,
            sums=self.sums,
            lows=self.lows,
            highs=self.highs,
            at_lows=self.at_lows,
            at_highs=self.at_highs,
        )


@attrs.define(eq=False, init=False)
class _CategoricalAccumulator:
    """Known-category counts and the heavy-hitter summary of one feature, updated in place."""

    name: str
    categories: tuple[str, ...]
    heavy_k: int
    count: int
    missing: int
    invalid: int
    other: int
    counts: I64
    heavy: dict[str, int]
    _index: dict[str, int]

    def __init__(self, name: str, categories: tuple[str, ...], heavy_k: int) -> None:
        self.name = name
        self.categories = categories
        self._index = {c: i for i, c in enumerate(categories)}
        self.heavy_k = heavy_k
        self.count = self.missing = self.invalid = self.other = 0
        self.counts = np.zeros(len(categories), dtype=np.int64)
        self.heavy = {}

    def _layout(self) -> tuple[Any, ...]:
        return ("categorical", self.name, self.categories, self.heavy_k)

    def _add(self, counts: Mapping[str, int], missing: int = 0, invalid: int = 0) -> None:
        index = self._index
        known = self.counts
        new: dict[str, int] = {}
        for value, count in counts.items():
            i = index.get(value)
            if i is None:
                new[value] = count
            else:
                known[i] += count
        self.missing += missing
        self.invalid += invalid
        self.count += sum(counts.values()) + missing + invalid
        if new:
            self.other += sum(new.values())
            self.heavy = _misra_gries(self.heavy, new, self.heavy_k)

    def _fold(self, other: CategoricalProfile) -> None:
        """Add a profile on the same layout."""
        self.count += other.count
        self.missing += other.missing
        self.invalid += other.invalid
        self.other += other.other
        self.counts += other.counts
        self.heavy = _misra_gries(self.heavy, other.heavy, self.heavy_k)

    def _build(self) -> CategoricalProfile:
        return CategoricalProfile(
            name=self.name,
            categories=self.categories,
            heavy_k=self.heavy_k,
            count=self.count,
            missing=self.missing,
            invalid=self.invalid,
            other=self.other,
            counts=self.counts,  # copied, as are the heavy hitters
            heavy=self.heavy,
        )


_Accumulator: TypeAlias = _NumericAccumulator | _CategoricalAccumulator
# ---------------------------------------------------------------------------
# Schema


@attrs.frozen
class FeatureSpec:
    """One feature of a schema: its name, kind, observed range or known categories."""

    name: str
    kind: Kind
    low: float | None = None
    high: float | None = None
    categories: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        if self.kind == "numeric":
            return {"name": self.name, "kind": self.kind, "low": self.low, "high": self.high}
        return {"name": self.name, "kind": self.kind, "categories": list(self.categories)}


@attrs.frozen
class Schema:
    """The input schema a reference profile yields: features in order.

    ``fingerprint`` is the sha256 of the canonical JSON form, ready for
    :attr:`ModelRef.feature_schema <guardrail.ModelRef.feature_schema>`.
    """

    features: tuple[FeatureSpec, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """The feature names, in the order of a 2-D input's columns."""
        return tuple(f.name for f in self.features)

    def __getitem__(self, name: str) -> FeatureSpec:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"features": [f.to_dict() for f in self.features]}

    def to_json(self) -> str:
        """Canonical JSON: equal schemas, equal text."""
        return canonical_json(self.to_dict())

    @property
    def fingerprint(self) -> str:
        """The sha256 of :meth:`to_json`, as 64 hex digits."""
        return fingerprint_bytes(self.to_json().encode())


# ---------------------------------------------------------------------------
# Profile


def _feature_tuple(features: Iterable[FeatureProfile]) -> tuple[FeatureProfile, ...]:
    return tuple(features)


@attrs.frozen(repr=False)
class Profile:
    """Per-feature summaries of a data set: counts, moments, bins, categories.

    A profile is a value: it never changes, and :meth:`merge` returns a new
    one. Build a reference at training time from whatever holds the data;
    build serving profiles on its layout with :meth:`builder` (or ``like=``);
    merge any number of profiles that share a layout; store them as versioned
    JSON.

    >>> import numpy as np, guardrail as gr
    >>> ref = gr.Profile.from_columns({
    ...     "amount": np.arange(100.0),
    ...     "country": np.array(["FR", "DE"] * 50, dtype=object),
    ... })
    >>> ref.schema.names
    ('amount', 'country')
    >>> ref["amount"].mean, ref["country"].categories
    (49.5, ('DE', 'FR'))
    >>> gr.Profile.from_json(ref.to_json()) == ref
    True
    """

    _features: tuple[FeatureProfile, ...] = attrs.field(converter=_feature_tuple)
    _by_name: Mapping[str, FeatureProfile] = attrs.field(
        init=False, eq=False, hash=False, repr=False
    )

    def __attrs_post_init__(self) -> None:
        by_name: dict[str, FeatureProfile] = {}
        for feature in self._features:
            if feature.name in by_name:
                raise ConfigError(f"feature {feature.name!r} appears twice")
            by_name[feature.name] = feature
        object.__setattr__(self, "_by_name", by_name)

    # -- reading -------------------------------------------------------------

    def __getitem__(self, name: str) -> FeatureProfile:
        return self._by_name[name]

    def __iter__(self) -> Iterator[FeatureProfile]:
        return iter(self._features)

    def __len__(self) -> int:
        return len(self._features)

    def __repr__(self) -> str:
        return f"Profile(features={list(self.names)}, rows={self.rows})"

    @property
    def names(self) -> tuple[str, ...]:
        """The feature names, in order."""
        return tuple(self._by_name)

    @property
    def rows(self) -> int:
        """How many rows the profile has seen."""
        return max((f.count for f in self._features), default=0)

    @property
    def schema(self) -> Schema:
        """The schema: names, kinds, observed ranges and known categories."""
        specs = []
        for f in self._features:
            if isinstance(f, NumericProfile):
                specs.append(
                    FeatureSpec(f.name, "numeric", _finite_or_none(f.min), _finite_or_none(f.max))
                )
            else:
                specs.append(FeatureSpec(f.name, "categorical", categories=f.categories))
        return Schema(tuple(specs))

    def underutilized(self) -> tuple[tuple[str, str], ...]:
        """Features that carry (almost) no information: ``(name, reason)`` pairs.

        Reasons: ``"all_missing"``, ``"nearly_all_missing"`` (95% or more
        missing), ``"constant"`` (one value, or one category).
        """
        out = []
        for f in self._features:
            if f.count and f.n == 0:
                out.append((f.name, "all_missing"))
                continue
            if f.count and (f.count - f.n) / f.count >= _NEARLY_ALL_MISSING:
                out.append((f.name, "nearly_all_missing"))
            if isinstance(f, NumericProfile):
                if f.n and f.min == f.max:
                    out.append((f.name, "constant"))
            elif f.n and (f.other == 0 and int(np.count_nonzero(f.counts)) == 1):
                out.append((f.name, "constant"))
        return tuple(out)

    # -- building ------------------------------------------------------------

    @classmethod
    def from_columns(
        cls,
        columns: Mapping[str, Any],
        *,
        like: Profile | None = None,
        bins: int = 20,
        max_categories: int = 100,
        heavy_hitters: int = 64,
    ) -> Profile:
        """Profile a mapping of column name to values (numpy arrays, lists).

        Args:
            columns: Column name to 1-D values: numpy arrays, lists, pandas
                Series or pyarrow arrays. Numeric dtypes (and object columns
                that hold mostly numbers) become numeric features; the rest
                categorical.
            like: Reuse this profile's features, bins and categories (for a
                serving profile, or for one partition of a large reference:
                profile each partition ``like`` a profile of a sample, then
                merge). Columns it does not know are ignored; features it has
                and the columns lack count as missing.
            bins: Quantile bins per numeric feature (without ``like``).
            max_categories: Known categories kept per categorical feature
                (the most frequent); the others count as ``other``.
            heavy_hitters: Entries in the summary of new categories.
        """
        if not isinstance(columns, Mapping):
            raise ConfigError(f"columns must be a mapping, got {type(columns).__name__}")
        builder = _builder(like, bins, max_categories, heavy_hitters)
        builder.add_columns(columns)
        return builder.build()

    @classmethod
    def from_array(
        cls,
        array: Any,
        *,
        names: Sequence[str],
        like: Profile | None = None,
        bins: int = 20,
        max_categories: int = 100,
        heavy_hitters: int = 64,
    ) -> Profile:
        """Profile a 2-D numpy array whose columns are *names*."""
        array = np.asarray(array)
        if array.ndim != 2 or array.shape[1] != len(names):
            raise ConfigError(
                f"expected a 2-D array with {len(names)} columns, got shape {array.shape}"
            )
        return cls.from_columns(
            {name: array[:, j] for j, name in enumerate(names)},
            like=like,
            bins=bins,
            max_categories=max_categories,
            heavy_hitters=heavy_hitters,
        )

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[Mapping[str, Any]],
        *,
        like: Profile | None = None,
        bins: int = 20,
        max_categories: int = 100,
        heavy_hitters: int = 64,
    ) -> Profile:
        """Profile a sequence of row mappings (feature name to value).

        Without ``like`` the features are the keys seen, in order of first
        appearance; a row that lacks one counts it as missing.
        """
        builder = _builder(like, bins, max_categories, heavy_hitters)
        builder.add_rows(rows)
        return builder.build()

    @classmethod
    def from_pandas(
        cls,
        frame: Any,
        *,
        like: Profile | None = None,
        bins: int = 20,
        max_categories: int = 100,
        heavy_hitters: int = 64,
    ) -> Profile:
        """Profile a pandas DataFrame (pandas is needed only for this)."""
        try:
            import pandas as pd
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ConfigError("Profile.from_pandas needs pandas: pip install pandas") from e
        if not isinstance(frame, pd.DataFrame):
            raise ConfigError(f"from_pandas takes a DataFrame, got {type(frame).__name__}")
        columns = {str(name): _PandasColumn(frame[name]) for name in frame.columns}
        builder = _builder(like, bins, max_categories, heavy_hitters)
        builder.add_columns(columns)
        return builder.build()

    @classmethod
    def from_arrow(
        cls,
        table: Any,
        *,
        like: Profile | None = None,
        bins: int = 20,
        max_categories: int = 100,
        heavy_hitters: int = 64,
    ) -> Profile:
        """Profile a pyarrow Table (pyarrow is needed only for this)."""
        try:
            import pyarrow as pa
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ConfigError("Profile.from_arrow needs pyarrow: pip install pyarrow") from e
        if not isinstance(table, pa.Table):
            raise ConfigError(f"from_arrow takes a pyarrow Table, got {type(table).__name__}")
        columns = {name: _ArrowColumn(table.column(name)) for name in table.column_names}
        builder = _builder(like, bins, max_categories, heavy_hitters)
        builder.add_columns(columns)
        return builder.build()

    def builder(self) -> ProfileBuilder:
        """An empty builder on this profile's layout (bins, categories).

        Its reference range is this profile's observed range, so that
        ``below`` / ``above`` count values outside what this profile saw.

        >>> import numpy as np, guardrail as gr
        >>> ref = gr.Profile.from_columns({"amount": np.arange(100.0)})
        >>> serving = ref.builder()
        >>> serving.add_columns({"amount": [5.0, 150.0]})
        >>> serving.build()["amount"].above
        1
        """
        accumulators: list[_Accumulator] = []
        for f in self._features:
            if isinstance(f, NumericProfile) and f.n:
                accumulators.append(_NumericAccumulator(f.name, f.edges, f.min, f.max))
            else:
                accumulators.append(f._accumulator())
        return ProfileBuilder._on_layout(accumulators)

    # -- combining -----------------------------------------------------------

    def compatible(self, other: Profile) -> bool:
        """True if *other* has the same features, bins and categories."""
        if self.names != other.names:
            return False
        return all(a._layout() == b._layout() for a, b in zip(self, other, strict=True))

    def merge(self, other: Profile) -> Profile:
        """A new profile: this one plus *other* (same layout required).

        Merging is commutative and associative (the moments up to float
        rounding; the heavy-hitter summary within its error bound).
        """
        if not isinstance(other, Profile):
            raise TypeError(f"can only merge a Profile, got {type(other).__name__}")
        if not self.compatible(other):
            raise ProfileMismatchError(
                "profiles have different features, bins or categories; build serving "
                "profiles with reference.builder() or like=reference"
            )
        return Profile(map(_merge_features, self._features, other._features))

    # -- serializing ---------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``{"format", "version", "features": [...]}``."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "features": [f.to_dict() for f in self._features],
        }

    def to_json(self) -> str:
        """Compact JSON with sorted keys (no pickle, ever)."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Any) -> Profile:
        """Read :meth:`to_dict` output back; anything malformed is a ProfileFormatError."""
        with reading("a profile", ProfileFormatError):
            return cls._from_dict(data)

    @classmethod
    def _from_dict(cls, data: Any) -> Profile:
        if not isinstance(data, Mapping):
            raise ProfileFormatError(f"a profile is a JSON object, got {type(data).__name__}")
        _only_keys(data, frozenset({"format", "version", "features"}), "profile")
        if data.get("format") != FORMAT:
            raise ProfileFormatError(f"not a guardrail profile: format={brief(data.get('format'))}")
        version = _get(data, "version", int, "profile")
        if version > VERSION:
            raise ProfileFormatError(
                f"profile format version {version} is newer than this guardrail reads "
                f"({VERSION}); upgrade guardrail"
            )
        if version < 1:
            raise ProfileFormatError(f"unknown profile format version {version}")
        raw = _get(data, "features", list, "profile")
        features: list[FeatureProfile] = []
        for i, item in enumerate(raw):
            where = f"profile.features[{i}]"
            if not isinstance(item, Mapping):
                raise ProfileFormatError(f"{where}: expected an object")
            kind = item.get("kind")
            if kind == "numeric":
                features.append(NumericProfile.from_dict(item, where, version))
            elif kind == "categorical":
                features.append(CategoricalProfile.from_dict(item, where))
            else:
                raise ProfileFormatError(f"{where}.kind: unknown kind {brief(kind)}")
        try:
            return cls(features)
        except ConfigError as e:
            raise ProfileFormatError(str(e)) from e

    @classmethod
    def from_json(cls, text: str | bytes) -> Profile:
        """Read :meth:`to_json` output back; anything malformed is a ProfileFormatError."""
        return cls.from_dict(loads(text, "a profile", ProfileFormatError))


def _builder(
    like: Profile | None, bins: int, max_categories: int, heavy_hitters: int
) -> ProfileBuilder:
    if like is None:
        return ProfileBuilder(bins=bins, max_categories=max_categories, heavy_hitters=heavy_hitters)
    if not isinstance(like, Profile):
        raise ConfigError(f"like must be a Profile, got {type(like).__name__}")
    return like.builder()


# ---------------------------------------------------------------------------
# ProfileBuilder


@attrs.define(eq=False, init=False, repr=False)
class ProfileBuilder:
    """Accumulates data into a profile; :meth:`build` takes a :class:`Profile` of it.

    A builder is mutable state, a :class:`Profile` the value it yields:
    building takes a snapshot, and the builder can go on accumulating
    afterwards without changing what it built.

    ``ProfileBuilder()`` starts a fresh profile: the first data added fixes
    its layout (the features, their bin edges at that data's quantiles and
    their known categories), as :meth:`Profile.from_columns` does. A builder
    on an existing layout comes from :meth:`Profile.builder`, for serving
    data to compare with a reference. Once the layout is fixed, columns it
    does not know are ignored and features the data lacks count as missing.

    A builder is not thread-safe: share one between threads only under a
    lock of your own (:class:`~guardrail.SkewMonitor` holds one for its
    builders). Profiles it has built are immutable and safe to share.

    Args:
        bins: Quantile bins per numeric feature of a fresh layout.
        max_categories: Known categories kept per categorical feature of a
            fresh layout (the most frequent of the first data added).
        heavy_hitters: Entries in the summary of new categories.

    >>> import numpy as np, guardrail as gr
    >>> builder = gr.skew.ProfileBuilder()
    >>> builder.add_columns({"amount": np.arange(100.0)})
    >>> first = builder.build()
    >>> builder.add_rows([{"amount": 7.0}, {"amount": None}])
    >>> first.rows, builder.build().rows, builder.build()["amount"].missing
    (100, 102, 1)
    """

    _features: dict[str, _Accumulator] | None
    _bins: int
    _max_categories: int
    _heavy_hitters: int

    def __init__(self, *, bins: int = 20, max_categories: int = 100, heavy_hitters: int = 64):
        _check_build_options(bins, max_categories, heavy_hitters)
        self._features = None
        self._bins = bins
        self._max_categories = max_categories
        self._heavy_hitters = heavy_hitters

    @classmethod
    def _on_layout(cls, accumulators: Iterable[_Accumulator]) -> ProfileBuilder:
        builder = cls()
        builder._features = {a.name: a for a in accumulators}
        return builder

    def __repr__(self) -> str:
        return f"ProfileBuilder(features={list(self.names)}, rows={self.rows})"

    @property
    def names(self) -> tuple[str, ...]:
        """The feature names, in order (none before a fresh builder's first data)."""
        return () if self._features is None else tuple(self._features)

    @property
    def rows(self) -> int:
        """How many rows have been added."""
        features = self._features or {}
        return max((f.count for f in features.values()), default=0)

    def add_columns(self, columns: Mapping[str, Any]) -> None:
        """Add a mapping of feature name to a column of values.

        Columns are 1-D numpy arrays, lists, pandas Series or pyarrow arrays
        of the same length (see :meth:`Profile.from_columns`).
        """
        if not isinstance(columns, Mapping):
            raise ConfigError(f"columns must be a mapping, got {type(columns).__name__}")
        columns = {name: _wrap(values) for name, values in columns.items()}
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise ConfigError(f"columns have different lengths: {sorted(lengths)}")
        rows = lengths.pop() if lengths else 0
        if self._features is None:
            self._features = self._first_layout(columns)
            return
        for name, feature in self._features.items():
            values = columns.get(name)
            if values is None:
                if isinstance(feature, _NumericAccumulator):
                    feature._add(np.empty(0, np.float64), missing=rows)
                else:
                    feature._add({}, missing=rows)
            elif isinstance(feature, _NumericAccumulator):
                if isinstance(values, _Wrapped):
                    feature._add(*values.as_numeric())
                else:
                    feature._add(*numeric_column(values))
            elif isinstance(values, _Wrapped):
                feature._add(*values.as_counts())
            else:
                for start in range(0, len(values), _CHUNK * 4):
                    feature._add(*count_values(values[start : start + _CHUNK * 4]))

    def add_rows(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Add row mappings (feature name to value); a key a row lacks is missing there.

        A fresh builder takes its features from the keys seen, in order of
        first appearance.
        """
        # One pass over the values present: linear in rows times present values,
        # never rows times features (sparse rows would make that quadratic).
        present: dict[Any, list[Any]] = {}
        count = 0
        for row in rows:
            if not isinstance(row, Mapping):
                raise ConfigError(f"rows must be mappings, got {type(row).__name__}")
            count += 1
            for name, value in row.items():
                column = present.get(name)
                if column is None:
                    present[name] = [value]
                else:
                    column.append(value)
        if self._features is None:
            self._features = self._first_layout(present)
            features = self._features
        else:
            features = self._features
            for name, feature in features.items():
                values = present.get(name)
                if values is not None:
                    if isinstance(feature, _NumericAccumulator):
                        feature._add(*numeric_column(values))
                    else:
                        feature._add(*count_values(values))
        for name, feature in features.items():
            absent = count - len(present.get(name, ()))
            if absent:
                if isinstance(feature, _NumericAccumulator):
                    feature._add(np.empty(0, np.float64), missing=absent)
                else:
                    feature._add({}, missing=absent)

    def add_profile(self, profile: Profile) -> None:
        """Add a profile built on this builder's layout (a fresh builder takes the profile's)."""
        if not isinstance(profile, Profile):
            raise TypeError(f"can only add a Profile, got {type(profile).__name__}")
        if self._features is None:
            self._features = {f.name: f._accumulator() for f in profile}
        if tuple(self._features) != profile.names or not all(
            a._layout() == f._layout()
            for a, f in zip(self._features.values(), profile, strict=True)
        ):
            raise ProfileMismatchError(
                "the profile has different features, bins or categories than the builder"
            )
        for accumulator, feature in zip(self._features.values(), profile, strict=True):
            accumulator._fold(feature)  # type: ignore[arg-type]

    def build(self) -> Profile:
        """A profile of everything added so far (the builder keeps accumulating)."""
        return Profile(f._build() for f in (self._features or {}).values())

    def _first_layout(self, columns: Mapping[str, Any]) -> dict[str, _Accumulator]:
        """Accumulators with bins and categories taken from the data, the data added."""
        features: dict[str, _Accumulator] = {}
        for name, values in columns.items():
            if not isinstance(name, str) or not name:
                raise ConfigError(f"feature names are non-empty strings, got {name!r}")
            numeric = (
                values.numeric if isinstance(values, _Wrapped) else _infer_kind(values) == "numeric"
            )
            if numeric:
                x, missing, invalid = (
                    values.as_numeric() if isinstance(values, _Wrapped) else numeric_column(values)
                )
                features[name] = _new_numeric(name, x, missing, invalid, self._bins)
            else:
                counts, missing, invalid = (
                    values.as_counts() if isinstance(values, _Wrapped) else count_values(values)
                )
                features[name] = _new_categorical(
                    name, counts, missing, invalid, self._max_categories, self._heavy_hitters
                )
        return features


def _wrap(values: Any) -> Any:
    """pandas and pyarrow columns wrapped for reading without Python objects; others as given."""
    if isinstance(values, (np.ndarray, list, _Wrapped)):
        return values
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(values, pandas.Series):
        return _PandasColumn(values)
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None and isinstance(values, pyarrow.ChunkedArray):
        return _ArrowColumn(values)
    if pyarrow is not None and isinstance(values, pyarrow.Array):
        return _ArrowColumn(pyarrow.chunked_array([values]))
    return values


def _check_build_options(bins: int, max_categories: int, heavy_hitters: int) -> None:
    for name, value, least in (
        ("bins", bins, 1),
        ("max_categories", max_categories, 0),
        ("heavy_hitters", heavy_hitters, 1),
    ):
        if type(value) is not int or value < least:
            raise ConfigError(f"{name} must be an integer >= {least}, got {value!r}")


def _new_numeric(name: str, x: F64, missing: int, invalid: int, bins: int) -> _NumericAccumulator:
    is_finite = np.isfinite(x)
    finite = x if is_finite.all() else x[is_finite]
    if len(finite):
        sample = finite
        if len(finite) > _EDGE_SAMPLE:
            # A seeded sample: the same data gives the same edges.
            rng = np.random.default_rng(0)
            sample = finite[rng.integers(0, len(finite), _EDGE_SAMPLE)]
        low, high = float(finite.min()), float(finite.max())
        at = np.linspace(0.0, 1.0, bins + 1)[1:-1]
        if low == high:  # one value (a sparse feature, often): no edge inside
            edges = np.empty(0, np.float64)
        elif max(-low, high) < _SQUARES_SAFE:
            edges = np.unique(np.quantile(sample, at))
        else:  # interpolating between values near the float limits overflows unscaled
            scale = math.ldexp(1.0, math.frexp(max(-low, high))[1] - 1)
            edges = np.unique(np.quantile(sample / scale, at) * scale)
        edges = edges[np.isfinite(edges) & (edges > low) & (edges <= high)]
    else:
        edges, low, high = np.empty(0, np.float64), 0.0, 0.0
    feature = _NumericAccumulator(name, edges, low, high)
    feature._add(x, missing, invalid)
    return feature


def _new_categorical(
    name: str,
    counts: Mapping[str, int],
    missing: int,
    invalid: int,
    max_categories: int,
    heavy_k: int,
) -> _CategoricalAccumulator:
    top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:max_categories]
    feature = _CategoricalAccumulator(name, tuple(sorted(v for v, _ in top)), heavy_k)
    feature._add(counts, missing, invalid)
    return feature


# ---------------------------------------------------------------------------
# Optional data frame libraries: columns read without copying to Python objects


class _Wrapped:
    numeric: bool

    def __len__(self) -> int:
        raise NotImplementedError

    def as_numeric(self) -> tuple[F64, int, int]:
        raise NotImplementedError

    def as_counts(self) -> tuple[dict[str, int], int, int]:
        raise NotImplementedError


class _PandasColumn(_Wrapped):
    def __init__(self, series: Any) -> None:
        self.series = series
        kind = getattr(series.dtype, "kind", "O")
        self.numeric = kind in "iufb" or (
            kind == "O" and _infer_kind(series.iloc[:10_000].tolist()) == "numeric"
        )

    def __len__(self) -> int:
        return len(self.series)

    def as_numeric(self) -> tuple[F64, int, int]:
        s = self.series
        if s.dtype.kind in "iufb" and not hasattr(s.dtype, "na_value"):
            return s.to_numpy(dtype=np.float64, copy=False), 0, 0
        if s.dtype.kind in "iufb":  # nullable extension dtypes: NA is missing
            na = s.isna().to_numpy()
            missing = int(na.sum())
            return s[~na].to_numpy(dtype=np.float64), missing, 0
        return numeric_column(s.to_numpy(dtype=object))

    def as_counts(self) -> tuple[dict[str, int], int, int]:
        counts: dict[str, int] = {}
        missing = invalid = 0
        s = self.series
        for start in range(0, len(s), _CHUNK * 4):
            counted = s.iloc[start : start + _CHUNK * 4].value_counts(dropna=False)
            c, m, i = _classify_counts(
                dict(zip(counted.index.tolist(), counted.tolist(), strict=True))
            )
            for value, n in c.items():
                counts[value] = counts.get(value, 0) + n
            missing += m
            invalid += i
        return counts, missing, invalid


class _ArrowColumn(_Wrapped):
    def __init__(self, column: Any) -> None:
        import pyarrow as pa

        self.column = column
        t = column.type
        self.numeric = bool(
            pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
        )

    def __len__(self) -> int:
        return len(self.column)

    def as_numeric(self) -> tuple[F64, int, int]:
        column = self.column
        missing = column.null_count
        if missing:
            column = column.drop_null()
        values = column.to_numpy().astype(np.float64, copy=False)
        return values, missing, 0

    def as_counts(self) -> tuple[dict[str, int], int, int]:
        import pyarrow as pa
        import pyarrow.compute as pc

        column = self.column
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            return {}, column.null_count, len(column) - column.null_count
        counted = pc.value_counts(column)
        values = counted.field("values").to_pylist()
        counts = counted.field("counts").to_pylist()
        return _classify_counts(dict(zip(values, counts, strict=True)))
