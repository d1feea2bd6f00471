"""The code blocks of the documentation run as written.

Each page's ``python`` blocks run in order in one namespace, in a temporary
directory, as a reader would paste them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import guardrail as gr

ROOT = Path(__file__).resolve().parent.parent
#: Pages whose every python block runs as written.
RUNNABLE = ["docs/mechanisms.md", "docs/bad-input.md"]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks(page: str) -> list[str]:
    return _BLOCK.findall((ROOT / page).read_text(encoding="utf-8"))


@pytest.mark.parametrize("page", RUNNABLE)
def test_page_runs_as_written(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every python block of the page runs, in order, without an error."""
    found = blocks(page)
    assert found, f"{page} has no python block"
    monkeypatch.chdir(tmp_path)
    gr.configure(hooks=[])
    namespace: dict[str, object] = {"__name__": "__doc_example__"}
    for number, code in enumerate(found, 1):
        exec(compile(code, f"{page}[{number}]", "exec"), namespace)
