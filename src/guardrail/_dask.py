"""Reference profiles of Dask DataFrames: two passes, the counts exact.

Pass 1 fixes the layout from Dask aggregates (finite minimum, maximum and
quantiles of each numeric column, value counts of the others); pass 2 counts
each pandas partition on that layout with ``map_partitions`` and merges one
small JSON partial per partition. dask is imported only here
(``pip install 'guardrail-sdk[dask]'``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._errors import ConfigError
from ._partitions import (
    PartitionProfiler,
    categorical_layout,
    numeric_layout,
    quantile_probabilities,
)
from ._profile import CategoricalProfile, NumericProfile, Profile

__all__ = ["profile_dask"]


def profile_dask(
    frame: Any,
    *,
    like: Profile | None = None,
    bins: int = 20,
    max_categories: int = 100,
    heavy_hitters: int = 64,
) -> Profile:
    """Profile a Dask DataFrame into the same :class:`Profile` the in-memory builder makes.

    Integer, floating and boolean columns become numeric features, the others
    categorical (as :meth:`Profile.from_pandas` reads each partition).

    Args:
        frame: A ``dask.dataframe.DataFrame``.
        like: Count on this profile's layout and skip the first pass.
        bins: Quantile bins per numeric feature (without ``like``); the
            edges are Dask's approximate quantiles, the counts exact.
        max_categories: Known categories kept per categorical feature (the
            most frequent, counted exactly).
        heavy_hitters: Entries in the summary of new categories.
    """
    try:
        import dask.dataframe as dd
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ConfigError("profile_dask needs dask: pip install 'guardrail-sdk[dask]'") from e
    if not isinstance(frame, dd.DataFrame):
        raise ConfigError(f"profile_dask takes a Dask DataFrame, got {type(frame).__name__}")
    if like is not None and not isinstance(like, Profile):
        raise ConfigError(f"like must be a Profile, got {type(like).__name__}")
    layout = like if like is not None else _layout(frame, bins, max_categories, heavy_hitters)
    profiler = PartitionProfiler(layout)
    present = set(frame.columns)
    columns = [name for name in layout.names if name in present]

    def count(partition: Any) -> Any:
        import pandas as pd

        return pd.Series([profiler.count([partition])], dtype=object)

    partials = frame[columns].map_partitions(count, meta=(None, object)).compute()
    return profiler.merge(partials.tolist())


def _layout(frame: Any, bins: int, max_categories: int, heavy_hitters: int) -> Profile:
    """Pass 1: bin edges, reference ranges and known categories from Dask aggregates."""
    import dask

    probabilities = quantile_probabilities(bins)
    numeric = [str(name) for name, dtype in frame.dtypes.items() if dtype.kind in "iufb"]
    other = [str(name) for name in frame.columns if str(name) not in numeric]
    features: dict[str, NumericProfile | CategoricalProfile] = {}
    if numeric:
        # Only finite values fix the range and the edges.
        finite = frame[numeric].astype("float64").replace([np.inf, -np.inf], np.nan)
        low, high, quantiles = dask.compute(
            finite.min(), finite.max(), finite.quantile(probabilities) if probabilities else None
        )
        for name in numeric:
            features[name] = numeric_layout(
                name,
                quantiles=[] if quantiles is None else quantiles[name].tolist(),
                low=_number(low[name]),
                high=_number(high[name]),
            )
    counted = dask.compute(*[frame[name].dropna().value_counts() for name in other])
    for name, counts in zip(other, counted, strict=True):
        features[name] = categorical_layout(
            name,
            counts={v: int(c) for v, c in counts.items() if isinstance(v, str)},
            max_categories=max_categories,
            heavy_hitters=heavy_hitters,
        )
    return Profile(features[str(name)] for name in frame.columns)


def _number(value: Any) -> float | None:
    value = float(value)
    return None if value != value else value
