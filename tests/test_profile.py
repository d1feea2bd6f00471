"""Profiles: building, statistics, schema, merging, JSON and bad input."""

from __future__ import annotations

import json
import math
import tracemalloc
from typing import Any

import attrs
import numpy as np
import pytest
from hypothesis import given, settings

import guardrail as gr
from guardrail.skew import CategoricalProfile, NumericProfile

from .strategies import REFERENCE, columns, serving_profiles


def comparable(profile: gr.Profile, *, heavy: bool = True) -> dict[str, Any]:
    """A profile's dict with the float moments rounded, for approximate equality."""
    data = profile.to_dict()
    for feature in data["features"]:
        for key in ("mean", "m2", "tail_low", "tail_high"):
            if key in feature:
                feature[key] = pytest.approx(feature[key], rel=1e-9, abs=1e-6)
        if feature.get("sums") is not None:
            feature["sums"] = [pytest.approx(v, rel=1e-9, abs=1e-6) for v in feature["sums"]]
        if not heavy:  # summaries that bound the most frequent values' counts
            for key in ("heavy", "mode", "mode_count", "heaviest"):
                feature.pop(key, None)
    return data


def training_columns(rows: int = 10_000, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "amount": rng.lognormal(3.0, 1.0, rows),
        "age": rng.integers(18, 90, rows),
        "country": np.array(["FR", "DE", "US", "GB"], dtype=object)[rng.integers(0, 4, rows)],
    }


class TestBuilding:
    def test_numeric_statistics_match_numpy(self) -> None:
        """count, min, max, mean and variance equal numpy's on the same column."""
        data = training_columns()
        profile = gr.Profile.from_columns(data)
        amount = profile["amount"]
        assert isinstance(amount, NumericProfile)
        assert amount.count == amount.n == 10_000
        assert amount.min == data["amount"].min()
        assert amount.max == data["amount"].max()
        assert amount.mean == pytest.approx(data["amount"].mean(), rel=1e-12)
        assert amount.variance == pytest.approx(data["amount"].var(), rel=1e-10)
        assert int(amount.bins.sum()) == 10_000

    def test_bins_are_the_reference_quantiles(self) -> None:
        """20 quantile bins of the reference hold about 5% of its values each."""
        profile = gr.Profile.from_columns({"x": np.random.default_rng(1).normal(size=50_000)})
        shares = profile["x"].bins / 50_000
        assert len(shares) == 20
        assert np.allclose(shares, 0.05, atol=0.002)

    def test_categories_are_counted_and_capped(self) -> None:
        """The most frequent categories are known; the rest count as other."""
        values = np.array(["a"] * 50 + ["b"] * 30 + ["c"] * 15 + ["d"] * 5, dtype=object)
        profile = gr.Profile.from_columns({"c": values}, max_categories=2)
        feature = profile["c"]
        assert isinstance(feature, CategoricalProfile)
        assert feature.categories == ("a", "b")
        assert feature.counts.tolist() == [50, 30]
        assert feature.other == 20
        assert feature.heavy == {"c": 15, "d": 5}

    def test_kinds_are_inferred(self) -> None:
        """Number dtypes and number objects are numeric; strings are categorical."""
        profile = gr.Profile.from_columns(
            {
                "f": np.array([1.0, 2.0]),
                "i": np.array([1, 2]),
                "b": np.array([True, False]),
                "o": np.array([1, 2.5], dtype=object),
                "s": np.array(["x", "y"]),
                "l": ["x", None],
            }
        )
        kinds = {f.name: f.kind for f in profile.schema.features}
        assert kinds == {
            "f": "numeric",
            "i": "numeric",
            "b": "numeric",
            "o": "numeric",
            "s": "categorical",
            "l": "categorical",
        }

    def test_from_rows_from_array_and_from_columns_agree(self) -> None:
        """The same data as rows, a 2-D array or columns gives the same profile."""
        rng = np.random.default_rng(2)
        array = rng.normal(size=(500, 3))
        names = ["a", "b", "c"]
        by_columns = gr.Profile.from_columns({n: array[:, j] for j, n in enumerate(names)})
        by_array = gr.Profile.from_array(array, names=names)
        by_rows = gr.Profile.from_rows(
            [dict(zip(names, row, strict=True)) for row in array.tolist()]
        )
        assert by_array.to_json() == by_columns.to_json()
        assert comparable(by_rows) == comparable(by_columns)

    def test_rows_without_a_feature_count_it_missing(self) -> None:
        """A row lacking a key seen in other rows counts that feature as missing."""
        profile = gr.Profile.from_rows([{"a": 1.0, "b": "x"}, {"a": 2.0}])
        assert profile.names == ("a", "b")
        assert profile["b"].missing == 1
        assert profile["b"].count == 2

    def test_from_pandas(self) -> None:
        """A DataFrame profiles like its columns as numpy arrays."""
        pd = pytest.importorskip("pandas")
        data = training_columns(2_000)
        frame = pd.DataFrame(data)
        assert comparable(gr.Profile.from_pandas(frame)) == comparable(
            gr.Profile.from_columns(data)
        )

    def test_from_pandas_counts_missing_strings(self) -> None:
        """None and NaN in a pandas string column are missing values."""
        pd = pytest.importorskip("pandas")
        frame = pd.DataFrame({"c": ["x", None, "y", float("nan")], "v": [1.0, None, 2, 3]})
        profile = gr.Profile.from_pandas(frame)
        assert profile["c"].missing == 2
        assert profile["v"].nan == 1

    def test_from_pandas_counts_pd_na_missing(self) -> None:
        """pd.NA in a nullable string or object column is a missing value, not an invalid one."""
        pd = pytest.importorskip("pandas")
        frame = pd.DataFrame(
            {
                "s": pd.Series(["a", pd.NA, "b", None], dtype="string"),
                "o": pd.Series(["a", pd.NA, 3, "b"], dtype=object),
            }
        )
        profile = gr.Profile.from_pandas(frame)
        assert (profile["s"].missing, profile["s"].invalid) == (2, 0)
        assert (profile["o"].missing, profile["o"].invalid) == (1, 1)

    def test_from_arrow(self) -> None:
        """A pyarrow Table profiles like its columns; nulls are missing values."""
        pa = pytest.importorskip("pyarrow")
        table = pa.table({"x": [1.0, None, 3.0], "c": ["a", None, "b"]})
        profile = gr.Profile.from_arrow(table)
        assert profile["x"].missing == 1
        assert profile["x"].n == 2
        assert profile["c"].missing == 1
        assert profile["c"].categories == ("a", "b")

    def test_from_arrow_and_pandas_reject_other_types(self) -> None:
        """from_pandas and from_arrow take their own types only."""
        pytest.importorskip("pandas")
        pytest.importorskip("pyarrow")
        with pytest.raises(gr.ConfigError):
            gr.Profile.from_pandas({"a": [1]})
        with pytest.raises(gr.ConfigError):
            gr.Profile.from_arrow({"a": [1]})

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"bins": 0}, "bins"),
            ({"max_categories": -1}, "max_categories"),
            ({"heavy_hitters": 0}, "heavy_hitters"),
            ({"bins": 2.5}, "bins"),
        ],
    )
    def test_bad_options_are_config_errors(self, kwargs: dict[str, Any], message: str) -> None:
        """Invalid build options raise ConfigError naming the option."""
        with pytest.raises(gr.ConfigError, match=message):
            gr.Profile.from_columns({"a": [1.0]}, **kwargs)

    def test_bad_shapes_are_config_errors(self) -> None:
        """Unequal columns, 2-D columns and a wrong array width are ConfigErrors."""
        with pytest.raises(gr.ConfigError):
            gr.Profile.from_columns({"a": [1.0, 2.0], "b": [1.0]})
        with pytest.raises(gr.ConfigError):
            gr.Profile.from_columns({"a": np.zeros((2, 2))})
        with pytest.raises(gr.ConfigError):
            gr.Profile.from_array(np.zeros((3, 2)), names=["a"])
        with pytest.raises(gr.ConfigError):
            gr.Profile.from_columns([1, 2])  # type: ignore[arg-type]


class TestBadInput:
    def test_nan_inf_and_none_are_counted_apart(self) -> None:
        """NaN, +inf, -inf and None each have their own count; moments skip them."""
        values = [1.0, float("nan"), float("inf"), float("-inf"), None, 3.0]
        feature = gr.Profile.from_columns({"x": values})["x"]
        assert isinstance(feature, NumericProfile)
        assert (feature.nan, feature.posinf, feature.neginf, feature.missing) == (1, 1, 1, 1)
        assert (feature.n, feature.count, feature.mean) == (2, 6, 2.0)
        assert feature.missing_rate == pytest.approx(2 / 6)

    def test_mixed_types_in_a_numeric_column_are_invalid(self) -> None:
        """Strings and other objects in a numeric column count as invalid, not values."""
        values = [1.0, 2, "3.5", b"4", {"a": 1}, None, 5.0]
        feature = gr.Profile.from_columns({"x": values})["x"]
        assert isinstance(feature, NumericProfile)
        assert (feature.n, feature.invalid, feature.missing) == (3, 3, 1)
        assert feature.max == 5.0

    def test_mixed_types_in_a_categorical_column_are_invalid(self) -> None:
        """Numbers and objects in a string column count as invalid; None and NaN missing."""
        values = np.array(["a", "b", 3, None, float("nan"), object(), "a"], dtype=object)
        feature = gr.Profile.from_columns({"c": values})["c"]
        assert isinstance(feature, CategoricalProfile)
        assert (feature.n, feature.invalid, feature.missing) == (3, 2, 2)

    def test_a_column_of_objects_is_categorical_and_invalid(self) -> None:
        """A column of arbitrary objects builds, with every value invalid."""
        feature = gr.Profile.from_columns({"o": [object() for _ in range(5)]})["o"]
        assert feature.kind == "categorical"
        assert (feature.invalid, feature.n) == (5, 0)

    def test_empty_columns(self) -> None:
        """An empty data set gives an empty profile that serializes and compares."""
        profile = gr.Profile.from_columns({"x": np.array([]), "c": np.array([], dtype=object)})
        assert profile.rows == 0
        assert gr.Profile.from_json(profile.to_json()).to_json() == profile.to_json()
        report = gr.compare(profile, profile.builder().build())
        assert report.severity == "ok"

    def test_strings_in_a_numeric_array_for_a_numeric_feature(self) -> None:
        """A string array given for a numeric feature counts every value invalid."""
        serving = gr.Profile.from_columns({"amount": np.array(["1", "2"])}, like=REFERENCE)
        assert serving["amount"].invalid == 2

    def test_a_million_distinct_categories_keep_memory_bounded(self) -> None:
        """1M distinct new strings leave at most heavy_hitters entries behind."""
        builder = REFERENCE.builder()
        values = np.array([f"id-{i}" for i in range(1_000_000)], dtype=object)
        tracemalloc.start()
        try:
            builder.add_columns({"country": values})
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        serving = builder.build()
        feature = serving["country"]
        assert isinstance(feature, CategoricalProfile)
        assert feature.other == 1_000_000
        assert len(feature.heavy) <= feature.heavy_k == 4
        assert len(serving.to_json()) < 5_000
        assert peak < 80 * 2**20

    def test_heavy_hitters_find_a_frequent_new_category(self) -> None:
        """A new value that is 10% of the traffic survives among 100k distinct others."""
        builder = REFERENCE.builder()
        noise = [f"n{i}" for i in range(90_000)]
        values = np.array(noise + ["XX"] * 10_000, dtype=object)
        np.random.default_rng(0).shuffle(values)
        for start in range(0, len(values), 7_000):
            builder.add_columns({"country": values[start : start + 7_000]})
        feature = builder.build()["country"]
        assert isinstance(feature, CategoricalProfile)
        assert "XX" in feature.heavy
        assert 10_000 - feature.heavy_error <= feature.heavy["XX"] <= 10_000


class TestSchema:
    def test_schema_lists_names_kinds_ranges_and_categories(self) -> None:
        """The schema carries what validation and a ModelRef need."""
        schema = gr.Profile.from_columns(training_columns()).schema
        assert schema.names == ("amount", "age", "country")
        assert schema["age"].low == 18
        assert schema["age"].high == 89
        assert schema["country"].categories == ("DE", "FR", "GB", "US")
        with pytest.raises(KeyError):
            schema["nope"]

    def test_fingerprint_fits_a_model_ref(self) -> None:
        """The fingerprint is a sha256 that ModelRef.feature_schema accepts."""
        fingerprint = gr.Profile.from_columns(training_columns()).schema.fingerprint
        model = gr.ModelRef(name="m", version="1", feature_schema=fingerprint)
        assert model.feature_schema == fingerprint

    def test_fingerprint_changes_with_the_schema(self) -> None:
        """Different ranges or categories give a different fingerprint."""
        a = gr.Profile.from_columns(training_columns(seed=0)).schema.fingerprint
        b = gr.Profile.from_columns(training_columns(seed=1)).schema.fingerprint
        assert a != b

    def test_underutilized_features_are_flagged(self) -> None:
        """Constant, all-missing and nearly-all-missing features are named."""
        rows = 1_000
        profile = gr.Profile.from_columns(
            {
                "good": np.arange(float(rows)),
                "constant": np.full(rows, 3.0),
                "one_category": np.array(["a"] * rows, dtype=object),
                "all_missing": [None] * rows,
                "sparse": [float(i) if i % 50 == 0 else None for i in range(rows)],
            }
        )
        assert dict(profile.underutilized()) == {
            "constant": "constant",
            "one_category": "constant",
            "all_missing": "all_missing",
            "sparse": "nearly_all_missing",
        }


class TestMerge:
    @settings(max_examples=30, deadline=None)
    @given(serving_profiles(), serving_profiles())
    def test_is_commutative(self, a: gr.Profile, b: gr.Profile) -> None:
        """a.merge(b) equals b.merge(a), exactly."""
        assert a.merge(b).to_json() == b.merge(a).to_json()

    @settings(max_examples=30, deadline=None)
    @given(serving_profiles(), serving_profiles(), serving_profiles())
    def test_is_associative(self, a: gr.Profile, b: gr.Profile, c: gr.Profile) -> None:
        """(a+b)+c equals a+(b+c): counts exactly, moments to rounding."""
        left = a.merge(b).merge(c)
        right = a.merge(b.merge(c))
        assert comparable(left, heavy=False) == comparable(right, heavy=False)

    @settings(max_examples=40, deadline=None)
    @given(columns(), columns())
    def test_merging_equals_profiling_the_union(
        self, first: dict[str, list[Any]], second: dict[str, list[Any]]
    ) -> None:
        """Profiling two parts and merging equals profiling them together."""
        both = {name: first[name] + second[name] for name in first}
        merged = gr.Profile.from_columns(first, like=REFERENCE).merge(
            gr.Profile.from_columns(second, like=REFERENCE)
        )
        whole = gr.Profile.from_columns(both, like=REFERENCE)
        assert comparable(merged, heavy=False) == comparable(whole, heavy=False)

    def test_a_partitioned_reference_equals_the_whole(self) -> None:
        """A reference built per partition (bins from a sample) and merged equals one pass."""
        data = training_columns(40_000, seed=3)
        sample = gr.Profile.from_columns({k: v[::20] for k, v in data.items()})
        parts = [
            gr.Profile.from_columns({k: v[i : i + 7_000] for k, v in data.items()}, like=sample)
            for i in range(0, 40_000, 7_000)
        ]
        merged = parts[0]
        for part in parts[1:]:
            merged = merged.merge(part)
        whole = gr.Profile.from_columns(data, like=sample)
        assert comparable(merged, heavy=False) == comparable(whole, heavy=False)
        assert merged["country"].to_dict()["heavy"] == whole["country"].to_dict()["heavy"]
        assert merged["amount"].variance == pytest.approx(data["amount"].var(), rel=1e-10)

    def test_merging_different_layouts_is_an_error(self) -> None:
        """Profiles with different bins cannot be merged."""
        a = gr.Profile.from_columns({"x": np.arange(10.0)})
        b = gr.Profile.from_columns({"x": np.arange(20.0)})
        with pytest.raises(gr.errors.ProfileMismatchError):
            a.merge(b)
        with pytest.raises(TypeError):
            a.merge({"x": 1})  # type: ignore[arg-type]

    def test_merge_leaves_its_inputs_alone(self) -> None:
        """merge returns a new profile; both inputs are unchanged."""
        a = gr.Profile.from_columns({"x": [1.0]}, like=REFERENCE)
        before = a.to_json()
        a.merge(a)
        assert a.to_json() == before


class TestJSON:
    def test_round_trip(self) -> None:
        """from_json(to_json()) gives back the same profile."""
        profile = gr.Profile.from_columns(training_columns())
        assert gr.Profile.from_json(profile.to_json()).to_json() == profile.to_json()

    @settings(max_examples=40, deadline=None)
    @given(serving_profiles())
    def test_round_trip_of_any_serving_profile(self, profile: gr.Profile) -> None:
        """Serving profiles with bad values round-trip too."""
        assert gr.Profile.from_json(profile.to_json()).to_json() == profile.to_json()

    def test_malformed_json(self) -> None:
        """Text that is not JSON is a ProfileFormatError (a FormatError)."""
        with pytest.raises(gr.errors.ProfileFormatError):
            gr.Profile.from_json("{not json")
        with pytest.raises(gr.errors.FormatError):
            gr.Profile.from_json(b"\xff")

    def test_future_version_is_refused(self) -> None:
        """A profile from a newer format version is refused with a clear message."""
        data = REFERENCE.to_dict()
        data["version"] = 3
        with pytest.raises(gr.errors.ProfileFormatError, match="newer"):
            gr.Profile.from_json(json.dumps(data))

    def test_a_version_1_document_still_reads(self) -> None:
        """A version-1 profile reads, without the point masses and bin spreads it never kept."""
        data = REFERENCE.to_dict()
        data["version"] = 1
        for feature in data["features"]:
            for key in ("at_min", "at_max", "mode", "mode_count", "heaviest"):
                feature.pop(key, None)
            for key in ("sums", "lows", "highs", "at_lows", "at_highs"):
                feature.pop(key, None)
        old = gr.Profile.from_json(json.dumps(data))
        amount = old["amount"]
        assert isinstance(amount, NumericProfile)
        assert amount.n == REFERENCE["amount"].n
        assert not amount.points
        assert not amount.spread
        # It still compares and merges; what it lacks stays unknown.
        merged = old.merge(REFERENCE)
        assert not merged["amount"].points
        assert gr.compare(old, REFERENCE).severity == "ok"
        assert gr.Profile.from_json(old.to_json()) == old

    def test_version_2_keeps_point_masses(self) -> None:
        """The counts at the extremes and the bins' spreads survive a JSON round trip."""
        profile = gr.Profile.from_columns({"x": np.minimum(np.arange(1_000.0), 900.0)})
        x = profile["x"]
        assert isinstance(x, NumericProfile)
        assert (x.at_min, x.at_max) == (1, 100)
        assert x.mode == 900.0
        assert x.mode_count == 100
        assert x.heaviest >= 100
        again = gr.Profile.from_json(profile.to_json())
        assert again == profile

    def test_a_version_1_document_with_version_2_keys_is_refused(self) -> None:
        """Keys of a newer version in a version-1 document are an error, naming the key."""
        data = REFERENCE.to_dict()
        data["version"] = 1
        with pytest.raises(gr.errors.ProfileFormatError, match=r"at_m|heaviest|mode|sums|lows"):
            gr.Profile.from_dict(data)

    @pytest.mark.parametrize(
        "mutate",
        [
            lambda d: d.update(format="whylogs"),
            lambda d: d.update(extra=1),
            lambda d: d.pop("features"),
            lambda d: d.update(version="1"),
            lambda d: d.update(version=0),
            lambda d: d["features"].append(d["features"][0]),
            lambda d: d["features"][0].update(kind="text"),
            lambda d: d["features"][0].update(count=-1),
            lambda d: d["features"][0].update(count=1.5),
            lambda d: d["features"][0].update(count=True),
            lambda d: d["features"][0].update(nan=5),
            lambda d: d["features"][0].update(mean="x"),
            lambda d: d["features"][0].update(bins=[1, 2]),
            lambda d: d["features"][0].update(bins=[True] * len(d["features"][0]["bins"])),
            lambda d: d["features"][0].update(bins=[2**70] * len(d["features"][0]["bins"])),
            lambda d: d["features"][0].update(edges=[2.0, 1.0] + [0.0] * 17),
            lambda d: d["features"][0].update(unknown=1),
            lambda d: d["features"][0].pop("m2"),
            lambda d: d["features"][2].update(counts=[1]),
            lambda d: d["features"][2].update(heavy=[["XX", 5]]),
            lambda d: d["features"][2].update(heavy=[["FR", 0]]),
            lambda d: d["features"][2].update(categories=["FR", "FR"]),
            lambda d: d["features"][2].update(heavy_k=0),
        ],
    )
    def test_malformed_profiles_are_refused(self, mutate: Any) -> None:
        """Wrong keys, types, versions or counts that do not add up are refused."""
        data = REFERENCE.to_dict()
        mutate(data)
        with pytest.raises(gr.errors.ProfileFormatError):
            gr.Profile.from_json(json.dumps(data))

    @pytest.mark.parametrize(
        "mutate",
        [
            lambda f: f.update(mean=10**400),
            lambda f: f.update(low=-(10**400)),
            lambda f: f.update(max=10**400),
            lambda f: f.update(m2=10**400),
            lambda f: f["edges"].__setitem__(0, 10**400),
        ],
    )
    def test_integers_beyond_float_range_are_refused(self, mutate: Any) -> None:
        """A statistic or an edge too large for a float is a ProfileFormatError, not an overflow."""
        data = REFERENCE.to_dict()
        mutate(data["features"][0])
        with pytest.raises(gr.errors.ProfileFormatError, match="finite"):
            gr.Profile.from_dict(data)

    def test_not_an_object(self) -> None:
        """A JSON array or number is not a profile."""
        for text in ("[]", "3", "null"):
            with pytest.raises(gr.errors.ProfileFormatError):
                gr.Profile.from_json(text)

    def test_serialized_size_is_small(self) -> None:
        """A 20-feature reference serializes to well under 100 KB."""
        rng = np.random.default_rng(0)
        data: dict[str, Any] = {f"f{i}": rng.normal(size=20_000) for i in range(15)}
        names = np.array([f"cat{i}" for i in range(300)], dtype=object)
        for i in range(5):
            data[f"c{i}"] = names[rng.integers(0, 300, 20_000)]
        text = gr.Profile.from_columns(data).to_json()
        assert len(text) < 100_000
        assert math.isfinite(json.loads(text)["features"][0]["mean"])


class TestProfileBuilder:
    def test_fresh_builder_builds_what_from_columns_builds(self) -> None:
        """A fresh builder given columns builds a profile equal to Profile.from_columns."""
        data = training_columns()
        builder = gr.skew.ProfileBuilder(bins=10)
        builder.add_columns(data)
        assert builder.build() == gr.Profile.from_columns(data, bins=10)

    def test_builder_on_a_layout_builds_what_like_builds(self) -> None:
        """reference.builder() given columns builds what from_columns(like=reference) does."""
        data = training_columns(seed=1)
        builder = REFERENCE.builder()
        builder.add_columns(data)
        assert builder.build() == gr.Profile.from_columns(data, like=REFERENCE)

    def test_add_rows_matches_from_rows(self) -> None:
        """add_rows takes row mappings; a key a row lacks counts as missing."""
        rows = [{"x": 1.0, "c": "a"}, {"x": 2.5}, {"c": "b", "x": None}]
        builder = gr.skew.ProfileBuilder()
        builder.add_rows(rows)
        assert builder.names == ("x", "c")
        assert builder.build() == gr.Profile.from_rows(rows)
        assert builder.build()["c"].missing == 1

    def test_pandas_and_arrow_columns(self) -> None:
        """pandas Series and pyarrow arrays are columns too, nullable values counted missing."""
        pd = pytest.importorskip("pandas")
        pa = pytest.importorskip("pyarrow")
        builder = gr.skew.ProfileBuilder()
        builder.add_columns(
            {"x": pd.Series([1, None, 3], dtype="Int64"), "c": pa.array(["a", None, "b"])}
        )
        profile = builder.build()
        assert (profile["x"].n, profile["x"].missing) == (2, 1)
        assert (profile["c"].n, profile["c"].missing) == (2, 1)

    def test_a_profile_cannot_be_changed(self) -> None:
        """Profiles and their features are frozen, and their arrays read-only."""
        profile = gr.Profile.from_columns(training_columns(100))
        numeric, categorical = profile["amount"], profile["country"]
        assert isinstance(numeric, NumericProfile)
        assert isinstance(categorical, CategoricalProfile)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            numeric.count = 0  # type: ignore[misc]
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            profile._features = ()  # type: ignore[misc]
        for array in (numeric.bins, numeric.edges, categorical.counts):
            with pytest.raises(ValueError, match="read-only"):
                array[0] = 1
        with pytest.raises(TypeError):
            categorical.heavy["new"] = 1  # type: ignore[index]
        assert not hasattr(profile, "empty")

    def test_a_built_profile_does_not_change_as_the_builder_goes_on(self) -> None:
        """Adding after build() leaves the profile built earlier as it was."""
        builder = REFERENCE.builder()
        builder.add_columns({"amount": [1.0, 2.0], "country": ["FR", "XX"]})
        first = builder.build()
        before = first.to_json()
        builder.add_columns({"amount": [3.0] * 5, "country": ["YY"] * 5})
        assert first.to_json() == before
        assert (first.rows, builder.build().rows) == (2, 7)

    def test_a_profile_shares_no_array_with_its_builder(self) -> None:
        """Built arrays are copies: the builder's own keep counting."""
        builder = REFERENCE.builder()
        builder.add_columns({"amount": [1.0]})
        built = builder.build()["amount"]
        assert isinstance(built, NumericProfile)
        assert built.bins.base is None
        assert not built.bins.flags.writeable

    def test_profiles_are_hashable_values(self) -> None:
        """Equal profiles are equal and hash equal; a JSON round trip gives an equal one."""
        profile = gr.Profile.from_columns(training_columns(500))
        again = gr.Profile.from_json(profile.to_json())
        assert again == profile
        assert hash(again) == hash(profile)
        assert profile != REFERENCE

    def test_empty_features_compare_equal(self) -> None:
        """Features without values (min and max NaN) still equal themselves."""
        profile = REFERENCE.builder().build()
        assert profile == REFERENCE.builder().build()
        assert profile == gr.Profile.from_json(profile.to_json())

    def test_add_profile_folds_a_profile_on_the_same_layout(self) -> None:
        """add_profile adds a profile's counts; a fresh builder takes its layout exactly."""
        part = gr.Profile.from_columns(training_columns(300, seed=2), like=REFERENCE)
        builder = gr.skew.ProfileBuilder()
        builder.add_profile(part)
        assert builder.build() == part
        builder.add_profile(part)
        assert builder.build() == part.merge(part)

    def test_add_profile_refuses_another_layout(self) -> None:
        """A profile with other bins or features is a ProfileMismatchError."""
        builder = REFERENCE.builder()
        with pytest.raises(gr.errors.ProfileMismatchError):
            builder.add_profile(gr.Profile.from_columns({"amount": np.arange(5.0)}))
        with pytest.raises(TypeError):
            builder.add_profile({"amount": 1})  # type: ignore[arg-type]

    def test_bad_input_is_a_config_error(self) -> None:
        """Options, non-mappings and columns of different lengths are refused."""
        with pytest.raises(gr.ConfigError):
            gr.skew.ProfileBuilder(bins=0)
        builder = gr.skew.ProfileBuilder()
        with pytest.raises(gr.ConfigError):
            builder.add_columns([1.0, 2.0])  # type: ignore[arg-type]
        with pytest.raises(gr.ConfigError):
            builder.add_rows([1.0])  # type: ignore[list-item]
        with pytest.raises(gr.ConfigError):
            builder.add_columns({"a": [1.0], "b": [1.0, 2.0]})

    def test_an_empty_builder_builds_an_empty_profile(self) -> None:
        """Before any data a fresh builder has no features and builds an empty profile."""
        builder = gr.skew.ProfileBuilder()
        assert (builder.names, builder.rows, len(builder.build())) == ((), 0, 0)
        assert repr(builder) == "ProfileBuilder(features=[], rows=0)"

    @settings(max_examples=40, deadline=None)
    @given(columns(), columns())
    def test_merging_built_profiles_equals_building_everything(
        self, first: dict[str, list[Any]], second: dict[str, list[Any]]
    ) -> None:
        """Profiles built from two parts and merged equal one builder given both parts."""
        one, two, both = REFERENCE.builder(), REFERENCE.builder(), REFERENCE.builder()
        one.add_columns(first)
        two.add_columns(second)
        both.add_columns(first)
        both.add_columns(second)
        merged = one.build().merge(two.build())
        assert comparable(merged, heavy=False) == comparable(both.build(), heavy=False)
        assert merged.compatible(both.build())
