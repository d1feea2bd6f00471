"""The HTML report: self-contained, escaped, severity-ordered."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import guardrail as gr


def sample_report(**overrides: object) -> gr.skew.Report:
    """A report with every section, as the browser test and these tests use it."""
    features = [
        gr.skew.ReportFeature(
            "merchant_category",
            kind="categorical",
            severity="alert",
            metrics=[
                gr.skew.ReportMetric("psi", 0.61, 0.1, 0.25, "alert"),
                gr.skew.ReportMetric("unseen_share", 0.12, 0.05, 0.2, "warn"),
            ],
            histogram=gr.skew.ReportHistogram(
                ["grocery", "travel", "(other)"], [60, 40, 0], [45, 30, 25]
            ),
        ),
        gr.skew.ReportFeature(
            "amount",
            severity="warn",
            metrics=[gr.skew.ReportMetric("psi", 0.14, 0.1, 0.25, "warn")],
            histogram=gr.skew.ReportHistogram(
                ["< 10", "[10, 50)", ">= 50"], [30, 50, 20], [20, 45, 35]
            ),
        ),
        gr.skew.ReportFeature(
            "age",
            metrics=[gr.skew.ReportMetric("psi", 0.01, 0.1, 0.25, "ok")],
            histogram=gr.skew.ReportHistogram(["< 30", ">= 30"], [50, 50], [51, 49]),
        ),
    ]
    kwargs: dict[str, object] = {
        "title": "fraud model: nightly check",
        "summary": [("requests", "20,000"), ("model", "fraud 3.1.0")],
        "features": features,
        "violations": [("amount", "missing", 310), ("country", "wrong_type", 4)],
        "underutilized": [("legacy_flag", "constant")],
        "threshold_history": gr.skew.ReportSeries(
            "dynamic threshold", [0, 1000, 2000, 3000], [0.9, 0.86, 0.88, 0.87], target=0.88
        ),
        "limit_trips": gr.skew.ReportTable(
            "trips", ["limit", "key", "first trip", "vetoed"], [["block_card", "m-17", 9120, 412]]
        ),
        "bias": gr.skew.ReportTable(
            "bias", ["slice", "predicted", "observed", "n"], [["all", 0.031, 0.024, 1800]]
        ),
        "generated_at": "2026-11-30T12:00:00+00:00",
    }
    kwargs.update(overrides)
    return gr.skew.Report(**kwargs)  # type: ignore[arg-type]


class TestReportPage:
    def test_is_self_contained(self) -> None:
        """The page loads nothing: no script, no external URL, no link or image source."""
        page = sample_report().to_html()
        assert "<script" not in page
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
        assert "@import" not in page
        assert "url(" not in page

    def test_has_every_section(self) -> None:
        """Drift, histograms, schema, underutilized, threshold, trips and bias all appear."""
        page = sample_report().to_html()
        for anchor in (
            "drift",
            "histograms",
            "schema",
            "underutilized",
            "threshold-history",
            "limit-trips",
            "prediction-bias",
        ):
            assert f'<section id="{anchor}">' in page

    def test_one_histogram_per_feature_and_a_line(self) -> None:
        """Each feature with a histogram gets an inline SVG; the history is a polyline."""
        page = sample_report().to_html()
        assert page.count('<svg class="histogram"') == 3
        assert page.count("<polyline") == 1

    def test_features_are_ordered_by_severity(self) -> None:
        """Alerts come first, then warnings, then the rest."""
        page = sample_report().to_html()
        table = page[page.index('<table class="drift">') :]
        order = [table.index(f"<td>{n}</td>") for n in ("merchant_category", "amount", "age")]
        assert order == sorted(order)

    def test_the_verdict_is_the_worst_severity(self) -> None:
        """The header shows the worst verdict over all features."""
        assert sample_report().severity == "alert"
        assert gr.skew.Report().severity == "ok"

    def test_text_is_escaped(self) -> None:
        """A feature name or title holding markup appears as text, never as markup."""
        evil = '<img src=x onerror="alert(1)">'
        report = sample_report(
            title=evil,
            features=[
                gr.skew.ReportFeature(evil, histogram=gr.skew.ReportHistogram([evil], [1], [1]))
            ],
            violations=[(evil, evil, 1)],
        )
        page = report.to_html()
        assert "<img" not in page
        assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page

    def test_empty_sections_say_so(self) -> None:
        """A report without data still renders, saying each drift section is empty."""
        page = gr.skew.Report(generated_at="now").to_html()
        assert "No features were compared." in page
        assert "No schema violations." in page
        assert "limit-trips" not in page

    def test_write_creates_the_file(self, tmp_path: Path) -> None:
        """write() creates parent directories and returns the path written."""
        path = sample_report().write(tmp_path / "deep" / "report.html")
        assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")

    def test_printable(self) -> None:
        """The stylesheet has print rules."""
        assert "@media print" in sample_report().to_html()


class TestFromSkew:
    def test_reads_the_public_json_forms(self) -> None:
        """A skew report's and the profiles' to_dict() forms become sections."""
        skew = {
            "severity": "warn",
            "reference_rows": 1000,
            "serving_rows": 500,
            "underutilized": [["flag", "constant"]],
            "features": [
                {
                    "name": "amount",
                    "kind": "numeric",
                    "severity": "warn",
                    "metrics": [
                        {"metric": "psi", "value": 0.12, "warn": 0.1, "alert": 0.25,
                         "severity": "warn"},
                        {"metric": "ks", "value": None, "warn": None, "alert": None,
                         "severity": "ok"},
                    ],
                },
                {"name": "country", "kind": "categorical", "severity": "ok", "metrics": []},
            ],
        }  # fmt: skip
        reference = {
            "features": [
                {"name": "amount", "edges": [1.0, 2.0], "bins": [1, 2, 3]},
                {"name": "country", "categories": ["DE", "FR"], "counts": [5, 5], "other": 0},
            ]
        }
        serving = {
            "features": [
                {"name": "amount", "edges": [1.0, 2.0], "bins": [3, 2, 1]},
                {"name": "country", "categories": ["DE", "FR"], "counts": [2, 5], "other": 3},
            ]
        }
        report = gr.skew.Report.from_skew(
            skew, reference=reference, serving=serving, violations={("amount", "missing"): 7}
        )
        assert report.severity == "warn"
        assert report.features[0].histogram is not None
        assert report.features[0].histogram.labels == ("< 1", "[1, 2)", ">= 2")
        assert report.features[1].histogram is not None
        assert report.features[1].histogram.labels == ("DE", "FR", "(other)")
        assert report.violations == (("amount", "missing", 7),)
        assert report.underutilized == (("flag", "constant"),)
        assert ("serving rows", "500") in report.summary

    def test_schema_problems_come_from_the_profiles(self) -> None:
        """Without violations given, counts the serving profile has and the reference lacks."""
        skew = {"features": []}
        reference = {"features": [{"name": "amount", "invalid": 0, "nan": 2, "above": 0}]}
        serving = {"features": [{"name": "amount", "invalid": 3, "nan": 5, "above": 4}]}
        report = gr.skew.Report.from_skew(skew, reference=reference, serving=serving)
        assert set(report.violations) == {("amount", "type", 3), ("amount", "out_of_range", 4)}
        given = gr.skew.Report.from_skew(skew, reference=reference, serving=serving, violations={})
        assert given.violations == ()

    def test_rejects_what_is_not_a_report(self) -> None:
        """from_skew takes a skew report or its dict form."""
        with pytest.raises(gr.ConfigError):
            gr.skew.Report.from_skew(42)


class TestSectionValues:
    def test_histogram_lengths_must_agree(self) -> None:
        """Labels, reference and serving must have one entry per bin."""
        with pytest.raises(gr.ConfigError, match="as many labels"):
            gr.skew.ReportHistogram(["a", "b"], [1], [1, 2])

    def test_histogram_values_are_non_negative(self) -> None:
        """Negative or non-finite counts are refused."""
        with pytest.raises(gr.ConfigError):
            gr.skew.ReportHistogram(["a"], [-1], [1])
        with pytest.raises(gr.ConfigError):
            gr.skew.ReportHistogram(["a"], [float("nan")], [1])

    def test_severity_is_checked(self) -> None:
        """Only ok, warn and alert are severities."""
        with pytest.raises(gr.ConfigError, match="severity"):
            gr.skew.ReportFeature("x", severity="bad")  # type: ignore[arg-type]

    def test_series_lengths_must_agree(self) -> None:
        """A series needs one y per x, all finite."""
        with pytest.raises(gr.ConfigError):
            gr.skew.ReportSeries("t", [1, 2], [1])
        with pytest.raises(gr.ConfigError):
            gr.skew.ReportSeries("t", [1], [float("inf")])

    def test_table_rows_match_columns(self) -> None:
        """A row with the wrong number of cells is refused."""
        with pytest.raises(gr.ConfigError, match="cells"):
            gr.skew.ReportTable("t", ["a", "b"], [[1]])

    def test_shares_of_an_empty_histogram_are_zero(self) -> None:
        """An empty side draws as zeros rather than dividing by zero."""
        assert gr.skew.ReportHistogram(["a"], [0], [2]).shares() == ((0.0,), (1.0,))


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium through chromedriver, collecting the console log."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have chromium and chromium-driver (.ci/run installs them)")
        pytest.skip("chromium and chromedriver are not installed")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1200,2400",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.integration
class TestInABrowser:
    def test_renders_without_console_errors(
        self, browser: Any, tmp_path: Path, artifact: Callable[[str], Path]
    ) -> None:
        """Headless Chromium loads the report with no console error, every section and chart."""
        from selenium.webdriver.common.by import By

        path = sample_report().write(tmp_path / "report.html")
        browser.get(path.as_uri())
        assert browser.title == "fraud model: nightly check"
        errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == []
        sections = {s.get_attribute("id") for s in browser.find_elements(By.TAG_NAME, "section")}
        assert {
            "drift",
            "histograms",
            "schema",
            "underutilized",
            "threshold-history",
            "limit-trips",
            "prediction-bias",
        } <= sections
        charts = browser.find_elements(By.CSS_SELECTOR, "svg.histogram")
        assert len(charts) == 3
        assert all(c.size["width"] > 100 and c.size["height"] > 30 for c in charts)
        bars = browser.find_elements(By.CSS_SELECTOR, "svg.histogram rect")
        assert len(bars) == 2 * (3 + 3 + 2)
        assert browser.find_elements(By.CSS_SELECTOR, "svg.line-chart polyline")
        shot = artifact("report.png")
        browser.set_window_size(1200, browser.execute_script("return document.body.scrollHeight"))
        assert browser.save_screenshot(str(shot))
        print(f"screenshot: {shot}")

    def test_the_demo_report_renders(
        self, browser: Any, tmp_path: Path, artifact: Callable[[str], Path]
    ) -> None:
        """The demo's report loads without console errors, with a chart per feature."""
        from selenium.webdriver.common.by import By

        from guardrail._app.demo import simulate

        result = simulate(requests=2_000)
        path = result.report.write(tmp_path / "demo.html")
        browser.get(path.as_uri())
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
        assert len(browser.find_elements(By.CSS_SELECTOR, "svg.histogram")) == 6
        assert browser.find_element(By.ID, "findings").text.count("\n") >= 7
        shot = artifact("demo-report.png")
        browser.set_window_size(1200, browser.execute_script("return document.body.scrollHeight"))
        assert browser.save_screenshot(str(shot))
        print(f"screenshot: {shot}")

    def test_a_script_would_be_blocked(self, browser: Any, tmp_path: Path) -> None:
        """The page's content policy blocks scripts, so the console check has teeth."""
        page = sample_report().to_html().replace("</body>", "<script>1</script></body>")
        path = tmp_path / "scripted.html"
        path.write_text(page, encoding="utf-8")
        browser.get(path.as_uri())
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert errors, "an inline script should violate the content security policy"


class TestEvidence:
    def test_flagged_metrics_show_their_p_value(self) -> None:
        """A drifted feature's detail shows the effect size and its adjusted p-value."""
        rng = np.random.default_rng(0)
        reference = gr.Profile.from_columns({"x": rng.normal(size=5_000)})
        serving = gr.Profile.from_columns({"x": rng.normal(2.0, 1.0, 2_000)}, like=reference)
        page = gr.skew.Report.from_skew(
            gr.compare(reference, serving), reference=reference, serving=serving
        ).to_html()
        assert "p &lt; 1e-12" in page

    def test_too_few_rows_show_as_insufficient_data(self) -> None:
        """A comparison on a handful of rows says so, with the rows it needs."""
        rng = np.random.default_rng(0)
        reference = gr.Profile.from_columns({"x": rng.normal(size=5_000)})
        serving = gr.Profile.from_columns({"x": rng.normal(size=10)}, like=reference)
        skew = gr.compare(reference, serving)
        page = gr.skew.Report.from_skew(skew, reference=reference, serving=serving).to_html()
        assert f"about {skew.rows_needed:,} serving rows needed" in page
