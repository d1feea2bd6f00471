"""compare(): drift metrics, thresholds and the report."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

import guardrail as gr


def reference(rows: int = 50_000, seed: int = 0) -> tuple[gr.Profile, dict[str, Any]]:
    rng = np.random.default_rng(seed)
    data = {
        "amount": rng.normal(100.0, 15.0, rows),
        "country": np.array(["FR", "DE", "US", "GB"], dtype=object)[rng.integers(0, 4, rows)],
    }
    return gr.Profile.from_columns(data), data


def serving(ref: gr.Profile, rows: int = 20_000, seed: int = 1, **changes: Any) -> gr.Profile:
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {
        "amount": rng.normal(100.0 + changes.get("shift", 0.0), 15.0, rows),
        "country": np.array(["FR", "DE", "US", "GB"], dtype=object)[rng.integers(0, 4, rows)],
    }
    if "new_share" in changes:
        new = rng.random(rows) < changes["new_share"]
        data["country"] = np.where(new, "XX", data["country"]).astype(object)
    if "missing_share" in changes:
        gone = rng.random(rows) < changes["missing_share"]
        data["amount"] = [None if g else v for g, v in zip(gone, data["amount"], strict=True)]
    return gr.Profile.from_columns(data, like=ref)


class TestMetrics:
    def test_same_distribution_is_ok(self) -> None:
        """A sample of the reference's distribution raises nothing."""
        ref, _ = reference()
        report = gr.compare(ref, serving(ref))
        assert report.severity == "ok"
        assert report.drifted == ()
        assert report["amount"]["psi"] < 0.01
        assert report["amount"]["wasserstein"] < 0.05

    def test_comparing_a_profile_with_itself_gives_zero(self) -> None:
        """Every distance of a profile to itself is zero."""
        ref, data = reference(5_000)
        report = gr.compare(ref, gr.Profile.from_columns(data, like=ref))
        for feature in report.features:
            for metric in feature.metrics:
                assert metric.value == pytest.approx(0.0, abs=1e-12), metric

    def test_a_mean_shift_alerts(self) -> None:
        """A shift of one standard deviation alerts on PSI, JS, KS and Wasserstein."""
        ref, _ = reference()
        report = gr.compare(ref, serving(ref, shift=15.0))
        amount = report["amount"]
        assert amount.severity == "alert"
        assert amount["psi"] > 0.25
        assert amount["js"] > 0.2
        assert amount["ks"] == pytest.approx(0.38, abs=0.03)
        assert amount["wasserstein"] == pytest.approx(1.0, abs=0.03)
        assert report.drifted[0].name == "amount"

    def test_wasserstein_matches_the_exact_value(self) -> None:
        """The binned Wasserstein distance is close to the exact one on raw values."""
        ref, data = reference()
        rng = np.random.default_rng(5)
        shifted = rng.normal(103.0, 20.0, 20_000)
        exact = np.mean(
            np.abs(np.sort(rng.choice(data["amount"], 20_000, replace=False)) - np.sort(shifted))
        )
        report = gr.compare(ref, gr.Profile.from_columns({"amount": shifted}, like=ref))
        assert report["amount"]["wasserstein"] == pytest.approx(
            exact / data["amount"].std(), rel=0.05
        )

    def test_out_of_range_share(self) -> None:
        """Values beyond the reference's range are counted as out of range."""
        ref, _ = reference()
        values = np.concatenate([np.full(300, 1e6), np.full(700, 100.0)])
        report = gr.compare(ref, gr.Profile.from_columns({"amount": values}, like=ref))
        assert report["amount"]["out_of_range"] == pytest.approx(0.3)
        assert report["amount"].severity == "alert"

    def test_unseen_categories(self) -> None:
        """A new category at 30% of traffic alerts on unseen share and L-infinity."""
        ref, _ = reference()
        country = gr.compare(ref, serving(ref, new_share=0.3))["country"]
        assert country["unseen_share"] == pytest.approx(0.3, abs=0.02)
        assert country["linf"] == pytest.approx(0.3, abs=0.02)
        assert country.severity == "alert"

    def test_missing_rate_jump(self) -> None:
        """A feature going missing shows as a missing-rate change."""
        ref, _ = reference()
        report = gr.compare(ref, serving(ref, missing_share=0.5))
        assert report["amount"]["missing_rate_change"] == pytest.approx(0.5, abs=0.02)
        assert report["amount"].worst.metric == "missing_rate_change"

    def test_empty_serving_profile_is_not_a_drift(self) -> None:
        """With no serving rows the distances are NaN and nothing is flagged."""
        ref, _ = reference(1_000)
        report = gr.compare(ref, ref.builder().build())
        assert report.severity == "ok"
        assert np.isnan(report["amount"]["psi"])
        json.loads(report.to_json())


class TestThresholds:
    def test_per_feature_thresholds_override(self) -> None:
        """A looser PSI level for one feature turns its alert into a warning."""
        ref, _ = reference()
        current = serving(ref, shift=3.0)
        assert gr.compare(ref, current)["amount"].severity == "warn"
        loose = gr.skew.DriftThresholds(psi=(0.5, 1.0), js=None, wasserstein=(0.5, 1.0))
        report = gr.compare(ref, current, per_feature={"amount": loose})
        assert report["amount"].severity == "ok"

    def test_none_reports_without_deciding(self) -> None:
        """A metric whose levels are None is reported but never flags."""
        ref, _ = reference()
        off = gr.skew.DriftThresholds(
            psi=None, js=None, wasserstein=None, linf=None, unseen_share=None, out_of_range=None
        )
        report = gr.compare(ref, serving(ref, shift=30.0), thresholds=off)
        assert report.severity == "ok"
        assert report["amount"]["psi"] > 1

    @pytest.mark.parametrize(
        "levels", [(0.3, 0.1), (-0.1, 0.2), (0.1,), "0.1", (0.1, float("inf"))]
    )
    def test_bad_levels_are_config_errors(self, levels: Any) -> None:
        """Levels must be (warn, alert) with 0 <= warn <= alert, finite."""
        with pytest.raises(gr.ConfigError):
            gr.skew.DriftThresholds(psi=levels)

    def test_unknown_feature_in_per_feature(self) -> None:
        """Naming a feature the reference lacks is a ConfigError."""
        ref, _ = reference(100)
        with pytest.raises(gr.ConfigError):
            gr.compare(ref, ref.builder().build(), per_feature={"nope": gr.skew.DriftThresholds()})


class TestReport:
    def test_drifted_features_are_ordered_by_severity(self) -> None:
        """Alerts come before warnings; the report names them in order."""
        ref, _ = reference()
        report = gr.compare(ref, serving(ref, shift=3.0, new_share=0.4))
        assert [f.name for f in report.drifted] == ["country", "amount"]
        assert [f.severity for f in report.drifted] == ["alert", "warn"]

    def test_text_names_features_metrics_and_levels(self) -> None:
        """The text form says which feature, which metric and how far."""
        ref, _ = reference()
        text = gr.compare(ref, serving(ref, new_share=0.4)).to_text()
        assert "ALERT country (categorical)" in text
        assert "unseen_share = 0.39" in text
        assert "(warn 0.05, alert 0.2, p < 1e-12)" in text
        assert "amount" not in text

    def test_text_lists_underutilized_features(self) -> None:
        """Underutilized reference features appear in the text form."""
        ref = gr.Profile.from_columns({"c": np.zeros(10)})
        assert "underutilized: c (constant)" in gr.compare(ref, ref.builder().build()).to_text()

    def test_json_form(self) -> None:
        """The JSON form is valid, versioned and carries every metric."""
        ref, _ = reference()
        data = json.loads(gr.compare(ref, serving(ref, shift=15.0)).to_json())
        assert data["format"] == "guardrail.skew_report"
        assert data["version"] == 1
        assert data["drifted"] == ["amount"]
        assert data["schema_fingerprint"] == ref.schema.fingerprint
        metrics = {m["metric"] for m in data["features"][0]["metrics"]}
        assert {"psi", "js", "ks", "wasserstein", "out_of_range"} <= metrics

    def test_profiles_with_other_layouts_cannot_be_compared(self) -> None:
        """Comparing with a profile built on other bins is a ProfileMismatchError."""
        ref, _ = reference(1_000)
        other, _ = reference(1_000, seed=9)
        with pytest.raises(gr.errors.ProfileMismatchError):
            gr.compare(ref, other)
        with pytest.raises(gr.errors.ProfileMismatchError):
            gr.compare(ref, gr.Profile.from_columns({"amount": [1.0]}))
        with pytest.raises(TypeError):
            gr.compare(ref, None)  # type: ignore[arg-type]


def _normal_pair(rng: np.random.Generator, rows: int, features: int) -> tuple[gr.Profile, Any]:
    a = {f"x{j}": rng.normal(size=rows) for j in range(features)}
    b = {f"x{j}": rng.normal(size=rows) for j in range(features)}
    reference = gr.Profile.from_columns(a)
    return reference, gr.Profile.from_columns(b, like=reference)


class TestFalseAlarmRate:
    def test_small_samples_alarm_within_the_stated_rate(self) -> None:
        """On 300 no-drift pairs of 60 rows per side, the share that warns stays within its 10 %."""
        rng = np.random.default_rng(7)
        levels = gr.skew.DriftThresholds(false_alarm=(0.1, 0.02))
        alarms = sum(
            gr.compare(*_normal_pair(rng, 60, 4), thresholds=levels).severity != "ok"
            for _ in range(300)
        )
        # 10 % of 300 is 30; three standard errors above it is 45.
        assert alarms <= 45

    def test_fixed_levels_alone_alarm_on_small_samples(self) -> None:
        """Without the evidence test the same small samples nearly always warn."""
        rng = np.random.default_rng(7)
        levels = gr.skew.DriftThresholds(false_alarm=None)
        alarms = sum(
            gr.compare(*_normal_pair(rng, 60, 4), thresholds=levels).severity != "ok"
            for _ in range(50)
        )
        assert alarms >= 40

    def test_a_real_shift_alarms_on_a_small_sample(self) -> None:
        """A one-SD mean shift is caught on 200 rows against a large reference."""
        rng = np.random.default_rng(3)
        reference = gr.Profile.from_columns({"x": rng.normal(size=50_000)})
        shifted = gr.Profile.from_columns({"x": rng.normal(1.0, 1.0, size=200)}, like=reference)
        report = gr.compare(reference, shifted)
        assert report.severity == "alert"
        p_value = report["x"].worst.p_value
        assert p_value is not None
        assert p_value < 1e-6

    def test_metrics_carry_adjusted_p_values(self) -> None:
        """Each tested metric reports its Holm-adjusted p-value in the JSON form."""
        ref, _ = reference()
        data = gr.compare(ref, serving(ref)).to_dict()
        metric = data["features"][0]["metrics"][0]
        assert 0.0 <= metric["p_value"] <= 1.0

    def test_too_few_rows_is_a_verdict_with_the_rows_needed(self) -> None:
        """A handful of rows is "insufficient" and says, in the text too, how many rows would do."""
        rng = np.random.default_rng(5)
        reference = gr.Profile.from_columns({"x": rng.normal(size=20_000)})
        few = gr.Profile.from_columns({"x": rng.normal(size=20)}, like=reference)
        report = gr.compare(reference, few)
        assert report.severity == "ok"
        assert report.verdict == "insufficient"
        assert 20 < report.rows_needed < 2_000
        assert f"about {report.rows_needed} serving rows needed" in report.to_text()
        enough = gr.Profile.from_columns(
            {"x": rng.normal(size=report.rows_needed + 10)}, like=reference
        )
        assert gr.compare(reference, enough).verdict == "ok"

    def test_a_tiny_reference_can_never_decide(self) -> None:
        """When the reference itself is too small, no serving size is enough (rows_needed -1)."""
        rng = np.random.default_rng(5)
        reference = gr.Profile.from_columns({"x": rng.normal(size=40)})
        report = gr.compare(
            reference, gr.Profile.from_columns({"x": rng.normal(size=40)}, like=reference)
        )
        assert report.rows_needed == -1
        assert "the reference is too small" in report.to_text()

    def test_false_alarm_levels_are_validated(self) -> None:
        """Probabilities must satisfy 0 < alert <= warn < 1."""
        with pytest.raises(gr.errors.ConfigError, match="false_alarm"):
            gr.skew.DriftThresholds(false_alarm=(0.001, 0.01))


def _compare_x(reference: np.ndarray, serving: np.ndarray) -> gr.skew.FeatureDrift:
    ref = gr.Profile.from_columns({"x": reference})
    return gr.compare(ref, gr.Profile.from_columns({"x": serving}, like=ref))["x"]


def _pile_up(feature: gr.skew.FeatureDrift) -> gr.skew.MetricResult:
    return next(m for m in feature.metrics if m.metric == "pile_up")


class TestPileUps:
    def test_a_top_clip_is_a_pile_up_at_the_maximum(self) -> None:
        """Clipping the top 5 % piles 5 % of the values on the serving maximum, named so."""
        rng = np.random.default_rng(11)
        population = rng.normal(size=100_000)
        clipped = np.minimum(rng.normal(size=1_000), np.quantile(population, 0.95))
        pile = _pile_up(_compare_x(population, clipped))
        assert pile.where == "max"
        assert pile.value == pytest.approx(0.05, abs=0.02)
        assert pile.severity == "warn"
        assert pile.p_value is not None
        assert pile.p_value < 1e-12

    def test_a_stuck_minimum_is_a_pile_up_at_the_minimum(self) -> None:
        """A sensor stuck at the reference's minimum for 15 % of the rows alerts there."""
        rng = np.random.default_rng(12)
        population = rng.uniform(0, 1, 50_000)
        values = rng.uniform(0, 1, 2_000)
        values[:300] = population.min()
        pile = _pile_up(_compare_x(population, values))
        assert pile.where == "min"
        assert pile.severity == "alert"

    def test_a_new_point_mass_inside_the_range_is_caught(self) -> None:
        """A default value written for 8 % of the rows, inside the range, is a pile-up inside."""
        rng = np.random.default_rng(13)
        population = rng.normal(size=50_000)
        values = rng.normal(size=2_000)
        values[:160] = 0.123
        feature = _compare_x(population, values)
        pile = _pile_up(feature)
        assert pile.where == "inside"
        assert pile.severity == "warn"
        assert (
            "pile_up at the most frequent value"
            in gr.compare(
                gr.Profile.from_columns({"x": population}),
                gr.Profile.from_columns(
                    {"x": values}, like=gr.Profile.from_columns({"x": population})
                ),
            ).to_text()
        )

    def test_a_heaped_feature_without_drift_is_no_pile_up(self) -> None:
        """Integers of a few levels pile up everywhere, as much as in the reference: ok."""
        rng = np.random.default_rng(14)
        levels = rng.integers(0, 6, 50_000).astype(float)
        pile = _pile_up(_compare_x(levels, rng.integers(0, 6, 5_000).astype(float)))
        assert pile.severity == "ok"
        assert pile.value < 0.02

    def test_pile_ups_keep_the_stated_false_alarm_rate(self) -> None:
        """On 200 no-drift pairs of heaped and continuous data, at most the stated 10 % warn."""
        rng = np.random.default_rng(15)
        levels = gr.skew.DriftThresholds(false_alarm=(0.1, 0.02))
        alarms = 0
        for i in range(200):
            n = (50, 200, 1_000)[i % 3]
            if i % 2:
                a, b = rng.integers(0, 8, n).astype(float), rng.integers(0, 8, n).astype(float)
            else:
                a, b = np.round(rng.normal(size=n), 1), np.round(rng.normal(size=n), 1)
            ref = gr.Profile.from_columns({"x": a})
            report = gr.compare(ref, gr.Profile.from_columns({"x": b}, like=ref), thresholds=levels)
            alarms += _pile_up(report["x"]).severity != "ok"
        # 10 % of 200 is 20; three standard errors above it is about 33.
        assert alarms <= 33

    def test_a_profile_without_point_masses_reads_nan(self) -> None:
        """Against a version-1 reference (no point masses kept) pile_up is not measured."""
        rng = np.random.default_rng(16)
        ref = gr.Profile.from_columns({"x": rng.normal(size=1_000)})
        data = ref.to_dict()
        data["version"] = 1
        for key in (
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
        ):
            data["features"][0].pop(key)
        old = gr.Profile.from_dict(data)
        serving = gr.Profile.from_columns({"x": np.zeros(500)}, like=old)
        pile = _pile_up(gr.compare(old, serving)["x"])
        assert np.isnan(pile.value)
        assert pile.severity == "ok"


def _exact_w1(a: np.ndarray, b: np.ndarray) -> float:
    """Wasserstein-1 of two samples: the integral of |F_a - F_b| over the sorted values."""
    points = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(np.sort(a), points[:-1], side="right") / len(a)
    fb = np.searchsorted(np.sort(b), points[:-1], side="right") / len(b)
    return float(np.sum(np.abs(fa - fb) * np.diff(points)))


class TestWassersteinOnTies:
    @pytest.mark.parametrize(
        "draw",
        [
            lambda rng, n: rng.integers(0, 5, n).astype(float),
            lambda rng, n: rng.integers(0, 17, n).astype(float),
            lambda rng, n: np.round(rng.normal(10.0, 2.0, n)),
            lambda rng, n: np.round(rng.normal(10.0, 2.0, n), 1),
            lambda rng, n: rng.lognormal(3.0, 1.0, n),
        ],
        ids=["5 levels", "17 levels", "rounded", "one decimal", "continuous"],
    )
    @pytest.mark.parametrize("shift", [0.0, 0.25, 1.0])
    def test_matches_the_exact_distance_of_the_samples(self, draw: Any, shift: float) -> None:
        """The profile's Wasserstein distance is within 3 % (or 0.005 SD) of the samples' own."""
        rng = np.random.default_rng(17)
        a = draw(rng, 20_000)
        b = draw(rng, 5_000) + shift * a.std()
        exact = _exact_w1(a, b) / a.std()
        measured = _compare_x(a, b)["wasserstein"]
        assert measured == pytest.approx(exact, rel=0.03, abs=0.005)

    def test_the_exact_helper_agrees_with_scipy(self) -> None:
        """The test's own exact distance is scipy's (where scipy is installed)."""
        stats = pytest.importorskip("scipy.stats")
        rng = np.random.default_rng(18)
        a, b = rng.integers(0, 5, 300).astype(float), rng.integers(1, 6, 200).astype(float)
        assert _exact_w1(a, b) == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-12)
