"""The fleet exporter's OpenTelemetry histograms, collected by the real SDK in memory."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import guardrail as gr
from guardrail.errors import ConfigError
from guardrail.skew import FleetExporter, NumericProfile

from .strategies import REFERENCE, columns

MODEL = gr.ModelRef(name="fraud", version="3.1.0")


def exporter_and_reader(reference: gr.Profile) -> tuple[FleetExporter, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    return FleetExporter(reference, model=MODEL, meter_provider=provider), reader


def histograms(reader: InMemoryMetricReader) -> dict[str, tuple[tuple[float, ...], list[int]]]:
    """Per feature: the histogram's explicit bounds and bucket counts."""
    return histograms_of(reader.get_metrics_data())


def histograms_of(data: Any) -> dict[str, tuple[tuple[float, ...], list[int]]]:
    out: dict[str, tuple[tuple[float, ...], list[int]]] = {}
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name.startswith("guardrail.fleet.values."):
                    for point in metric.data.data_points:
                        feature = str(point.attributes["feature"])
                        out[feature] = (tuple(point.explicit_bounds), list(point.bucket_counts))
    return out


class TestHistograms:
    def test_bounds_are_the_reference_edges(self) -> None:
        """A feature whose edges are not negative has its inner edges as bucket boundaries."""
        reference = gr.Profile.from_columns({"age": np.arange(18.0, 90.0)}, bins=8)
        exporter, reader = exporter_and_reader(reference)
        exporter.record({"age": [30.0]})
        bounds, counts = histograms(reader)["age"]
        assert bounds == tuple(reference["age"].edges.tolist())
        assert counts == exporter.profile()["age"].bins.tolist()

    def test_values_on_an_edge_land_in_the_profiles_bin(self) -> None:
        """A value equal to an edge is in the bin above it, in the histogram as in the profile."""
        reference = REFERENCE
        edges = reference["count"].edges.tolist()
        exporter, reader = exporter_and_reader(reference)
        exporter.record({"count": [*edges, edges[0] - 1, edges[-1] + 1, math.nan, None, "x"]})
        bins = exporter.profile()["count"].bins
        assert bins.tolist() == [1] + [1] * (len(edges) - 1) + [2]  # below the first edge: bin 0
        assert histograms(reader)["count"][1] == bins.tolist()

    def test_negative_edges_are_shifted_to_start_at_zero(self) -> None:
        """The SDK drops negative measurements, so negative edges are shifted by the lowest."""
        edges = REFERENCE["amount"].edges
        assert edges[0] < 0
        exporter, reader = exporter_and_reader(REFERENCE)
        exporter.record({"amount": [-1e6, *edges.tolist(), 1e6]})
        bounds, counts = histograms(reader)["amount"]
        assert bounds == tuple((edges - edges[0]).tolist())
        assert counts == exporter.profile()["amount"].bins.tolist()
        assert sum(counts) == len(edges) + 2

    def test_each_collection_records_only_the_new_counts(self) -> None:
        """Collections are cumulative: a second collection adds only what came since."""
        exporter, reader = exporter_and_reader(REFERENCE)
        exporter.record({"count": [0, 1, 2]})
        first = sum(histograms(reader)["count"][1])
        exporter.record({"count": [3, 4]})
        second = sum(histograms(reader)["count"][1])
        third = sum(histograms(reader)["count"][1])
        assert (first, second, third) == (3, 5, 5)

    @settings(max_examples=50, deadline=None)
    @given(batches=columns(), more=columns())
    def test_buckets_are_the_profiles_bins(
        self, batches: dict[str, list[Any]], more: dict[str, list[Any]]
    ) -> None:
        """Whatever the values (NaN, None, infinities, strings), the buckets equal the bins."""
        exporter, reader = exporter_and_reader(REFERENCE)
        for batch in (batches, more):
            exporter.record(batch)
            found = histograms(reader)
            for feature in exporter.profile():
                if isinstance(feature, NumericProfile) and feature.n:
                    assert found[feature.name][1] == feature.bins.tolist()

    def test_an_api_without_the_advisory_is_a_config_error(self) -> None:
        """An OpenTelemetry API older than the bucket-boundaries advisory is refused when built."""

        class OldMeter:
            def create_histogram(self, name: str, unit: str = "", description: str = "") -> None:
                raise AssertionError("not reached")  # the keyword is refused before the call

        class OldProvider:
            def get_meter(self, name: str) -> OldMeter:
                return OldMeter()

        with pytest.raises(ConfigError, match=r"1\.30 or later"):
            FleetExporter(REFERENCE, model=MODEL, meter_provider=OldProvider())

    def test_a_slow_collection_leaves_the_rest_to_the_next(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A collection records for at most half its time limit; the next one records the rest."""
        exporter, reader = exporter_and_reader(REFERENCE)
        exporter.record({"amount": np.linspace(-50.0, 150.0, 20_000)})
        clock = iter(range(0, 10**6))  # one second per reading: the 5 s budget is 5 readings
        with monkeypatch.context() as patch:
            patch.setattr(time, "monotonic", lambda: float(next(clock)))
            first = sum(histograms(reader)["amount"][1])
        assert 0 < first < 20_000
        counts = histograms(reader)["amount"][1]
        assert counts == exporter.profile()["amount"].bins.tolist()


class TestCounters:
    def test_counters_export_one_series_per_bin_and_no_histogram(self) -> None:
        """bins="counters" exports the bins as a counter with a bin label instead of a histogram."""
        reader = InMemoryMetricReader()
        exporter = FleetExporter(
            REFERENCE,
            model=MODEL,
            meter_provider=MeterProvider(metric_readers=[reader]),
            bins="counters",
        )
        edges = REFERENCE["count"].edges.tolist()
        exporter.record({"count": [*edges, math.nan]})
        data = reader.get_metrics_data()
        assert not histograms_of(data)
        found = {}
        for scope in data.resource_metrics[0].scope_metrics:
            for metric in scope.metrics:
                if metric.name == "guardrail.fleet.bins":
                    for point in metric.data.data_points:
                        if point.attributes["feature"] == "count":
                            found[int(str(point.attributes["bin"]))] = point.value
        bins = exporter.profile()["count"].bins.tolist()
        assert [found[i] for i in range(len(bins))] == bins

    def test_other_bins_settings_are_config_errors(self) -> None:
        """bins takes "histogram" or "counters" only."""
        with pytest.raises(ConfigError, match="bins must be"):
            FleetExporter(REFERENCE, model=MODEL, bins="buckets")


class TestSharedMeter:
    def test_two_exporters_on_one_provider_both_export(self) -> None:
        """Two models' exporters on one meter provider both report every series of their own."""
        reader = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[reader])
        old = FleetExporter(REFERENCE, model=MODEL, meter_provider=provider)
        new = FleetExporter(
            REFERENCE,
            model=gr.ModelRef(name="fraud", version="3.2.0"),
            meter_provider=provider,
            bins="counters",
        )
        old.record({"amount": [1.0, 2.0], "country": ["FR", "XX"]})
        new.record({"amount": [3.0], "country": ["DE"]})
        data = reader.get_metrics_data()
        assert data is not None
        versions: dict[str, set[str]] = {}
        totals: dict[tuple[str, str], float] = {}
        for scope in data.resource_metrics[0].scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    version = str(point.attributes["model_version"])
                    versions.setdefault(metric.name, set()).add(version)
                    if (
                        metric.name == "guardrail.fleet.outcomes"
                        and point.attributes["outcome"] == "other"
                    ):
                        totals[version, str(point.attributes["feature"])] = point.value
        assert versions.pop("guardrail.fleet.bins") == {"3.2.0"}  # counters: the new one only
        histogram = [name for name in versions if name.startswith("guardrail.fleet.values.")]
        assert histogram
        assert all(versions.pop(name) == {"3.1.0"} for name in histogram)
        assert len(versions) == 8
        assert all(found == {"3.1.0", "3.2.0"} for found in versions.values())
        assert totals["3.1.0", "country"] == 1
        assert totals["3.2.0", "country"] == 0
        assert histograms_of(data)["amount"][1] == old.profile()["amount"].bins.tolist()
