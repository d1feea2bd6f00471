"""Who made a prediction: the model reference and fingerprints."""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import re
from collections.abc import Mapping
from typing import Any, Final

import attrs

from ._errors import ConfigError, FormatError
from ._reading import brief, loads, reading

__all__ = ["ModelRef", "callable_name", "canonical_json", "fingerprint_bytes", "fingerprint_file"]

_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK: Final = 1 << 20
#: The document :meth:`ModelRef.to_json` writes.
FORMAT: Final = "guardrail.model_ref"
VERSION: Final = 1


def fingerprint_bytes(data: bytes) -> str:
    """The sha256 of *data*, as 64 lower-case hex digits.

    >>> fingerprint_bytes(b"")[:12]
    'e3b0c44298fc'
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"fingerprint_bytes takes bytes, got {type(data).__name__}")
    from hashlib import sha256  # deferred: a process may never fingerprint anything

    return sha256(data).hexdigest()


def fingerprint_file(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's contents (a model artifact, say), read in chunks."""
    from hashlib import sha256

    digest = sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def callable_name(fn: object) -> str:
    """A stable name for a function in a configuration: ``module.qualname``.

    Never a ``repr`` (it holds a memory address, so a fingerprint built on it
    would change with every process); a ``functools.partial`` is named after
    the function it wraps.
    """
    while isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    module = getattr(fn, "__module__", None) or type(fn).__module__
    return f"{module}.{name}" if module else str(name)


def canonical_json(data: object) -> str:
    """JSON with sorted keys and no spaces: equal data, equal text."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _optional_text(name: str) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigError(f"{name} must be a non-empty string or None")

    return check


def _check_name(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"ModelRef.{attribute.name} must be a non-empty string")


def _check_sha(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, str) or not _SHA256.fullmatch(value)):
        raise ConfigError(
            f"ModelRef.{attribute.name} must be 64 lower-case hex digits "
            "(see fingerprint_file), or None"
        )


def _check_time(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, _dt.datetime) or value.utcoffset() is None:
        raise ConfigError("ModelRef.trained_at must be a timezone-aware datetime")


def _to_consumers(value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (tuple, list, frozenset, set)):
        raise ConfigError("ModelRef.consumers must be a sequence of names")
    names = tuple(sorted(set(value))) if isinstance(value, (set, frozenset)) else tuple(value)
    for name in names:
        if not isinstance(name, str) or not name:
            raise ConfigError("every consumer name must be a non-empty string")
    if len(set(names)) != len(names):
        raise ConfigError("ModelRef.consumers lists a name twice")
    return names


@attrs.frozen
class ModelRef:
    """The model that made a prediction: its identity and where it came from.

    Frozen and hashable; round-trips through :meth:`to_dict` / :meth:`from_dict`
    (the bare fields, as other documents embed them) and :meth:`to_json` /
    :meth:`from_json` (a document of its own). *consumers* are the systems
    allowed to act on its predictions (see :meth:`guardrail.Prediction.consume`);
    an empty tuple declares none and so allows any.

    >>> model = ModelRef(name="fraud", version="3.1.0", consumers=("card-blocker",))
    >>> ModelRef.from_dict(model.to_dict()) == model
    True
    """

    name: str = attrs.field(validator=_check_name)
    version: str = attrs.field(validator=_check_name)
    artifact_sha256: str | None = attrs.field(default=None, validator=_check_sha)
    training_data: str | None = attrs.field(
        default=None, validator=_optional_text("ModelRef.training_data")
    )
    feature_schema: str | None = attrs.field(default=None, validator=_check_sha)
    code_version: str | None = attrs.field(
        default=None, validator=_optional_text("ModelRef.code_version")
    )
    trained_at: _dt.datetime | None = attrs.field(default=None, validator=_check_time)
    consumers: tuple[str, ...] = attrs.field(default=(), converter=_to_consumers)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``trained_at`` becomes an ISO-8601 string."""
        out = attrs.asdict(self, recurse=False)
        out["consumers"] = list(self.consumers)
        if self.trained_at is not None:
            out["trained_at"] = self.trained_at.isoformat()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelRef:
        """Read :meth:`to_dict` output back; unknown or missing keys are errors."""
        with reading("a ModelRef"):
            return cls._from_dict(data)

    @classmethod
    def _from_dict(cls, data: Mapping[str, Any]) -> ModelRef:
        if not isinstance(data, Mapping):
            raise FormatError(f"a ModelRef is read from a mapping, got {type(data).__name__}")
        known = {a.name for a in attrs.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise FormatError(f"unknown ModelRef keys: {brief(sorted(map(str, unknown)))}")
        for required in ("name", "version"):
            if required not in data:
                raise FormatError(f"a ModelRef needs {required!r}")
        fields = dict(data)
        trained = fields.get("trained_at")
        if isinstance(trained, str):
            try:
                fields["trained_at"] = _dt.datetime.fromisoformat(trained)
            except ValueError as e:
                raise FormatError(f"ModelRef.trained_at is not ISO-8601: {brief(trained)}") from e
        try:
            return cls(**fields)
        except ConfigError as e:
            raise FormatError(str(e)) from e

    def to_json(self) -> str:
        """A document in canonical JSON (sorted keys): equal models, equal text.

        ``{"format": "guardrail.model_ref", "version": 1, "model": to_dict()}``.
        """
        return canonical_json({"format": FORMAT, "version": VERSION, "model": self.to_dict()})

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelRef:
        """Read :meth:`to_json` output back; another format or version is a FormatError."""
        return cls.from_document(loads(text, "a ModelRef"))

    @classmethod
    def from_document(cls, data: object) -> ModelRef:
        """Read the parsed JSON of :meth:`to_json` back, strictly."""
        with reading("a model reference document"):
            return cls._from_document(data)

    @classmethod
    def _from_document(cls, data: object) -> ModelRef:
        if not isinstance(data, Mapping) or set(data) != {"format", "version", "model"}:
            raise FormatError(
                f'a model reference document is {{"format": "{FORMAT}", "version": {VERSION}, '
                '"model": {...}}'
            )
        if data["format"] != FORMAT:
            raise FormatError(f"not a model reference: format {brief(data['format'])}")
        if data["version"] != VERSION:
            raise FormatError(
                f"unsupported model reference version {brief(data['version'])}; "
                f"this guardrail reads version {VERSION}"
            )
        return cls.from_dict(data["model"])

    @property
    def fingerprint(self) -> str:
        """The sha256 of the canonical JSON of :meth:`to_dict`."""
        return fingerprint_bytes(canonical_json(self.to_dict()).encode())

    def declares(self, consumer: str) -> bool:
        """True if *consumer* may act on this model's predictions."""
        return not self.consumers or consumer in self.consumers
