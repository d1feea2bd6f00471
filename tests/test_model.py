"""ModelRef and fingerprints."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest

import guardrail as gr

SHA = "a" * 64


def full_model() -> gr.ModelRef:
    return gr.ModelRef(
        name="fraud",
        version="3.1.0",
        artifact_sha256=SHA,
        training_data="s3://bucket/train@2026-11-01",
        feature_schema="b" * 64,
        code_version="git:abc123",
        trained_at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
        consumers=("card-blocker", "risk-dashboard"),
    )


class TestModelRef:
    def test_round_trips_through_dict_and_json(self) -> None:
        """to_dict/from_dict and to_json/from_json give back an equal model."""
        model = full_model()
        assert gr.ModelRef.from_dict(model.to_dict()) == model
        assert gr.ModelRef.from_json(model.to_json()) == model
        document = json.loads(model.to_json())
        assert (document["format"], document["version"]) == ("guardrail.model_ref", 1)
        assert document["model"] == model.to_dict()

    def test_is_hashable_and_frozen(self) -> None:
        """Models can be dict keys and cannot be changed."""
        model = full_model()
        assert {model: 1}[full_model()] == 1
        with pytest.raises(AttributeError):
            model.name = "x"  # type: ignore[misc]

    def test_fingerprint_is_stable_and_sensitive(self) -> None:
        """The fingerprint changes with any field and only then."""
        a, b = full_model(), full_model()
        assert a.fingerprint == b.fingerprint
        import attrs

        assert attrs.evolve(a, version="3.1.1").fingerprint != a.fingerprint

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"name": ""}, "name"),
            ({"version": 3}, "version"),
            ({"artifact_sha256": "XYZ"}, "hex"),
            ({"trained_at": dt.datetime(2026, 1, 1)}, "timezone"),
            ({"consumers": "card-blocker"}, "sequence"),
            ({"consumers": ("a", "a")}, "twice"),
            ({"training_data": ""}, "training_data"),
        ],
    )
    def test_bad_fields(self, kwargs: dict[str, object], message: str) -> None:
        """Each bad field gives a ConfigError naming it."""
        fields: dict[str, object] = {"name": "m", "version": "1", **kwargs}
        with pytest.raises(gr.ConfigError, match=message):
            gr.ModelRef(**fields)  # type: ignore[arg-type]

    def test_from_dict_refuses_unknown_keys(self) -> None:
        """An unknown key is a FormatError, not silently dropped."""
        data = full_model().to_dict() | {"colour": "red"}
        with pytest.raises(gr.errors.FormatError, match="colour"):
            gr.ModelRef.from_dict(data)

    def test_from_dict_needs_name_and_version(self) -> None:
        """A missing required key is a FormatError."""
        with pytest.raises(gr.errors.FormatError, match="version"):
            gr.ModelRef.from_dict({"name": "m"})

    @pytest.mark.parametrize(
        "text",
        [
            "{", "[]", '"x"', '{"name": "m", "version": "1"}',
            '{"format": "guardrail.model_ref", "version": 1, "model": {"name": "m", "version": 1}}',
            '{"format": "guardrail.model_ref", "version": 2, "model": {"name": "m"}}',
            '{"format": "guardrail.profile", "version": 1, "model": {"name": "m"}}',
        ],
    )  # fmt: skip
    def test_from_json_refuses_malformed(self, text: str) -> None:
        """Malformed JSON or wrong shapes are a FormatError."""
        with pytest.raises(gr.errors.FormatError):
            gr.ModelRef.from_json(text)

    def test_bad_time_in_dict(self) -> None:
        """A non-ISO trained_at is a FormatError."""
        with pytest.raises(gr.errors.FormatError, match="ISO"):
            gr.ModelRef.from_dict({"name": "m", "version": "1", "trained_at": "yesterday"})

    def test_declares(self) -> None:
        """No declared consumers allows any; a list allows only those."""
        assert gr.ModelRef(name="m", version="1").declares("anyone")
        assert not full_model().declares("mailer")
        assert full_model().declares("card-blocker")


class TestFingerprints:
    def test_bytes(self) -> None:
        """fingerprint_bytes is sha256 hex."""
        assert gr.fingerprint_bytes(b"abc") == hashlib.sha256(b"abc").hexdigest()
        with pytest.raises(TypeError):
            gr.fingerprint_bytes("abc")  # type: ignore[arg-type]

    def test_file(self, tmp_path: Path) -> None:
        """fingerprint_file hashes the contents, and fits ModelRef.artifact_sha256."""
        path = tmp_path / "model.bin"
        data = bytes(range(256)) * 10_000
        path.write_bytes(data)
        digest = gr.fingerprint_file(path)
        assert digest == hashlib.sha256(data).hexdigest()
        assert gr.ModelRef(name="m", version="1", artifact_sha256=digest).artifact_sha256 == digest


def _module_function(x: int, y: int) -> int:
    return x + y


class TestCallableName:
    def test_functions_lambdas_and_partials(self) -> None:
        """Functions are module.qualname; partials name what they wrap; no addresses."""
        import functools

        from guardrail._model import callable_name

        assert callable_name(_module_function) == "tests.test_model._module_function"
        assert callable_name(functools.partial(_module_function, 1)) == callable_name(
            _module_function
        )
        assert "0x" not in callable_name(lambda row: row)
        assert callable_name(len) == "builtins.len"
