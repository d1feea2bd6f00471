"""Every loader, fed mutated and generated documents, raises only its typed errors.

Mutations of valid documents (truncation, flipped bits, huge numbers, deep
nesting, wrong types) come from ``tests/fuzzing.py`` with fixed seeds, so a
failure names a reproducible case. The quick budget keeps the suite fast;
``pytest --fuzz-long tests/test_fuzz.py`` runs 20,000 cases per loader.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import guardrail as gr
from guardrail._app.cli import EXIT_FOUND, EXIT_INPUT, EXIT_OK, main
from guardrail.errors import FormatError, ProfileFormatError
from guardrail.thresholds import DynamicThreshold

from . import fuzzing

MODEL = gr.ModelRef(
    name="fraud",
    version="3.1.0",
    artifact_sha256="ab" * 32,
    trained_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    consumers=("card-blocker",),
)


def _profile() -> gr.Profile:
    rng = np.random.default_rng(0)
    return gr.Profile.from_columns(
        {
            "amount": rng.lognormal(3, 1, 300),
            "country": np.array(["FR", "DE", "ES"] * 100, dtype=object),
        },
        bins=5,
    )


def _threshold() -> DynamicThreshold[Any]:
    threshold = DynamicThreshold(
        target_rate=0.1,
        initial=gr.Probability(0.9),
        lower=gr.Probability(0.5),
        upper=gr.Probability(0.99),
        model=MODEL,
    )
    threshold.update(gr.Probability(np.linspace(0.0, 1.0, 50)))
    return threshold


def _config() -> dict[str, Any]:
    threshold = gr.Threshold(0.9, scale=gr.Probability, model=MODEL)
    return gr.GuardConfig(
        model=MODEL, returns=gr.Probability, threshold=threshold, features=("amount",)
    ).to_dict()


def _prediction() -> dict[str, Any]:
    upstream = gr.Prediction(gr.Probability(0.2), MODEL)
    return gr.Prediction(gr.LogOdds(1.5), MODEL, upstream=(upstream,)).to_dict()


def _from_text(load: Callable[[Any], object]) -> Callable[[Any], object]:
    """A dict loader fed JSON text: parsed first (its errors are the loader's)."""

    def read(text: Any) -> object:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            return None  # not JSON: nothing reaches the loader
        return load(data)

    return read


#: name -> (a valid document, loader of the document, loader of its JSON text, allowed errors)
LOADERS: dict[str, tuple[Any, Callable[[Any], object], Callable[[Any], object], Any]] = {
    "profile": (
        _profile().to_dict(),
        gr.Profile.from_dict,
        gr.Profile.from_json,
        ProfileFormatError,
    ),
    "model_ref": (
        json.loads(MODEL.to_json()),
        gr.ModelRef.from_document,
        gr.ModelRef.from_json,
        FormatError,
    ),
    "model_ref_fields": (
        MODEL.to_dict(),
        gr.ModelRef.from_dict,
        _from_text(gr.ModelRef.from_dict),
        FormatError,
    ),
    "guard_config": (
        _config(),
        gr.GuardConfig.from_dict,
        _from_text(gr.GuardConfig.from_dict),
        FormatError,
    ),
    "threshold_snapshot": (
        _threshold().snapshot(),
        DynamicThreshold.restore,
        DynamicThreshold.restore,
        FormatError,
    ),
    "prediction": (
        _prediction(),
        gr.Prediction.from_dict,
        _from_text(gr.Prediction.from_dict),
        FormatError,
    ),
}


class TestMutatedDocuments:
    @pytest.mark.parametrize("name", sorted(LOADERS))
    def test_only_typed_errors(self, name: str, fuzz_cases: Callable[[int], int]) -> None:
        """A loader fed mutations of a valid document raises nothing but its FormatError."""
        doc, load, load_text, allowed = LOADERS[name]

        def make(rng: random.Random) -> tuple[Callable[[Any], object], Any]:
            if rng.random() < 0.5:
                return load_text, fuzzing.mutate_json(doc, rng)
            return load, fuzzing.mutate_value(doc, rng)

        seen = fuzzing.run(
            fuzz_cases(300), seed=12, make=make, load=lambda case: case[0](case[1]),
            allowed=(allowed,),
        )  # fmt: skip
        # The mutations reach past the first check: most fail, some still load.
        assert seen.get(allowed.__name__, 0) > 0
        assert sum(seen.values()) == fuzz_cases(300)

    @pytest.mark.parametrize("name", sorted(LOADERS))
    def test_the_valid_document_loads(self, name: str) -> None:
        """The unmutated document loads: the fuzzing starts from something real."""
        doc, load, load_text, _ = LOADERS[name]
        load(doc)
        load_text(json.dumps(doc))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["guardrail.profile", "guardrail.model_ref", "probability", "inf"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["format", "version", "features", "model", "name", "state", "config"])
            | st.text(max_size=4),
            inner,
            max_size=5,
        )
    ),
    max_leaves=20,
)


class TestGeneratedDocuments:
    @pytest.mark.parametrize("name", sorted(LOADERS))
    @settings(
        max_examples=60, derandomize=True, deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )  # fmt: skip
    @given(data=json_values)
    def test_any_json_value(self, name: str, data: Any) -> None:
        """Any JSON value at all is loaded or refused with the loader's FormatError."""
        _, load, _, allowed = LOADERS[name]
        with contextlib.suppress(allowed):
            load(data)

    @pytest.mark.parametrize("name", sorted(LOADERS))
    @settings(max_examples=40, derandomize=True, deadline=None)
    @given(data=st.data())
    def test_one_field_replaced(self, name: str, data: st.DataObject) -> None:
        """A valid document with any one node replaced by any JSON value is refused typed."""
        doc, load, _, allowed = LOADERS[name]
        path = data.draw(st.sampled_from(list(fuzzing.paths(doc))[1:]))
        value = data.draw(json_values)
        mutated = fuzzing.replace(doc, path, value)
        with contextlib.suppress(allowed):
            load(mutated)


class TestCliReaders:
    """Mutated data files and documents through the command line: one line, a documented status."""

    @pytest.fixture(scope="class")
    def seeds(self, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
        tmp = tmp_path_factory.mktemp("seeds")
        rng = np.random.default_rng(0)
        lines = [f"{rng.normal():.3f},{i % 50},{'FR' if i % 3 else 'DE'}" for i in range(40)]
        (tmp / "v.csv").write_text("amount,age,country\n" + "\n".join(lines) + "\n")
        np.save(tmp / "v.npy", rng.normal(size=(30, 3)))
        np.save(tmp / "s.npy", np.zeros(20, dtype=[("a", "f8"), ("b", "i4")]))
        files = {name: (tmp / name).read_bytes() for name in ("v.csv", "v.npy", "s.npy")}
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:  # pragma: no cover - pyarrow is in the dev extra
            pass
        else:
            table = pa.table({"amount": [1.0, 2.0, None] * 10, "country": ["FR", "DE", None] * 10})
            pq.write_table(table, tmp / "v.parquet")
            files["v.parquet"] = (tmp / "v.parquet").read_bytes()
        reference = str(tmp / "reference.json")
        assert main(["profile", str(tmp / "v.csv"), "-o", reference]) == EXIT_OK
        return {"files": files, "reference": reference}

    @pytest.mark.parametrize("kind", ["csv", "npy", "parquet", "json"])
    def test_one_line_and_a_documented_status(
        self,
        kind: str,
        seeds: dict[str, Any],
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        fuzz_cases: Callable[[int], int],
    ) -> None:
        """profile, compare and diff on mutated files exit 0, 1 or 3 with at most one error line."""
        files, reference = seeds["files"], seeds["reference"]
        if kind == "parquet" and "v.parquet" not in files:
            pytest.skip("pyarrow is not installed")
        rng = random.Random(kind)
        documents = [
            json.loads(Path(reference).read_text()),
            _config(),
            json.loads(MODEL.to_json()),
        ]
        statuses: dict[int, int] = {}
        for case in range(fuzz_cases(120)):
            if kind == "json":
                doc = rng.choice(documents)
                text = fuzzing.mutate_json(doc, rng)
                path = tmp_path / "case.json"
                path.write_bytes(
                    text if isinstance(text, bytes) else text.encode("utf-8", "replace")
                )
                if doc is documents[0]:
                    argv = ["compare", reference, str(path)]
                else:
                    argv = ["diff", str(path), str(path)]
            else:
                name = {
                    "csv": "v.csv",
                    "npy": rng.choice(["v.npy", "s.npy"]),
                    "parquet": "v.parquet",
                }[kind]
                path = tmp_path / f"case{Path(name).suffix}"
                path.write_bytes(fuzzing.mutate_bytes(files[name], rng))
                if rng.random() < 0.5:
                    argv = ["profile", str(path), "-o", str(tmp_path / "out.json")]
                else:
                    argv = ["compare", reference, str(path)]
            status = main(argv)
            err = capsys.readouterr().err
            errors = [
                line for line in err.splitlines() if not line.startswith("guardrail: warning")
            ]
            assert status in (EXIT_OK, EXIT_FOUND, EXIT_INPUT), (case, argv, err)
            assert len(errors) <= 1, (case, err)
            assert "Traceback" not in err, (case, err)
            statuses[status] = statuses.get(status, 0) + 1
        assert statuses.get(EXIT_INPUT, 0) > 0
