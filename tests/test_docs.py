"""The documentation builds, strictly: no broken link, no missing page or docstring target."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # builds the site with mkdocs

ROOT = Path(__file__).resolve().parent.parent


class TestDocs:
    def test_mkdocs_build_strict(self, tmp_path: Path) -> None:
        """mkdocs build --strict succeeds without a warning and renders the API reference."""
        if importlib.util.find_spec("mkdocs") is None:
            if os.environ.get("CI"):
                pytest.fail("CI installs the dev extra, which has mkdocs-material")
            pytest.skip("mkdocs is not installed (pip install -e '.[dev]')")
        site = tmp_path / "site"
        done = subprocess.run(
            [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        )
        assert done.returncode == 0, done.stderr[-3000:]
        warnings = [line for line in (done.stdout + done.stderr).splitlines() if "WARNING" in line]
        assert warnings == []
        reference = (site / "reference" / "index.html").read_text(encoding="utf-8")
        for name in ("guardrail.guard", "guardrail.Prediction", "guardrail.skew.Report"):
            assert f'id="{name}"' in reference
        assert (site / "benchmarks" / "index.html").exists()

    def test_every_page_is_in_the_nav(self) -> None:
        """No page under docs/ is left out of the navigation."""
        text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
        nav = set(re.findall(r"^\s*- (?:[^:\n]+: )?(\S+\.md)$", text, re.M))
        pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
        missing = sorted(pages - nav)
        assert missing == []
