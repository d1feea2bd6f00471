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
        assert "(warn 0.05, alert 0.2)" in text
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
