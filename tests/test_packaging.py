"""The package builds, installs from its wheel and runs the quickstart."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # builds a wheel and a virtual environment

ROOT = Path(__file__).resolve().parent.parent
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
_INSTALL = re.compile(r"pip install\s+(?:-e\s+)?'?([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?'?")


def project() -> dict[str, object]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    table = data["project"]
    assert isinstance(table, dict)
    return table


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


class TestDistributionName:
    def test_is_not_the_import_name(self) -> None:
        """The distribution is guardrail-sdk: the index's "guardrail" is another project."""
        assert project()["name"] == "guardrail-sdk"

    def test_every_install_line_names_the_distribution(self) -> None:
        """Every `pip install NAME` in the README, docs and examples installs ours."""
        pages = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *ROOT.glob("examples/*.py")]
        found = []
        for page in pages:
            for match in _INSTALL.finditer(page.read_text(encoding="utf-8")):
                found.append(match[1])
                assert match[1] != "guardrail", f"{page}: {match[0]}"
        assert "guardrail-sdk" in found

    def test_the_extras_name_the_distribution(self) -> None:
        """The dev extra pulls the other extras of this distribution, not another's."""
        extras = project()["optional-dependencies"]
        assert isinstance(extras, dict)
        assert any(r.startswith("guardrail-sdk[") for r in extras["dev"])


class TestWheel:
    def test_builds_installs_and_runs_the_quickstart(self, tmp_path: Path) -> None:
        """sdist and wheel build; the wheel in a fresh venv runs the quickstart and the CLI."""
        missing = [m for m in ("build", "hatchling") if importlib.util.find_spec(m) is None]
        if missing:
            if os.environ.get("CI"):
                pytest.fail(f"CI installs the dev extra, which has {missing}")
            pytest.skip(f"needs {missing}: pip install -e '.[dev]'")
        dist = tmp_path / "dist"
        # The wheel is built from the sdist (the default): what the sdist lacks, the wheel lacks.
        run(sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, ROOT)
        (wheel,) = dist.glob("guardrail_sdk-*.whl")
        (sdist,) = dist.glob("guardrail_sdk-*.tar.gz")
        assert sdist.stat().st_size > 0
        venv = tmp_path / "venv"
        # System site-packages give the dependencies without a download; guardrail
        # itself must come from the wheel (the venv's site-packages come first).
        run(sys.executable, "-m", "venv", "--system-site-packages", venv)
        python = venv / "bin" / "python"
        run(python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel)
        where = run(python, "-c", "import guardrail; print(guardrail.__file__)", cwd=tmp_path)
        assert where.stdout.strip().startswith(str(venv)), where.stdout
        version = run(
            python, "-c", "from importlib.metadata import version as v; print(v('guardrail-sdk'))"
        )
        assert version.stdout.strip()
        quickstart = _BLOCK.findall((ROOT / "docs" / "quickstart.md").read_text(encoding="utf-8"))
        assert quickstart
        script = tmp_path / "quickstart.py"
        script.write_text(
            "import guardrail\n"
            f"assert guardrail.__file__.startswith({str(venv)!r})\n" + "\n".join(quickstart),
            encoding="utf-8",
        )
        run(python, script, cwd=tmp_path)
        run(venv / "bin" / "guardrail", "--help", cwd=tmp_path)
        assert list(venv.glob("lib/python3*/site-packages/guardrail/py.typed"))
