"""The examples run, end to end, as a user would run them."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration  # runs the examples as processes

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def needs(*modules: str) -> None:
    """Skip outside CI when an example's extra is not installed; fail in CI."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI installs the dev extra, which has {missing}")
        pytest.skip(f"needs {missing}: pip install -e '.[examples]'")


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def json_objects(text: str) -> list[dict[str, Any]]:
    """The JSON objects printed one after another, each from a line's start (console exporters)."""
    decoder = json.JSONDecoder()
    return [decoder.raw_decode(text, m.start())[0] for m in re.finditer(r"^\{", text, re.M)]


class TestFastAPIExample:
    def test_prints_a_short_summary(self) -> None:
        """By default: the responses and a few summary lines, no span JSON."""
        needs("fastapi", "httpx", "opentelemetry.sdk")
        done = run_example("fastapi_service.py")
        out = done.stdout
        assert "'block': False" in out
        assert "'block': True" in out
        assert "'model': 'fraud 3.1.0'" in out
        assert "invalid request: 422" in out
        assert "guard spans' parent: 'score transaction' x2" in out
        assert "'guardrail.model.version': '3.1.0'" in out
        assert "guardrail.predictions" in out
        assert len(out.splitlines()) <= 12
        assert json_objects(out) == []
        assert done.stderr == ""

    def test_exports_spans_to_a_file(self, tmp_path: Path) -> None:
        """--spans PATH writes the spans as JSON; each guard span is the handler span's child."""
        needs("fastapi", "httpx", "opentelemetry.sdk")
        path = tmp_path / "spans.json"
        done = run_example("fastapi_service.py", "--spans", str(path))
        assert f"spans and metrics as JSON: {path}" in done.stdout
        text = path.read_text(encoding="utf-8")
        assert text.count('"name": "guardrail fraud"') == 2
        assert '"guardrail.model.version": "3.1.0"' in text
        assert '"name": "guardrail.predictions"' in text
        spans = {}
        for item in json_objects(text):
            if "span_id" in item.get("context", {}):
                spans[item["context"]["span_id"]] = item
        guard_spans = [s for s in spans.values() if s["name"] == "guardrail fraud"]
        assert len(guard_spans) == 2
        for span in guard_spans:
            assert spans[span["parent_id"]]["name"] == "score transaction"

    def test_the_examples_extra_has_what_the_examples_import(self) -> None:
        """Every third-party module an example imports is in the examples extra."""
        import tomllib

        extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
        wanted = " ".join(extras["project"]["optional-dependencies"]["examples"])
        mentioned = {"fastapi", "httpx", "opentelemetry-sdk", "scikit-learn", "uvicorn"}
        for name in mentioned:
            assert name in wanted, name
        imports = set()
        for example in EXAMPLES.glob("*.py"):
            text = example.read_text(encoding="utf-8")
            imports |= set(re.findall(r"^(?:from|import) (\w+)", text, re.M))
            imports |= set(re.findall(r"^\s+(\w+) \w+:app$", text, re.M))
        third_party = imports - set(sys.stdlib_module_names) - {"guardrail", "__future__"}
        providers = {
            "fastapi": "fastapi",
            "numpy": None,
            "opentelemetry": "opentelemetry-sdk",
            "pydantic": None,
            "sklearn": "scikit-learn",
            "uvicorn": "uvicorn",
        }
        assert third_party <= set(providers), third_party - set(providers)


class TestScikitLearnExample:
    def test_trains_profiles_guards_and_sees_drift(self) -> None:
        """The classifier is guarded; the drifted batch shows up as amount drift."""
        needs("sklearn")
        out = run_example("sklearn_classifier.py").stdout
        assert "batch as trained:" in out
        assert "skew ok" in out
        assert "batch amounts drifted upstream:" in out
        assert "skew alert" in out
        assert "  amount: " in out
