"""A guard's configuration as a value, and diff()."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest

import guardrail as gr

MODEL = gr.ModelRef(name="fraud", version="3.1.0")
THRESHOLD = gr.Threshold(0.8, scale=gr.Probability, model=MODEL)


class Cap:
    """A stand-in mechanism with settings."""

    kind = "limit"

    def __init__(self, name: str, max_actions: int) -> None:
        self.name, self.max_actions = name, max_actions
        self.source = gr.mechanisms.Source("limit", name)

    def acquire_call(self, call: gr.mechanisms.Call) -> None:
        pass

    def refund_call(self, receipt: object, act: object) -> None:
        pass

    def to_dict(self) -> dict[str, Any]:
        return {"max_actions": self.max_actions}


def config(**changes: Any) -> gr.GuardConfig:
    base = gr.GuardConfig(
        model=MODEL,
        returns=gr.Probability,
        name="fraud",
        threshold=THRESHOLD,
        limits=[Cap("cap", 5)],
    )
    return attrs.evolve(base, **changes)


class TestGuardConfig:
    def test_is_frozen_and_evolves(self) -> None:
        """A configuration cannot change; attrs.evolve makes a variant."""
        c = config()
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            c.name = "other"  # type: ignore[misc]
        assert attrs.evolve(c, on_out_of_scale="report").on_out_of_scale == "report"

    def test_fingerprint_tracks_content(self) -> None:
        """Equal configurations share a fingerprint; a changed threshold changes it."""
        assert config().fingerprint == config().fingerprint
        moved = config(threshold=attrs.evolve(THRESHOLD, value=0.85, version=2))
        assert moved.fingerprint != config().fingerprint
        assert len(config().fingerprint) == 64

    def test_canonical_json(self) -> None:
        """The JSON form is canonical: sorted keys, no spaces."""
        text = config().to_json()
        assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))

    def test_round_trip_with_live_mechanisms(self) -> None:
        """from_dict rebuilds the configuration, binding stateful parts by name."""
        cap = Cap("cap", 5)
        c = config(limits=[cap])
        back = gr.GuardConfig.from_dict(c.to_dict(), mechanisms={"cap": cap})
        assert back.fingerprint == c.fingerprint
        assert back.threshold == THRESHOLD
        assert back.limits == (cap,)

    def test_from_dict_is_strict(self) -> None:
        """Unknown keys, missing live mechanisms, mismatches and bad formats are refused."""
        data = config().to_dict()
        with pytest.raises(gr.errors.FormatError, match="unknown"):
            gr.GuardConfig.from_dict(data | {"colour": 1})
        with pytest.raises(gr.errors.FormatError, match="pass it in mechanisms"):
            gr.GuardConfig.from_dict(data)
        with pytest.raises(gr.errors.FormatError, match="does not match"):
            gr.GuardConfig.from_dict(data, mechanisms={"cap": Cap("cap", 6)})
        with pytest.raises(gr.errors.FormatError, match="format"):
            gr.GuardConfig.from_dict(data | {"format": 99}, mechanisms={"cap": Cap("cap", 5)})
        with pytest.raises(gr.errors.FormatError, match="version"):
            gr.GuardConfig.from_dict(data | {"version": 2}, mechanisms={"cap": Cap("cap", 5)})
        with pytest.raises(gr.errors.FormatError, match="scale"):
            gr.GuardConfig.from_dict(data | {"returns": "percent"})

    def test_duplicate_limit_names(self) -> None:
        """Two limits with one name are refused."""
        with pytest.raises(gr.ConfigError, match="two limit mechanisms"):
            config(limits=[Cap("cap", 1), Cap("cap", 2)])


class TestDiff:
    def test_model_refs(self) -> None:
        """diff() of two model refs lists the changed fields."""
        d = gr.diff(MODEL, attrs.evolve(MODEL, version="3.2.0", code_version="abc"))
        assert str(d) == "~ code_version: None -> 'abc'\n~ version: '3.1.0' -> '3.2.0'"
        assert not gr.diff(MODEL, MODEL)
        assert str(gr.diff(MODEL, MODEL)) == "no changes"

    def test_guard_configs(self) -> None:
        """diff() of two guard configurations names the mechanism and the setting."""
        old = config()
        new = config(limits=[Cap("cap", 50)], on_out_of_scale="report")
        lines = str(gr.diff(old, new)).splitlines()
        assert "~ mechanisms[cap].settings.max_actions: 5 -> 50" in lines
        assert "~ on_out_of_scale: 'raise' -> 'report'" in lines
        assert len(lines) == 2

    def test_refuses_other_things(self) -> None:
        """diff() of plain numbers is a ConfigError."""
        with pytest.raises(gr.ConfigError):
            gr.diff(1, 2)
