"""The progress bar: redrawn in place on a terminal, one line elsewhere."""

from __future__ import annotations

import io

from guardrail._app.progress import Progress


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class TestProgress:
    def test_one_line_when_not_a_terminal(self) -> None:
        """Into a file or pipe, nothing is drawn until the bar closes, then one line."""
        stream = io.StringIO()
        bar = Progress(200, "serving", stream=stream, unit="requests")
        bar.update(100)
        assert stream.getvalue() == ""
        bar.update(200)
        bar.close()
        lines = stream.getvalue().splitlines()
        assert len(lines) == 1
        assert lines[0].startswith("serving [" + "#" * 28 + "] 100% 200/200 requests")

    def test_redrawn_in_place_on_a_terminal(self) -> None:
        """On a terminal each draw returns the cursor and clears the rest of the line."""
        stream = Terminal()
        bar = Progress(10, "reading", stream=stream)
        bar.update(5, note="halfway")
        bar.close()
        text = stream.getvalue()
        assert text.startswith("\rreading [" + "#" * 14 + "-" * 14 + "]  50% 5/10")
        assert "halfway" in text
        assert text.endswith("\x1b[K\n")

    def test_never_past_the_total(self) -> None:
        """Updates beyond the total are clamped to it."""
        stream = io.StringIO()
        bar = Progress(3, "x", stream=stream)
        bar.update(7)
        bar.close()
        assert "100% 3/3" in stream.getvalue()
