"""The code blocks of the README and of every documentation page run as written.

Each page's ``python`` blocks run in order in one namespace, in a fresh
interpreter and a temporary directory, as a reader would paste them into one
session. Shell blocks are not Python and are not run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # one interpreter per page, scikit-learn, OpenTelemetry

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted(
    [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")],
    key=lambda p: p.relative_to(ROOT).as_posix(),
)
#: Pages whose python blocks cannot run as written, and why. Keep it empty where possible.
SKIP: dict[str, str] = {}
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
_RUNNER = """
import sys
from pathlib import Path

namespace = {"__name__": "__main__"}
for path in sys.argv[1:]:
    exec(compile(Path(path).read_text(encoding="utf-8"), Path(path).name, "exec"), namespace)
"""


def blocks(page: Path) -> list[str]:
    return _BLOCK.findall(page.read_text(encoding="utf-8"))


def name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


WITH_CODE = [name(p) for p in PAGES if blocks(p)]


class TestCodeBlocks:
    @pytest.mark.parametrize("page", WITH_CODE)
    def test_page_runs_as_written(
        self, page: str, tmp_path: Path, request: pytest.FixtureRequest
    ) -> None:
        """Every python block of the page runs, in order, in one fresh interpreter.

        A page that reads ``REDIS_PORT`` runs against the suite's real redis-server.
        """
        if page in SKIP:
            pytest.skip(SKIP[page])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        if "REDIS_PORT" in (ROOT / page).read_text(encoding="utf-8"):
            env["REDIS_PORT"] = str(request.getfixturevalue("redis_server").port)
        files = []
        for number, code in enumerate(blocks(ROOT / page), 1):
            path = tmp_path / "blocks" / f"{page.replace('/', '_')}[{number}].py"
            path.parent.mkdir(exist_ok=True)
            path.write_text(code, encoding="utf-8")
            files.append(str(path))
        work = tmp_path / "work"
        work.mkdir()
        done = subprocess.run(
            [sys.executable, "-c", _RUNNER, *files],
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
            env=env,
        )
        assert done.returncode == 0, done.stderr[-3000:]

    def test_the_skip_list_names_pages_with_code(self) -> None:
        """Every skipped page exists and has python blocks, so the list cannot go stale."""
        assert set(SKIP) <= set(WITH_CODE)

    def test_the_readme_and_the_quickstart_are_collected(self) -> None:
        """The collector finds the pages a newcomer reads first."""
        assert {"README.md", "docs/quickstart.md", "docs/how-to/opentelemetry.md"} <= set(WITH_CODE)
