"""The command line."""

from __future__ import annotations

import io
import subprocess
import sys

from guardrail._cli import main
from guardrail._demo import run


class TestDemo:
    def test_demo_prints_a_guarded_prediction(self) -> None:
        """The demo shows a prediction with its model and id, and a batch decision."""
        out = io.StringIO()
        assert run(out=out) == 0
        text = out.getvalue()
        assert "fraud 1.0.0" in text
        assert "Probability(" in text
        assert "flagged" in text

    def test_module_entry_point(self) -> None:
        """python -m guardrail demo runs and exits 0."""
        done = subprocess.run(
            [sys.executable, "-m", "guardrail", "demo"], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert "flagged" in done.stdout

    def test_main_returns_the_exit_status(self) -> None:
        """main() returns what the command returned."""
        assert main(["demo"]) == 0
