"""The benchmark runner: one command, every script, one page; failures reported."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # runs the benchmark runner as processes

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ROOT / "benchmarks" / "run.py"

GOOD = """
from _harness import Suite, machine
suite = Suite("tiny")
suite.time("baseline", lambda: None, number=10, repeat=3)
suite.time("twice", lambda: (None, None), number=10, repeat=3, baseline="baseline")
print(f"_{machine()}_\\n")
print(suite.table())
"""

BAD = "raise SystemExit('no such peer library installed')\n"


def bench_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "bench"
    directory.mkdir()
    shutil.copy(ROOT / "benchmarks" / "_harness.py", directory)
    (directory / "bench_alpha.py").write_text(GOOD, encoding="utf-8")
    (directory / "bench_beta.py").write_text(BAD, encoding="utf-8")
    return directory


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUNNER), *args], capture_output=True, text=True, check=False
    )


class TestRunner:
    def test_writes_every_script_and_goes_on_after_a_failure(self, tmp_path: Path) -> None:
        """A failing script is reported on the page, the others still run; exit status 1."""
        out = tmp_path / "benchmarks.md"
        done = run("--dir", str(bench_dir(tmp_path)), "--output", str(out))
        assert done.returncode == 1
        page = out.read_text(encoding="utf-8")
        assert "## alpha" in page
        assert "| twice |" in page
        assert "x) baseline, " in page
        assert "Round-robin, ratios per round, 3 runs" in page
        assert "## beta" in page
        assert "**Failed** (exit status 1): `no such peer library installed`" in page
        assert "cores" in page
        assert "written" in page
        assert page.count("cores") == 1  # the scripts' own machine lines are folded in

    def test_only_replaces_one_section(self, tmp_path: Path) -> None:
        """--only reruns one script and keeps the other sections as they were."""
        directory = bench_dir(tmp_path)
        out = tmp_path / "benchmarks.md"
        run("--dir", str(directory), "--output", str(out))
        (directory / "bench_beta.py").write_text(GOOD.replace("tiny", "fixed"), encoding="utf-8")
        done = run("--dir", str(directory), "--output", str(out), "--only", "beta")
        assert done.returncode == 0, done.stderr
        page = out.read_text(encoding="utf-8")
        assert "### fixed" in page
        assert "### tiny" in page
        assert "Failed" not in page

    def test_the_long_scripts_run_only_when_asked(self, tmp_path: Path) -> None:
        """By default the slow statistical scripts are left out and their sections kept."""
        directory = bench_dir(tmp_path)
        (directory / "bench_calibration.py").write_text(
            GOOD.replace("tiny", "slow"), encoding="utf-8"
        )
        out = tmp_path / "benchmarks.md"
        done = run("--dir", str(directory), "--output", str(out), "--skip", "beta")
        assert done.returncode == 0, done.stderr
        page = out.read_text(encoding="utf-8")
        assert "### tiny" in page
        assert "### slow" not in page
        assert "## beta" not in page
        done = run("--dir", str(directory), "--output", str(out), "--all", "--skip", "beta")
        assert "### slow" in out.read_text(encoding="utf-8")
        done = run("--dir", str(directory), "--output", str(out), "--skip", "beta")
        assert "### slow" in out.read_text(encoding="utf-8")  # kept as it was

    def test_unknown_name_is_a_usage_error(self, tmp_path: Path) -> None:
        """--only with a name that has no script exits 2 and writes nothing."""
        out = tmp_path / "benchmarks.md"
        done = run("--dir", str(bench_dir(tmp_path)), "--output", str(out), "--only", "gamma")
        assert done.returncode == 2
        assert "no benchmark named gamma" in done.stderr
        assert not out.exists()
