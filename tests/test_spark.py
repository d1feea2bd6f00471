"""Reference profiles of Spark DataFrames on a local Spark (one session per run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import guardrail as gr
from guardrail.errors import ConfigError
from guardrail.skew import profile_spark

from .test_doc_examples import ROOT, blocks
from .test_partitions import same_counts

#: Real engines (Spark, Dask, Redis, Prometheus): the integration tier.
pytestmark = pytest.mark.integration

pa = pytest.importorskip("pyarrow")


def mixed_table(rows: int = 3_000, seed: int = 2) -> Any:
    """An Arrow table with nulls apart from NaN, infinities, integers, booleans and strings."""
    rng = np.random.default_rng(seed)
    index = np.arange(rows)
    amount = rng.lognormal(3.0, 1.0, rows)
    amount[::97] = np.nan
    amount[::501] = np.inf
    amount[::703] = -np.inf
    countries = np.array(["FR", "DE", "US", "GB", "IT"], dtype=object)[rng.integers(0, 5, rows)]
    countries[::301] = "XX"
    return pa.table(
        {
            "amount": pa.array(amount, mask=index % 89 == 0),
            "age": pa.array(rng.integers(18, 90, rows)),
            "country": pa.array(countries.tolist(), mask=index % 53 == 0),
            "flag": pa.array(rng.random(rows) < 0.3),
            "empty": pa.array(np.full(rows, np.nan), mask=np.ones(rows, dtype=bool)),
        }
    )


@pytest.fixture(scope="module")
def table() -> Any:
    return mixed_table()


@pytest.fixture(scope="module")
def frame(spark: Any, table: Any) -> Any:
    return spark.createDataFrame(table)


class TestProfileSpark:
    def test_same_counts_as_in_memory(self, table: Any, frame: Any) -> None:
        """On the in-memory profile's layout, the Spark profile's counts equal it exactly."""
        ref = gr.Profile.from_arrow(table)
        same_counts(ref, profile_spark(frame, like=ref))

    def test_fresh_layout(self, table: Any, frame: Any) -> None:
        """Without a layout, Spark fixes memory's ranges and categories and counts exactly."""
        ref = gr.Profile.from_arrow(table)
        profile = profile_spark(frame, bins=10)
        assert profile.names == ref.names
        for name in ("amount", "age", "flag", "empty"):
            mine, theirs = profile[name], ref[name]
            assert (mine.low, mine.high, mine.n, mine.nan, mine.missing) == (
                theirs.low,
                theirs.high,
                theirs.n,
                theirs.nan,
                theirs.missing,
            )
            assert len(mine.edges) <= 9
        assert profile["country"].categories == ref["country"].categories
        # What memory counts on the layout Spark chose is the Spark profile.
        same_counts(gr.Profile.from_arrow(table, like=profile), profile)

    def test_serving_profile_on_a_reference_layout(self, spark: Any, table: Any) -> None:
        """A drifted Spark frame profiled like a reference compares and flags the drift."""
        ref = gr.Profile.from_arrow(table)
        shifted = table.set_column(
            0, "amount", pa.compute.multiply(table.column("amount"), pa.scalar(3.0))
        )
        serving = profile_spark(spark.createDataFrame(shifted).drop("empty"), like=ref)
        assert serving["empty"].missing == serving.rows  # a feature the frame lacks is missing
        report = gr.compare(ref, serving)
        assert report["amount"].severity == "alert"
        assert report["age"].severity == "ok"

    def test_not_a_spark_frame(self, spark: Any) -> None:
        """Anything but a Spark DataFrame is refused."""
        with pytest.raises(ConfigError, match="Spark DataFrame"):
            profile_spark({"amount": [1.0]})


class TestHowTo:
    def test_spark_page_runs_as_written(
        self, spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Every python block of the Spark how-to runs, in order, on the shared session."""
        monkeypatch.chdir(tmp_path)
        namespace: dict[str, object] = {"__name__": "__doc_example__"}
        found = blocks(ROOT / "docs/how-to/spark-profiles.md")
        assert len(found) == 3
        for number, code in enumerate(found, 1):
            exec(compile(code, f"spark-profiles.md[{number}]", "exec"), namespace)
        assert namespace["spark"] is spark  # the page's getOrCreate found the shared session
        assert (tmp_path / "reference.json").exists()
