"""A guard's configuration as a value: validated, serializable, fingerprinted, diffable."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

import attrs

from ._call import Assigner, Decider, InputMonitor, Limiter, Recorder
from ._errors import ConfigError, FormatError, ScaleError
from ._model import ModelRef, canonical_json, fingerprint_bytes
from ._prediction import Threshold
from ._reading import brief, reading
from ._scales import SCALES, ScaleValue

__all__ = [
    "SLOTS",
    "Change",
    "ConfigDiff",
    "GuardConfig",
    "check_description",
    "describe",
    "diff",
]

OutOfScalePolicy = Literal["raise", "report"]
FORMAT = "guardrail.guard_config"
FORMAT_VERSION = 1
#: The mechanism slots of a guard, in the order they run, and the role each takes.
SLOTS: dict[str, type] = {
    "inputs": InputMonitor,
    "threshold": Decider,
    "holdout": Assigner,
    "limits": Limiter,
    "outcomes": Recorder,
}
_ROLE_NAMES = {
    "inputs": "an input monitor (observe_call), e.g. SkewMonitor",
    "threshold": "a Threshold or a decider (decide_call), e.g. DynamicThreshold",
    "holdout": "an assigner (assign_call), e.g. Holdout",
    "limits": "limiters (acquire_call, refund_call), e.g. ActionLimit",
    "outcomes": "recorders (record_call), e.g. OutcomeMonitor or DecisionLog",
}


def describe(mechanism: object) -> dict[str, Any]:
    """A JSON-ready description of a mechanism: type, name and settings.

    Settings come from the mechanism's ``to_dict()`` when it has one.
    """
    if isinstance(mechanism, Threshold):
        return {"type": "Threshold", "name": "threshold", "settings": mechanism.to_dict()}
    to_dict = getattr(mechanism, "to_dict", None)
    settings = to_dict() if callable(to_dict) else {}
    return {
        "type": type(mechanism).__name__,
        "name": str(getattr(mechanism, "name", type(mechanism).__name__)),
        "settings": json.loads(canonical_json(settings)),
    }


def _check_role(slot: str, value: object) -> None:
    if not isinstance(value, SLOTS[slot]):
        raise ConfigError(f"{slot}= takes {_ROLE_NAMES[slot]}, got {type(value).__name__}")


def _check_returns(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not (isinstance(value, type) and value in SCALES.values()):
        raise ScaleError(f"returns= must be gr.Score, gr.LogOdds or gr.Probability, got {value!r}")


def _to_tuple(value: object) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        value = (value,)
    return tuple(value)


def _to_names(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError("features= is a sequence of feature names")
    names = tuple(value)
    if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise ConfigError("features= must be distinct, non-empty strings")
    return names


@attrs.frozen
class GuardConfig:
    """Everything a guard is made of, as one frozen value.

    Build a guard from it with ``guardrail.Guard(config)`` (and decorate with
    its ``wrap``); derive a variant with ``attrs.evolve(config, threshold=...)``. :meth:`to_dict`
    describes it (mechanisms by type, name and settings), :attr:`fingerprint`
    is the sha256 of that description in canonical JSON, and
    :func:`guardrail.diff` shows what changed between two configurations.

    Each slot takes a mechanism of one role (see :mod:`guardrail.mechanisms`);
    a mechanism in the wrong slot is a :class:`~guardrail.errors.ConfigError`.

    Args:
        model: The model whose predictions the guard returns.
        returns: The scale of the predict function's output.
        name: The guard's name (the predict function's qualified name when
            decorating and not given).
        inputs: An input monitor (``SkewMonitor``), run before the call.
        threshold: A ``Threshold`` or a decider (``DynamicThreshold``); with
            one, the guard returns ``Decision`` instead of ``Prediction``.
        holdout: An assigner (``Holdout``): a randomized holdout.
        limits: Limiters (``ActionLimit``), applied to positive decisions in
            order.
        outcomes: Recorders (``OutcomeMonitor``, ``DecisionLog``): one or a
            sequence.
        features: The names of positional input columns (a 2-D array, rows
            of values), in order; by default the input monitor's reference
            features.
        input_parameter: The predict function's parameter that holds the
            inputs; by default the first one after ``self``/``cls``.
        on_out_of_scale: What a predict function returning a value off its
            scale gets: ``"raise"`` (``PredictionOutOfScaleError``, the default) or
            ``"report"`` (an ``OutOfScale`` event; the value passes through
            unchecked and no action is taken on it).
    """

    model: ModelRef
    returns: type[ScaleValue[Any]] = attrs.field(validator=_check_returns)
    name: str | None = None
    inputs: InputMonitor | None = None
    threshold: Threshold[Any] | Decider | None = None
    holdout: Assigner | None = None
    limits: tuple[Limiter, ...] = attrs.field(default=(), converter=_to_tuple)
    outcomes: tuple[Recorder, ...] = attrs.field(default=(), converter=_to_tuple)
    features: tuple[str, ...] | None = attrs.field(default=None, converter=_to_names)
    input_parameter: str | None = None
    on_out_of_scale: OutOfScalePolicy = "raise"

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.model, ModelRef):
            raise ConfigError(f"model= must be a ModelRef, got {type(self.model).__name__}")
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise ConfigError("name= must be a non-empty string")
        if self.input_parameter is not None and (
            not isinstance(self.input_parameter, str) or not self.input_parameter
        ):
            raise ConfigError("input_parameter= must be a parameter name")
        if self.on_out_of_scale not in ("raise", "report"):
            raise ConfigError(
                f"on_out_of_scale must be 'raise' or 'report', got {self.on_out_of_scale!r}"
            )
        threshold = self.threshold
        if threshold is not None and not isinstance(threshold, Threshold):
            _check_role("threshold", threshold)
        for slot in ("inputs", "holdout"):
            value = getattr(self, slot)
            if value is not None:
                _check_role(slot, value)
        for limit in self.limits:
            _check_role("limits", limit)
        for recorder in self.outcomes:
            _check_role("outcomes", recorder)
        # A dynamic threshold shows its scale and model through current().
        current = getattr(threshold, "current", None)
        self._check_threshold(current() if callable(current) else threshold)
        # Events name a mechanism by kind and name: two parts may not share both.
        # (One object may serve two roles, as its own methods for each.)
        seen: dict[tuple[str, str], int] = {}
        for _, mechanism in self.mechanisms():
            if isinstance(mechanism, Threshold):
                continue
            key = (type(mechanism).kind, mechanism.name)
            if seen.setdefault(key, id(mechanism)) != id(mechanism):
                raise ConfigError(f"two {key[0]} mechanisms of this guard are named {key[1]!r}")
        for _, mechanism in self.mechanisms():
            check = getattr(mechanism, "check_config", None)
            if callable(check):
                check(self)
        if (self.holdout is not None or self.limits) and threshold is None:
            raise ConfigError("holdout= and limits= act on decisions: give the guard a threshold=")

    def _check_threshold(self, threshold: object) -> None:
        if not isinstance(threshold, Threshold):
            return
        if threshold.scale is not self.returns:
            raise ScaleError(
                f"a {threshold.scale.__name__} threshold cannot decide on "
                f"{self.returns.__name__} predictions"
            )
        threshold.check_model(self.model)

    def mechanisms(self) -> list[tuple[str, Any]]:
        """(slot, object) for every configured part, in the order they run."""
        out: list[tuple[str, Any]] = []
        for slot in SLOTS:
            value = getattr(self, slot)
            if slot in ("limits", "outcomes"):
                out.extend((slot, m) for m in value)
            elif value is not None:
                out.append((slot, value))
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (``format`` and ``version`` first)."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "name": self.name,
            "model": self.model.to_dict(),
            "returns": self.returns.scale,
            "features": None if self.features is None else list(self.features),
            "input_parameter": self.input_parameter,
            "on_out_of_scale": self.on_out_of_scale,
            "mechanisms": [{"slot": slot, **describe(m)} for slot, m in self.mechanisms()],
        }

    def to_json(self) -> str:
        """The canonical JSON form: equal configurations, equal text."""
        return canonical_json(self.to_dict())

    @property
    def fingerprint(self) -> str:
        """sha256 of the canonical JSON form; it goes on every span."""
        return fingerprint_bytes(self.to_json().encode())

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, mechanisms: Mapping[str, object] | None = None
    ) -> GuardConfig:
        """Read :meth:`to_dict` output back, strictly.

        A fixed threshold is rebuilt from its settings. Other mechanisms hold
        state and cannot be rebuilt from a description: pass the live objects
        in *mechanisms* by name, and each must match its description.
        Anything malformed is a :class:`~guardrail.errors.FormatError`.
        """
        with reading("a guard configuration"):
            return cls._from_dict(data, mechanisms)

    @classmethod
    def _from_dict(
        cls, data: Mapping[str, Any], mechanisms: Mapping[str, object] | None
    ) -> GuardConfig:
        scale = check_description(data)
        model = ModelRef.from_dict(data["model"])
        live = dict(mechanisms or {})
        slots: dict[str, Any] = {"limits": [], "outcomes": []}
        for entry in data["mechanisms"]:
            slot = entry["slot"]
            if entry["type"] == "Threshold":
                obj: object = _threshold_from(entry["settings"], model)
            else:
                if entry["name"] not in live:
                    raise FormatError(
                        f"{brief(entry['type'])} {brief(entry['name'])} holds state: "
                        "pass it in mechanisms="
                    )
                obj = live[entry["name"]]
                if describe(obj) != {k: entry[k] for k in ("type", "name", "settings")}:
                    raise FormatError(
                        f"the live {brief(entry['name'])} does not match its description"
                    )
            if slot in ("limits", "outcomes"):
                slots[slot].append(obj)
            else:
                slots[slot] = obj
        try:
            return cls(
                model=model,
                returns=scale,
                name=data["name"],
                features=data["features"],
                input_parameter=data["input_parameter"],
                on_out_of_scale=data["on_out_of_scale"],
                **slots,
            )
        except (ConfigError, ScaleError, TypeError) as e:
            raise FormatError(str(e)) from e


_KEYS: Final = frozenset(
    {
        "format",
        "version",
        "name",
        "model",
        "returns",
        "features",
        "input_parameter",
        "on_out_of_scale",
        "mechanisms",
    }
)


def check_description(data: object) -> type[ScaleValue[Any]]:
    """Check the shape of a :meth:`GuardConfig.to_dict` document; return its scale.

    Raises :class:`~guardrail.errors.FormatError` on anything else. Live
    mechanisms are not needed: this is what ``guardrail diff`` reads.
    """
    with reading("a guard configuration"):
        return _check_description(data)


def _check_description(data: object) -> type[ScaleValue[Any]]:
    if not isinstance(data, Mapping):
        raise FormatError("a guard configuration is a mapping")
    if set(data) != _KEYS:
        missing, unknown = _KEYS - set(data), set(data) - _KEYS
        raise FormatError(
            f"guard configuration keys: missing {sorted(missing)}, "
            f"unknown {brief(sorted(map(str, unknown)))}"
        )
    if data["format"] != FORMAT:
        raise FormatError(f"not a guard configuration: format {brief(data['format'])}")
    if type(data["version"]) is not int or data["version"] != FORMAT_VERSION:
        raise FormatError(
            f"guard configuration version {brief(data['version'])} is not supported "
            f"(this guardrail reads version {FORMAT_VERSION})"
        )
    scale = SCALES.get(data["returns"]) if isinstance(data["returns"], str) else None
    if scale is None:
        raise FormatError(f"unknown scale {brief(data['returns'])}")
    ModelRef.from_dict(data["model"])
    if not isinstance(data["mechanisms"], list):
        raise FormatError("mechanisms must be a list")
    for entry in data["mechanisms"]:
        if not isinstance(entry, Mapping) or set(entry) != {"slot", "type", "name", "settings"}:
            raise FormatError("a mechanism is described by slot, type, name and settings")
        slot = entry["slot"]
        if not isinstance(slot, str) or slot not in SLOTS:
            raise FormatError(f"unknown mechanism slot {brief(slot)}")
    return scale


def _threshold_from(settings: object, model: ModelRef) -> Threshold[Any]:
    keys = {"value", "scale", "model", "origin", "version", "direction"}
    if not isinstance(settings, Mapping) or set(settings) != keys:
        raise FormatError(f"a threshold is described by {sorted(keys)}")
    scale = SCALES.get(settings["scale"]) if isinstance(settings["scale"], str) else None
    if scale is None:
        raise FormatError(f"unknown scale {brief(settings['scale'])}")
    value = settings["value"]
    if value in ("inf", "-inf"):
        value = float(value)
    try:
        return Threshold(
            value,
            scale=scale,
            model=None if settings["model"] is None else ModelRef.from_dict(settings["model"]),
            origin=settings["origin"],
            version=settings["version"],
            direction=settings["direction"],
        )
    except (ConfigError, ScaleError, ValueError, TypeError, OverflowError) as e:
        raise FormatError(f"bad threshold: {brief(str(e), 200)}") from e


@attrs.frozen
class Change:
    """One difference between two configurations."""

    path: str
    before: Any
    after: Any

    def __str__(self) -> str:
        if self.before is _MISSING:
            return f"+ {self.path}: {self.after!r}"
        if self.after is _MISSING:
            return f"- {self.path}: {self.before!r}"
        return f"~ {self.path}: {self.before!r} -> {self.after!r}"


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


@attrs.frozen
class ConfigDiff:
    """What changed between two configurations; empty (falsy) when nothing did."""

    changes: tuple[Change, ...]

    def __bool__(self) -> bool:
        return bool(self.changes)

    def __str__(self) -> str:
        return "\n".join(str(c) for c in self.changes) if self.changes else "no changes"


def _flatten(value: object, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        if not value and prefix:
            out[prefix] = {}
        for key in sorted(value):
            _flatten(value[key], f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        for i, item in enumerate(value):
            label = item.get("name", i) if isinstance(item, Mapping) else i
            _flatten(item, f"{prefix}[{label}]", out)
    else:
        out[prefix] = value


def diff(a: object, b: object) -> ConfigDiff:
    """What changed from *a* to *b*: two configurations, model refs or dicts.

    >>> import guardrail as gr
    >>> old = gr.ModelRef(name="fraud", version="3.1.0")
    >>> print(gr.diff(old, gr.ModelRef(name="fraud", version="3.2.0")))
    ~ version: '3.1.0' -> '3.2.0'
    """
    flat_a: dict[str, Any] = {}
    flat_b: dict[str, Any] = {}
    _flatten(_as_dict(a), "", flat_a)
    _flatten(_as_dict(b), "", flat_b)
    changes = []
    for path in sorted(set(flat_a) | set(flat_b)):
        before, after = flat_a.get(path, _MISSING), flat_b.get(path, _MISSING)
        if _differ(before, after):
            changes.append(Change(path, before, after))
    return ConfigDiff(tuple(changes))


def _differ(a: object, b: object) -> bool:
    """True unless *a* and *b* are equal, NaN counting as equal to itself (also in lists)."""
    if a is b:
        return False
    if isinstance(a, float) and isinstance(b, float):
        return a != b and not (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) != len(b) or any(_differ(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return set(a) != set(b) or any(_differ(a[k], b[k]) for k in a)
    return bool(a != b)


def _as_dict(value: object) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        out = to_dict()
        if isinstance(out, Mapping):
            return out
    raise ConfigError(f"diff() compares configurations, model refs or dicts, not {value!r}")
