"""Profiles of partitioned data: the layout-and-count protocol and the Dask adapter."""

from __future__ import annotations

import itertools
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import guardrail as gr
from guardrail.errors import ConfigError, ProfileMismatchError
from guardrail.skew import (
    PartitionProfiler,
    categorical_layout,
    numeric_layout,
    profile_dask,
    quantile_probabilities,
)

from .strategies import REFERENCE
from .test_doc_examples import ROOT, blocks

#: Real engines (Spark, Dask, Redis, Prometheus): the integration tier.
pytestmark = pytest.mark.integration


def same_counts(a: gr.Profile, b: gr.Profile) -> dict[str, Any]:
    """*b*'s dict, with the float moments approximate, for comparing with *a*'s.

    Counts, bins, edges, ranges, categories, minimum and maximum compare
    exactly; the mean, m2 and sums depend on the order of additions, and
    the bounds of the most frequent values (``mode``, ``mode_count``,
    ``heaviest``) on how the rows were split.
    """
    data = b.to_dict()
    mine = a.to_dict()
    for feature in data["features"]:
        for key in ("mean", "m2", "tail_low", "tail_high"):
            if key in feature:
                feature[key] = pytest.approx(feature[key], rel=1e-9, abs=1e-6)
        if feature.get("sums") is not None:
            feature["sums"] = [pytest.approx(v, rel=1e-9, abs=1e-6) for v in feature["sums"]]
    for feature in (*data["features"], *mine["features"]):
        for key in ("mode", "mode_count", "heaviest"):
            feature.pop(key, None)
    assert mine == data
    return data


def mixed_frame(rows: int = 5_000, seed: int = 1) -> Any:
    """A pandas frame with NaN, infinities, missing strings, integers and booleans."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3.0, 1.0, rows)
    amount[::97] = np.nan
    amount[::501] = np.inf
    amount[::703] = -np.inf
    countries = np.array(["FR", "DE", "US", "GB", "IT"], dtype=object)[rng.integers(0, 5, rows)]
    countries[::53] = None
    countries[::301] = "XX"
    return pd.DataFrame(
        {
            "amount": amount,
            "age": rng.integers(18, 90, rows),
            "country": countries,
            "flag": rng.random(rows) < 0.3,
        }
    )


class TestLayout:
    def test_probabilities_are_inner_edges(self) -> None:
        """The quantile probabilities of n bins are the n - 1 inner fractions."""
        assert quantile_probabilities(5) == pytest.approx([0.2, 0.4, 0.6, 0.8])
        assert quantile_probabilities(1) == []

    def test_bad_bins_is_config_error(self) -> None:
        """A bin count below one is refused."""
        with pytest.raises(ConfigError):
            quantile_probabilities(0)

    def test_numeric_layout_drops_repeats_and_out_of_range(self) -> None:
        """Repeated quantiles and quantiles outside (low, high] are not edges."""
        feature = numeric_layout("x", quantiles=[0.0, 1.0, 1.0, 2.0, 9.0], low=0.0, high=2.0)
        assert feature.edges.tolist() == [1.0, 2.0]
        assert (feature.count, feature.bins.tolist()) == (0, [0, 0, 0])

    def test_numeric_layout_without_values(self) -> None:
        """A column with no finite value has no edges, as in memory."""
        feature = numeric_layout("x", quantiles=[], low=None, high=None)
        assert (feature.edges.tolist(), feature.low, feature.high) == ([], 0.0, 0.0)

    def test_categorical_layout_keeps_the_most_frequent(self) -> None:
        """The known categories are the most frequent values, ties broken by value, sorted."""
        feature = categorical_layout(
            "c", counts={"b": 3, "a": 3, "z": 9, "q": 1}, max_categories=3, heavy_hitters=5
        )
        assert (feature.categories, feature.heavy_k) == (("a", "b", "z"), 5)

    def test_layout_reproduces_in_memory_bins(self) -> None:
        """Quantiles of the data at the probabilities give the in-memory builder's edges."""
        values = np.random.default_rng(3).normal(size=10_000)
        ref = gr.Profile.from_columns({"x": values}, bins=8)
        quantiles = np.quantile(values, quantile_probabilities(8))
        feature = numeric_layout(
            "x", quantiles=quantiles, low=float(values.min()), high=float(values.max())
        )
        assert feature.edges.tolist() == ref["x"].edges.tolist()


class TestPartitionProfiler:
    def test_partials_sum_to_the_whole(self) -> None:
        """Counting partitions apart and merging gives the in-memory profile's counts."""
        pd = pytest.importorskip("pandas")
        frame = mixed_frame()
        ref = gr.Profile.from_pandas(frame)
        profiler = PartitionProfiler(ref)
        parts = [profiler.count([frame.iloc[i : i + 700]]) for i in range(0, len(frame), 700)]
        assert isinstance(parts[0], str)
        same_counts(ref, profiler.merge(parts))
        assert isinstance(frame, pd.DataFrame)

    def test_batches_of_every_kind(self) -> None:
        """Column mappings, pandas frames and Arrow batches count alike."""
        pa = pytest.importorskip("pyarrow")
        frame = mixed_frame(1_000)
        ref = gr.Profile.from_pandas(frame)
        profiler = PartitionProfiler(ref)
        half = frame.iloc[:500]
        mapping = {name: half[name].to_numpy() for name in half.columns}
        arrow = pa.RecordBatch.from_pandas(frame.iloc[500:], preserve_index=False)
        # Arrow reads NaN from pandas as null: count only the columns without NaN.
        profile = profiler.merge([profiler.count([mapping]), profiler.count([arrow])])
        assert profile.rows == 1_000
        assert profile["country"].counts.tolist() == ref["country"].counts.tolist()
        assert profile["age"].bins.tolist() == ref["age"].bins.tolist()

    def test_unknown_batch_is_config_error(self) -> None:
        """A batch that is not columns is refused with the kinds it may be."""
        with pytest.raises(ConfigError, match="column mapping"):
            PartitionProfiler(REFERENCE).count([[1, 2, 3]])

    def test_partial_on_another_layout_is_refused(self) -> None:
        """Merging a partial built on another layout raises ProfileMismatchError."""
        other = gr.Profile.from_columns({"amount": np.arange(10.0)})
        with pytest.raises(ProfileMismatchError):
            PartitionProfiler(REFERENCE).merge([other])

    def test_travels_as_json(self) -> None:
        """A profiler pickles as its layout's JSON text, and counts the same afterwards."""
        profiler = PartitionProfiler(REFERENCE)
        assert isinstance(profiler.__getstate__(), str)
        copy = pickle.loads(pickle.dumps(profiler))
        columns = {"amount": np.arange(5.0)}
        assert copy.count([columns]) == profiler.count([columns])
        assert repr(copy) == "PartitionProfiler(features=['amount', 'count', 'country'])"

    @settings(max_examples=30, deadline=None)
    @given(st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=6))
    def test_any_split_gives_the_same_counts(self, cuts: list[int]) -> None:
        """However the rows are split into partitions, the merged counts are the same."""
        values = np.linspace(-80.0, 200.0, 400)
        values[::11] = np.nan
        profiler = PartitionProfiler(REFERENCE)
        whole = profiler.merge([profiler.count([{"amount": values}])])
        bounds = [0, *sorted(cuts), len(values)]
        parts = [profiler.count([{"amount": values[a:b]}]) for a, b in itertools.pairwise(bounds)]
        assert profiler.merge(parts)["amount"].bins.tolist() == whole["amount"].bins.tolist()
        assert profiler.merge(parts).rows == whole.rows == 400


class TestDask:
    def test_same_counts_as_in_memory(self) -> None:
        """On the in-memory profile's layout, the Dask profile's counts equal it exactly."""
        dd = pytest.importorskip("dask.dataframe")
        frame = mixed_frame()
        ref = gr.Profile.from_pandas(frame)
        profile = profile_dask(dd.from_pandas(frame, npartitions=4), like=ref)
        same_counts(ref, profile)

    def test_fresh_layout(self) -> None:
        """Without a layout, Dask fixes one whose counts, ranges and categories match memory."""
        dd = pytest.importorskip("dask.dataframe")
        frame = mixed_frame()
        ref = gr.Profile.from_pandas(frame)
        profile = profile_dask(dd.from_pandas(frame, npartitions=3), bins=10)
        assert profile.names == ref.names
        for name in ("amount", "age", "flag"):
            mine, theirs = profile[name], ref[name]
            assert (mine.low, mine.high, mine.n, mine.nan) == (
                theirs.low,
                theirs.high,
                theirs.n,
                theirs.nan,
            )
            assert int(mine.bins.sum()) == mine.n
            assert len(mine.edges) <= 9
        assert profile["country"].categories == ref["country"].categories
        assert profile["country"].missing == ref["country"].missing
        # The fresh profile is what memory counts on the layout Dask chose.
        same_counts(gr.Profile.from_pandas(frame, like=profile), profile)

    def test_not_a_dask_frame(self) -> None:
        """Anything but a Dask DataFrame is refused."""
        pytest.importorskip("dask.dataframe")
        with pytest.raises(ConfigError, match="Dask DataFrame"):
            profile_dask(mixed_frame(10))


class TestHowTo:
    def test_dask_page_runs_as_written(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Every python block of the Dask how-to runs, in order, without an error."""
        pytest.importorskip("dask.dataframe")
        monkeypatch.chdir(tmp_path)
        namespace: dict[str, object] = {"__name__": "__doc_example__"}
        found = blocks(ROOT / "docs/how-to/dask-profiles.md")
        assert len(found) == 2
        for number, code in enumerate(found, 1):
            exec(compile(code, f"dask-profiles.md[{number}]", "exec"), namespace)
        assert isinstance(namespace["reference"], gr.Profile)
