"""Reference profiles of Spark DataFrames: two passes, the counts exact.

Pass 1 fixes the layout with Spark aggregates: the finite minimum and
maximum and ``approxQuantile`` edges of each numeric column, the most
frequent values of each string column. Pass 2 counts every partition on that
layout with ``mapInArrow`` (Arrow batches straight into the profile builder,
nulls kept apart from NaN) and the driver merges one small JSON partial per
partition. pyspark is imported only here (``pip install 'guardrail-sdk[spark]'``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ._errors import ConfigError
from ._partitions import (
    PartitionProfiler,
    categorical_layout,
    numeric_layout,
    quantile_probabilities,
)
from ._profile import CategoricalProfile, NumericProfile, Profile

__all__ = ["profile_spark"]

_NUMERIC_TYPES = frozenset(
    {"ByteType", "ShortType", "IntegerType", "LongType", "FloatType", "DoubleType", "BooleanType"}
)


def profile_spark(
    frame: Any,
    *,
    like: Profile | None = None,
    bins: int = 20,
    max_categories: int = 100,
    heavy_hitters: int = 64,
    relative_error: float = 0.001,
) -> Profile:
    """Profile a Spark DataFrame into the same :class:`Profile` the in-memory builder makes.

    Integer, floating and boolean columns become numeric features, string
    columns categorical ones; any other column is a categorical feature whose
    values all count as invalid (as :meth:`Profile.from_arrow` reads them).

    Args:
        frame: A ``pyspark.sql.DataFrame``.
        like: Count on this profile's layout and skip the first pass (for a
            profile of new data to compare with a reference, or to reproduce
            an in-memory profile's bins exactly).
        bins: Quantile bins per numeric feature (without ``like``).
        max_categories: Known categories kept per string feature (the most
            frequent, counted exactly).
        heavy_hitters: Entries in the summary of new categories.
        relative_error: ``approxQuantile``'s relative error for the bin edges
            (0 is exact and costly); the counts in the bins are exact either way.
    """
    try:
        from pyspark.sql import DataFrame
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ConfigError("profile_spark needs pyspark: pip install 'guardrail-sdk[spark]'") from e
    if not isinstance(frame, DataFrame):
        raise ConfigError(f"profile_spark takes a Spark DataFrame, got {type(frame).__name__}")
    if like is not None and not isinstance(like, Profile):
        raise ConfigError(f"like must be a Profile, got {type(like).__name__}")
    layout = (
        like
        if like is not None
        else _layout(frame, bins, max_categories, heavy_hitters, relative_error)
    )
    profiler = PartitionProfiler(layout)
    present = set(frame.columns)
    columns = [name for name in layout.names if name in present]
    return profiler.merge(_count(frame.select(*columns), profiler))


def _count(frame: Any, profiler: PartitionProfiler) -> list[str]:
    """Pass 2: one partial profile per partition, as JSON, collected on the driver."""

    def count(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        yield pa.RecordBatch.from_pydict({"profile": [profiler.count(batches)]})

    return [row["profile"] for row in frame.mapInArrow(count, "profile string").collect()]


def _layout(
    frame: Any, bins: int, max_categories: int, heavy_hitters: int, relative_error: float
) -> Profile:
    """Pass 1: bin edges, reference ranges and known categories from Spark aggregates."""
    from pyspark.sql import functions as sf

    if not 0.0 <= relative_error < 1.0:
        raise ConfigError(f"relative_error must be in [0, 1), got {relative_error!r}")
    probabilities = quantile_probabilities(bins)
    numeric: list[str] = []
    strings: list[str] = []
    for field in frame.schema.fields:
        name = field.name
        if not isinstance(name, str) or not name:
            raise ConfigError(f"feature names are non-empty strings, got {name!r}")
        kind = type(field.dataType).__name__
        if kind in _NUMERIC_TYPES:
            numeric.append(name)
        elif kind == "StringType":
            strings.append(name)

    features: dict[str, NumericProfile | CategoricalProfile] = {}
    if numeric:
        # Only finite values fix the range and the edges; NaN and infinities
        # are counted apart, as the in-memory builder does.
        finite = frame.select(
            *[
                sf.when(~sf.isnan(c) & (sf.abs(c) != sf.lit(float("inf"))), c).alias(name)
                for name in numeric
                for c in [sf.col(f"`{name}`").cast("double")]
            ]
        )
        ranges = finite.agg(
            *[sf.min(f"`{n}`").alias(f"min{i}") for i, n in enumerate(numeric)],
            *[sf.max(f"`{n}`").alias(f"max{i}") for i, n in enumerate(numeric)],
        ).first()
        quantiles = (
            finite.approxQuantile(numeric, probabilities, relative_error)
            if probabilities
            else [[] for _ in numeric]
        )
        for i, name in enumerate(numeric):
            features[name] = numeric_layout(
                name,
                quantiles=quantiles[i],
                low=ranges[f"min{i}"],
                high=ranges[f"max{i}"],
            )
    if strings:
        for name, counts in _top_values(frame, strings, max_categories).items():
            features[name] = categorical_layout(
                name, counts=counts, max_categories=max_categories, heavy_hitters=heavy_hitters
            )
    for name in frame.columns:
        if name not in features:  # neither numbers nor strings: every value is invalid
            features[name] = categorical_layout(
                name, counts={}, max_categories=max_categories, heavy_hitters=heavy_hitters
            )
    return Profile(features[name] for name in frame.columns)


def _top_values(frame: Any, strings: list[str], limit: int) -> dict[str, dict[str, int]]:
    """The *limit* most frequent values of each string column, counted exactly in one job.

    The columns are stacked into (feature, value) pairs, counted together and
    ranked per feature, ties broken by value as in memory.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as sf

    pairs = sf.array(
        *[
            sf.struct(sf.lit(name).alias("feature"), sf.col(f"`{name}`").alias("value"))
            for name in strings
        ]
    )
    counted = (
        frame.select(sf.explode(pairs).alias("pair"))
        .select("pair.feature", "pair.value")
        .where(sf.col("value").isNotNull())
        .groupBy("feature", "value")
        .count()
    )
    rank = sf.row_number().over(
        Window.partitionBy("feature").orderBy(sf.desc("count"), sf.asc("value"))
    )
    out: dict[str, dict[str, int]] = {name: {} for name in strings}
    if limit:
        for row in counted.withColumn("rank", rank).where(sf.col("rank") <= limit).collect():
            out[row["feature"]][row["value"]] = row["count"]
    return out
