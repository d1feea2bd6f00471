"""Profiles of data sets that live in many partitions: the protocol an engine adapts to.

A reference profile of a data set too large for one process is built in two
passes, whatever engine holds the data:

1. **Layout.** The engine computes, per feature, a few aggregates: the
   finite minimum and maximum and quantiles of each numeric column, the
   value counts of each categorical one. :func:`numeric_layout` and
   :func:`categorical_layout` turn them into the features of an empty
   profile, the *layout* (bin edges, reference range, known categories),
   chosen by the same rules as :meth:`Profile.from_columns`.
2. **Counts.** Each partition is counted exactly on that layout by a
   :class:`PartitionProfiler`, which travels to the workers as JSON (no
   pickle) and returns its partial profile as JSON; the driver merges the
   partials with :meth:`PartitionProfiler.merge`.

Given the same layout, the merged counts equal those of the in-memory builder
on the same rows, exactly: counting is addition. An engine adapter is the two
passes written in the engine's terms (see ``guardrail.skew.profile_spark`` and
``guardrail.skew.profile_dask``).

>>> import numpy as np, guardrail as gr
>>> from guardrail.skew import PartitionProfiler, numeric_layout
>>> layout = gr.Profile([numeric_layout("amount", quantiles=[2.0, 4.0], low=0.0, high=9.0)])
>>> profiler = PartitionProfiler(layout)
>>> parts = [profiler.count([{"amount": np.arange(5.0)}]),
...          profiler.count([{"amount": np.arange(5.0, 10.0)}])]
>>> profile = profiler.merge(parts)
>>> profile["amount"].bins.tolist(), profile.rows
([2, 2, 6], 10)
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import numpy as np

from ._errors import ConfigError
from ._profile import CategoricalProfile, NumericProfile, Profile, ProfileBuilder

__all__ = [
    "PartitionProfiler",
    "categorical_layout",
    "numeric_layout",
    "quantile_probabilities",
]

_EMPTY: Final = np.empty(0, np.float64)


def quantile_probabilities(bins: int = 20) -> list[float]:
    """The quantile probabilities whose values are the inner edges of *bins* bins.

    >>> from guardrail.skew import quantile_probabilities
    >>> quantile_probabilities(4)
    [0.25, 0.5, 0.75]
    """
    if type(bins) is not int or bins < 1:
        raise ConfigError(f"bins must be an integer >= 1, got {bins!r}")
    return [float(p) for p in np.linspace(0.0, 1.0, bins + 1)[1:-1]]


def numeric_layout(
    name: str, *, quantiles: Sequence[float], low: float | None, high: float | None
) -> NumericProfile:
    """An empty numeric feature on bins at *quantiles*, with the reference range ``[low, high]``.

    Args:
        name: The feature's name.
        quantiles: The column's finite values at :func:`quantile_probabilities`
            (exact or approximate: they only have to be good bins); repeated
            values and values outside ``(low, high]`` are dropped, as the
            in-memory builder does.
        low: The column's smallest finite value (None if it has none).
        high: The column's largest finite value (None if it has none).
    """
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        edges, low, high = _EMPTY, 0.0, 0.0
    else:
        edges = np.unique(np.asarray(quantiles, dtype=np.float64))
        edges = edges[(edges > low) & (edges <= high)]
    return NumericProfile(
        name=name,
        edges=edges,
        low=float(low),
        high=float(high),
        count=0,
        missing=0,
        nan=0,
        posinf=0,
        neginf=0,
        invalid=0,
        n=0,
        min=math.nan,
        max=math.nan,
        mean=0.0,
        m2=0.0,
        bins=np.zeros(len(edges) + 1, np.int64),
        below=0,
        above=0,
        tail_low=0.0,
        tail_high=0.0,
    )


def categorical_layout(
    name: str,
    *,
    counts: Mapping[str, int],
    max_categories: int = 100,
    heavy_hitters: int = 64,
) -> CategoricalProfile:
    """An empty categorical feature whose known categories are the most frequent of *counts*.

    Ties break by value, as in the in-memory builder; the categories are kept
    sorted.

    >>> from guardrail.skew import categorical_layout
    >>> counts = {"FR": 5, "DE": 9, "IT": 5}
    >>> categorical_layout("country", counts=counts, max_categories=2).categories
    ('DE', 'FR')
    """
    if type(max_categories) is not int or max_categories < 0:
        raise ConfigError(f"max_categories must be an integer >= 0, got {max_categories!r}")
    if type(heavy_hitters) is not int or heavy_hitters < 1:
        raise ConfigError(f"heavy_hitters must be an integer >= 1, got {heavy_hitters!r}")
    top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:max_categories]
    return CategoricalProfile(
        name=name,
        categories=tuple(sorted(str(v) for v, _ in top)),
        heavy_k=heavy_hitters,
        count=0,
        missing=0,
        invalid=0,
        other=0,
        counts=np.zeros(len(top), np.int64),
        heavy={},
    )


class PartitionProfiler:
    """Counts partitions of a data set on one layout; merges the partial profiles.

    It holds the layout as JSON text, so it pickles small and reads back
    without trusting pickle for anything but a string. Each partition is an
    iterable of batches: column mappings (name to numpy array, list, pandas
    Series or pyarrow array), pandas DataFrames or pyarrow RecordBatches.

    Args:
        layout: A profile whose features, bins and categories the partials
            take (an empty one from :func:`numeric_layout` and
            :func:`categorical_layout`, or an existing reference: its
            observed range becomes the reference range, as with
            :meth:`Profile.builder`).
    """

    __slots__ = ("_layout",)

    def __init__(self, layout: Profile) -> None:
        if not isinstance(layout, Profile):
            raise ConfigError(f"layout must be a Profile, got {type(layout).__name__}")
        self._layout = layout.builder().build().to_json()

    def __repr__(self) -> str:
        return f"PartitionProfiler(features={list(self.layout().names)})"

    def __getstate__(self) -> str:
        return self._layout

    def __setstate__(self, state: str) -> None:
        self._layout = state

    def layout(self) -> Profile:
        """The empty profile every partial is built on."""
        return Profile.from_json(self._layout)

    def builder(self) -> ProfileBuilder:
        """An empty builder on the layout, for an engine that feeds batches itself."""
        return self.layout().builder()

    def count(self, batches: Iterable[Any]) -> str:
        """Count one partition's batches; the partial profile as JSON.

        JSON is what crosses the engine's wire: read it back with
        :meth:`Profile.from_json` or hand it to :meth:`merge`.
        """
        builder = self.builder()
        for batch in batches:
            builder.add_columns(_columns(batch))
        return builder.build().to_json()

    def merge(self, partials: Iterable[str | Profile]) -> Profile:
        """The profile of every partition: the sum of the partials (JSON text or profiles)."""
        builder = self.builder()
        for partial in partials:
            builder.add_profile(
                partial if isinstance(partial, Profile) else Profile.from_json(partial)
            )
        return builder.build()


def _columns(batch: Any) -> Mapping[str, Any]:
    """A batch as a column mapping."""
    if isinstance(batch, Mapping):
        return batch
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None and isinstance(batch, (pyarrow.RecordBatch, pyarrow.Table)):
        return {name: batch.column(name) for name in batch.schema.names}
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(batch, pandas.DataFrame):
        return {str(name): _pandas_column(pandas, batch[name]) for name in batch.columns}
    raise ConfigError(
        "a batch is a column mapping, a pandas DataFrame or a pyarrow RecordBatch, "
        f"got {type(batch).__name__}"
    )


def _pandas_column(pandas: Any, series: Any) -> Any:
    """A pandas column, its string dtype's ``pd.NA`` read as missing (NaN), not as invalid.

    Dask and Arrow-backed frames hold strings as ``string[pyarrow]``, whose
    missing value is ``pd.NA``; the in-memory reader knows None and NaN.
    """
    dtype = series.dtype
    if isinstance(dtype, pandas.StringDtype) and dtype.na_value is pandas.NA:
        return series.astype(pandas.StringDtype(storage=dtype.storage, na_value=np.nan))
    return series
