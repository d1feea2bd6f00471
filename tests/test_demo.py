"""The built-in demo: every guardrail catches what was injected, deterministically."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import guardrail
from guardrail._app.cli import main
from guardrail._app.demo import (
    ATTACK,
    DRIFT_AT,
    MIN_REQUESTS,
    NEW_COUNTRY,
    NULLS,
    REPORT_NAME,
    DemoResult,
    run,
    simulate,
)

REQUESTS = 3_000


@pytest.fixture(scope="module")
def result() -> DemoResult:
    return simulate(requests=REQUESTS)


class TestDemo:
    def test_every_injection_is_caught_after_it_happens(self, result: DemoResult) -> None:
        """Drift, new category, null spike, attack and bias are each caught, after injection."""
        lines = list(result.caught)
        by_kind = {
            "amount": lines[0],
            "country": lines[1],
            "nulls": lines[2],
            "limit": lines[3],
            "bias": lines[6],
        }
        starts = {"amount": 900, "country": 900, "nulls": 1_500, "limit": 1_980, "bias": 900}
        for kind, line in by_kind.items():
            assert line.caught_at is not None, line
            assert line.caught_at >= starts[kind], line
        assert "amount drifted" in by_kind["amount"].what
        assert "country drifted" in by_kind["country"].what
        assert "device_score" in by_kind["nulls"].what
        assert "missing" in by_kind["nulls"].what
        assert "at m-07" in by_kind["limit"].what
        assert "prediction bias" in by_kind["bias"].what
        assert "versions" in lines[4].what
        assert lines[4].caught_at is not None
        assert "held out" in lines[5].what

    def test_counts_are_consistent(self, result: DemoResult) -> None:
        """About 5% of requests are held out; the limit vetoed blocks."""
        assert 0.03 < result.held_out / REQUESTS < 0.07
        assert result.vetoed_by_limit > 0
        assert result.acted > 0

    def test_deterministic(self, result: DemoResult) -> None:
        """Two runs with the same seed catch the same things at the same requests."""
        again = simulate(requests=REQUESTS)
        assert again.caught == result.caught

    def test_report_has_every_section(self, result: DemoResult) -> None:
        """The demo's report holds drift, histograms, schema, threshold, trips and bias."""
        page = result.report.to_html()
        for anchor in (
            "findings",
            "drift",
            "histograms",
            "schema",
            "threshold-history",
            "limit-trips",
            "prediction-bias",
        ):
            assert f'<section id="{anchor}">' in page

    def test_run_prints_the_table_and_writes_the_report(self, tmp_path: Path) -> None:
        """run() prints the summary table and the report's path, and shows progress."""
        out, progress = io.StringIO(), io.StringIO()
        path = tmp_path / "demo.html"
        assert run(out=out, requests=REQUESTS, report=path, progress=progress) == 0
        text = out.getvalue()
        assert "guardrail" in text
        assert "caught at" in text
        assert f"report: {path.resolve()}" in text
        assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
        assert "100%" in progress.getvalue()

    def test_too_few_requests(self) -> None:
        """The simulation needs enough requests to inject anything."""
        with pytest.raises(ValueError, match=f"at least {MIN_REQUESTS}"):
            simulate(requests=MIN_REQUESTS - 1)

    @pytest.mark.parametrize(
        "requests",
        [
            MIN_REQUESTS,
            1_000,
            pytest.param(5_000, marks=pytest.mark.integration),  # a few seconds each
            pytest.param(10_000, marks=pytest.mark.integration),
        ],
    )
    def test_nothing_is_caught_before_it_is_injected(self, requests: int) -> None:
        """At any size, every line's catch comes at or after its injection's start."""
        caught = simulate(requests=requests).caught
        starts = {
            "amounts": DRIFT_AT,
            "new country": DRIFT_AT,
            "device_score": NULLS[0],
            "attack": ATTACK[0],
            "labels": DRIFT_AT,
        }
        checked = 0
        for line in caught:
            for word, start in starts.items():
                if line.injected.startswith(word) and line.caught_at is not None:
                    assert line.caught_at >= int(start * requests), line
                    checked += 1
        assert checked > 0 or requests == MIN_REQUESTS

    def test_the_summary_quotes_the_report(self, result: DemoResult) -> None:
        """The summary's drift and bias figures are the report's own."""
        amount, country = result.caught[0], result.caught[1]
        worst = result.skew["amount"].worst
        assert f"{worst.metric} {worst.value:.2f}" in amount.what
        assert f"{result.skew['country'].worst.value:.2f}" in country.what
        page = result.report.to_html()
        assert f"{worst.value:.2f}" in page or f"{worst.value:.3g}" in page
        bias = result.caught[6]
        assert bias.caught_at is not None
        slice_ = bias.what.rsplit("(", 1)[1].split(")")[0]
        value = result.outcomes.bias if slice_ == "all" else result.outcomes.bias_by_slice[slice_]
        assert f"{value:+.3f}" in bias.what

    def test_the_new_country_is_named_in_the_report(self, result: DemoResult) -> None:
        """The report's country histogram has a bar for the new country, not only (other)."""
        assert f"{NEW_COUNTRY} (new)" in result.report.to_html()

    def test_the_report_never_goes_to_the_working_directory(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without a path, the report goes to a new temporary directory, which is printed."""
        monkeypatch.chdir(tmp_path)
        out = io.StringIO()
        assert run(out=out, requests=MIN_REQUESTS) == 0
        assert list(tmp_path.iterdir()) == []
        printed = Path(out.getvalue().rsplit("report: ", 1)[1].strip())
        assert printed.name == REPORT_NAME
        assert printed.is_file()
        assert printed.parent.parent == Path(tempfile.gettempdir()).resolve()


class TestDemoCommand:
    def test_command_line(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """guardrail demo --requests N --report PATH exits 0 and writes the report."""
        path = tmp_path / "r.html"
        assert main(["demo", "--requests", "2000", "--report", str(path)]) == 0
        assert path.exists()
        assert "what it saw" in capsys.readouterr().out

    def test_out_is_the_report_directory(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--out DIR (created if needed) receives the report; --requests 100 is enough."""
        directory = tmp_path / "new" / "dir"
        assert main(["demo", "--requests", "100", "--out", str(directory)]) == 0
        path = directory / REPORT_NAME
        assert path.is_file()
        assert f"report: {path.resolve()}" in capsys.readouterr().out

    @pytest.mark.parametrize("requests", ["0", "-5", "99", "many"])
    def test_bad_request_count_is_a_usage_error(
        self, requests: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A request count below the minimum or not a number exits 2 with a one-line error."""
        with pytest.raises(SystemExit) as info:
            main(["demo", "--requests", requests])
        assert info.value.code == 2
        assert "--requests" in capsys.readouterr().err

    def test_out_that_is_a_file_is_a_usage_error(self, tmp_path: Path) -> None:
        """--out naming an existing file exits 2 and writes nothing."""
        path = tmp_path / "file"
        path.write_text("x", encoding="utf-8")
        with pytest.raises(SystemExit) as info:
            main(["demo", "--out", str(path)])
        assert info.value.code == 2
        assert path.read_text(encoding="utf-8") == "x"

    def test_module_entry_point_with_core_dependencies_only(self, tmp_path: Path) -> None:
        """python -m guardrail demo runs without sklearn, pandas, pyarrow or selenium."""
        code = (
            "import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in {'sklearn', 'pandas', 'pyarrow', 'selenium',"
            " 'fastapi', 'redis', 'opentelemetry.sdk'}:\n"
            "            raise ImportError(name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "from guardrail._app.cli import main\n"
            "raise SystemExit(main(['demo', '--requests', '2000', '--report', sys.argv[1]]))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / "r.html")],
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(Path(guardrail.__file__).parent.parent)},
        )
        assert done.returncode == 0, done.stderr
        assert "caught at" in done.stdout
        assert (tmp_path / "r.html").exists()
