"""The guardrail command line: commands, exit statuses and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import guardrail as gr
from guardrail._app.cli import EXIT_FOUND, EXIT_INPUT, EXIT_OK, EXIT_USAGE, main

MODEL = gr.ModelRef(name="fraud", version="3.1.0", consumers=("card-blocker",))


def write(path: Path, data: object) -> str:
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def config(model: gr.ModelRef = MODEL, value: float = 0.9) -> dict[str, object]:
    threshold = gr.Threshold(value, scale=gr.Probability, model=model)
    return gr.GuardConfig(
        model=model, returns=gr.Probability, name="fraud", threshold=threshold
    ).to_dict()


class TestDiff:
    def test_equal_configurations_exit_zero(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Two equal configurations: 'no changes' and exit status 0."""
        a = write(tmp_path / "a.json", config())
        b = write(tmp_path / "b.json", config())
        assert main(["diff", a, b]) == EXIT_OK
        assert capsys.readouterr().out.strip() == "no changes"

    def test_changed_threshold_is_shown(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A changed threshold is printed as one line and exits 1."""
        a = write(tmp_path / "a.json", config(value=0.9))
        b = write(tmp_path / "b.json", config(value=0.8))
        assert main(["diff", a, b]) == EXIT_FOUND
        out = capsys.readouterr().out
        assert "~ mechanisms[threshold].settings.value: 0.9 -> 0.8" in out

    def test_model_references(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Two model references are compared field by field."""
        a = write(tmp_path / "a.json", json.loads(MODEL.to_json()))
        b = write(
            tmp_path / "b.json", json.loads(gr.ModelRef(name="fraud", version="3.2.0").to_json())
        )
        assert main(["diff", a, b]) == EXIT_FOUND
        out = capsys.readouterr().out
        assert "~ version: '3.1.0' -> '3.2.0'" in out
        assert "- consumers" in out or "~ consumers" in out


class TestErrors:
    @pytest.mark.parametrize(
        ("content", "message"),
        [
            (None, "no such file"),
            ("{not json", "malformed JSON at line 1"),
            (
                '{"format": "guardrail.guard_config", "version": 2, "name": null, "model": {}, '
                '"returns": "probability", "features": null, "input_parameter": null, '
                '"on_out_of_scale": "raise", "mechanisms": []}',
                "version 2 is not supported",
            ),
            ('{"hello": 1}', "neither a guard configuration"),
            (
                '{"format": "guardrail.model_ref", "version": 1, '
                '"model": {"name": "fraud", "version": "1", "colour": "red"}}',
                "unknown ModelRef keys",
            ),
            ('{"format": "guardrail.model_ref", "version": 2, "model": {}}', "version 2"),
            ('{"name": "fraud", "version": "1"}', "neither a guard configuration"),
            ("[1, 2]", "neither a guard configuration"),
        ],
    )
    def test_bad_input_is_one_line_and_exit_three(
        self,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        content: str | None,
        message: str,
    ) -> None:
        """A bad input file gives one line on stderr naming the file, and exit status 3."""
        bad = tmp_path / "bad.json"
        if content is not None:
            bad.write_text(content, encoding="utf-8")
        good = write(tmp_path / "good.json", json.loads(MODEL.to_json()))
        assert main(["diff", str(bad), good]) == EXIT_INPUT
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert err.startswith(f"guardrail: error: {bad}")
        assert message in err

    def test_different_kinds_are_refused(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A configuration is not compared with a model reference."""
        a = write(tmp_path / "a.json", config())
        b = write(tmp_path / "b.json", json.loads(MODEL.to_json()))
        assert main(["diff", a, b]) == EXIT_INPUT
        assert "is a guard configuration but" in capsys.readouterr().err

    def test_a_directory_is_refused(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A directory given as a file is an input error."""
        assert main(["diff", str(tmp_path), str(tmp_path)]) == EXIT_INPUT
        assert "is a directory" in capsys.readouterr().err

    def test_usage_errors_exit_two(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Unknown commands and missing arguments exit 2 with one line."""
        with pytest.raises(SystemExit) as info:
            main(["frobnicate"])
        assert info.value.code == EXIT_USAGE
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert "invalid choice" in err
        with pytest.raises(SystemExit) as info:
            main(["diff", "only-one.json"])
        assert info.value.code == EXIT_USAGE

    def test_help_lists_the_exit_statuses(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--help documents every exit status."""
        with pytest.raises(SystemExit) as info:
            main(["--help"])
        assert info.value.code == 0
        out = capsys.readouterr().out
        for status in ("0 ", "1 ", "2 ", "3 ", "4 ", "130"):
            assert f"\n  {status}" in out

    def test_no_traceback_from_a_real_process(self, tmp_path: Path) -> None:
        """Run as `python -m guardrail`, a missing file prints no traceback."""
        out = subprocess.run(
            [sys.executable, "-m", "guardrail", "diff", str(tmp_path / "x"), str(tmp_path / "y")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == EXIT_INPUT
        assert "Traceback" not in out.stderr
        assert out.stderr.strip() == f"guardrail: error: {tmp_path / 'x'}: no such file"
