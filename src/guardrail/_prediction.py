"""Predictions with provenance, thresholds that know their scale, decisions."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, cast, final

import attrs
import numpy as np

from ._call import Source
from ._config import CONFIG
from ._errors import (
    ConfigError,
    FormatError,
    ModelMismatchError,
    OutOfScaleError,
    ScaleError,
    UndeclaredConsumerError,
)
from ._events import ConsumerUndeclared
from ._model import ModelRef
from ._reading import brief, reading
from ._scales import SCALES, ScaleValue

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["Decision", "Prediction", "Threshold", "value_from_json", "value_to_json"]

#: The scale-typed value a prediction holds, e.g. ``Probability[float]``.
S = TypeVar("S", bound=ScaleValue[Any])

_set = object.__setattr__
_tuple_new = tuple.__new__
Origin = Literal["fixed", "tuned", "dynamic"]
Direction = Literal[">=", "<="]


def value_to_json(value: ScaleValue[Any]) -> dict[str, Any]:
    """``{"scale": ..., "value": float or list}``; ±inf become strings."""
    raw = value.value
    if type(raw) is float:
        return {"scale": value.scale, "value": json_float(raw)}
    return {"scale": value.scale, "value": [json_float(x) for x in raw.tolist()]}


def value_from_json(data: object) -> ScaleValue[Any]:
    """Read :func:`value_to_json` output back, re-checking the scale."""
    with reading("a value"):
        return _value_from_json(data)


def _value_from_json(data: object) -> ScaleValue[Any]:
    if not isinstance(data, Mapping) or set(data) != {"scale", "value"}:
        raise FormatError("a value is a mapping with exactly 'scale' and 'value'")
    cls = SCALES.get(data["scale"]) if isinstance(data["scale"], str) else None
    if cls is None:
        raise FormatError(f"unknown scale {brief(data['scale'])}; known: {sorted(SCALES)}")
    raw = data["value"]
    try:
        if isinstance(raw, list):
            return cls(np.array([_float_in(x) for x in raw], dtype=np.float64))
        return cls(_float_in(raw))
    except (ScaleError, OutOfScaleError) as e:
        raise FormatError(f"bad {cls.scale} value: {e}") from e


def json_float(x: float) -> float | str:
    return x if math.isfinite(x) else repr(x)  # "inf", "-inf" ("nan" cannot occur)


def _float_in(x: object) -> float:
    if x == "inf" or x == "-inf":
        return float(x)
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise FormatError(f"a value must be a number, got {brief(x)}")
    try:
        return float(x)
    except OverflowError:
        raise FormatError(f"a value must be a finite number, got {brief(x)}") from None


@final
class Prediction(tuple, Generic[S]):  # type: ignore[type-arg]
    """A typed value together with the model that made it.

    Args:
        value: The prediction on its scale, e.g. ``Probability(0.93)`` (one
            row) or ``Probability(np.array([...]))`` (a batch).
        model: The :class:`ModelRef` that made it.
        id: A process-unique id; one is made when not given.
        created_at: Seconds since the epoch; now when not given.
        upstream: Predictions this one was computed from (a model whose
            features are other models' outputs), for lineage.

    Immutable and compared by value. It is built on a tuple because a guard
    makes one per call and that is the cheapest immutable record CPython
    has (a fifth of the cost of setting five slots); it is not meant to be
    indexed or unpacked, and iterating over it is refused.

    >>> import guardrail as gr
    >>> model = gr.ModelRef(name="fraud", version="3.1.0")
    >>> p = gr.Prediction(gr.Probability(0.93), model)
    >>> p.model.version
    '3.1.0'
    """

    __slots__ = ()

    if TYPE_CHECKING:

        @property
        def value(self) -> S:
            """The prediction on its scale."""

        @property
        def model(self) -> ModelRef:
            """The model that made it."""

        @property
        def id(self) -> str:
            """A process-unique id."""

        @property
        def created_at(self) -> float:
            """Seconds since the epoch."""

        @property
        def upstream(self) -> tuple[Prediction[Any], ...]:
            """The predictions this one was computed from."""

    else:
        value = property(itemgetter(0), doc="The prediction on its scale.")
        model = property(itemgetter(1), doc="The model that made it.")

        @property
        def id(self) -> str:
            """A process-unique id."""
            # Stored as (counter, prefix) and joined on demand: a guard makes
            # one prediction per call and most ids are never read.
            return self[5] + str(self[2])

        created_at = property(itemgetter(3), doc="Seconds since the epoch.")
        upstream = property(itemgetter(4), doc="The predictions this one was computed from.")

    def __new__(
        cls,
        value: S,
        model: ModelRef,
        *,
        id: str | None = None,  # noqa: A002 - the field's natural name
        created_at: float | None = None,
        upstream: tuple[Prediction[Any], ...] = (),
    ) -> Prediction[S]:
        if not isinstance(value, ScaleValue):
            raise ScaleError(
                f"a prediction holds a Score, LogOdds or Probability, got {type(value).__name__}"
            )
        if not isinstance(model, ModelRef):
            raise ConfigError(f"model must be a ModelRef, got {type(model).__name__}")
        upstream = tuple(upstream)
        if not all(isinstance(u, Prediction) for u in upstream):
            raise ConfigError("upstream must hold Predictions")
        if id is not None and (not isinstance(id, str) or not id):
            raise ConfigError("a prediction id must be a non-empty string")
        number, prefix = CONFIG.id_parts() if id is None else (id, "")
        created = time.time() if created_at is None else float(created_at)
        return _tuple_new(cls, (value, model, number, created, upstream, prefix))

    def __eq__(self, other: object) -> bool:
        if type(other) is not Prediction:
            return NotImplemented
        return (
            self.id == other.id
            and self.created_at == other.created_at
            and self.model == other.model
            and self.value == other.value
            and self.upstream == other.upstream
        )

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return hash((self.id, self.created_at))

    def __iter__(self) -> Iterator[Any]:
        raise TypeError("a Prediction is a record, not a sequence: use its attributes")

    def __repr__(self) -> str:
        return (
            f"Prediction(value={self.value!r}, model={self.model.name!r} "
            f"{self.model.version!r}, id={self.id!r})"
        )

    def __getnewargs__(self) -> tuple[Any, ...]:
        return (self.value, self.model)

    @classmethod
    def _fast(cls, value: S, model: ModelRef) -> Prediction[S]:
        """The guard's constructor: arguments already checked."""
        counter, prefix = CONFIG.id_parts()
        return _tuple_new(cls, (value, model, counter, time.time(), (), prefix))

    def consume(self, *, by: str) -> S:
        """Hand the value to consumer *by*, checking the model declared it.

        An undeclared consumer emits :class:`~guardrail.instrumentation.ConsumerUndeclared`,
        or raises :class:`~guardrail.errors.UndeclaredConsumerError` when
        ``guardrail.configure(on_undeclared_consumer="raise")``.
        """
        if not isinstance(by, str) or not by:
            raise ConfigError("a consumer is named by a non-empty string")
        if not self.model.declares(by):
            if CONFIG.on_undeclared_consumer == "raise":
                raise UndeclaredConsumerError(
                    f"{by!r} is not a declared consumer of model {self.model.name!r} "
                    f"(declared: {list(self.model.consumers)})"
                )
            from ._hooks import emit

            source = Source("prediction", self.model.name, None, self.model)
            emit(ConsumerUndeclared(source=source, consumer=by, prediction_id=self.id))
        return self.value

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` reads it back."""
        return {
            "id": self.id,
            "created_at": self.created_at,
            "model": self.model.to_dict(),
            "value": value_to_json(self.value),
            "upstream": [u.to_dict() for u in self.upstream],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Prediction[Any]:
        """Read :meth:`to_dict` output back; unknown keys are errors."""
        with reading("a Prediction"):
            return cls._from_dict(data)

    @classmethod
    def _from_dict(cls, data: Mapping[str, Any]) -> Prediction[Any]:
        keys = {"id", "created_at", "model", "value", "upstream"}
        if not isinstance(data, Mapping) or set(data) != keys:
            raise FormatError(f"a Prediction is a mapping with exactly {sorted(keys)}")
        created = data["created_at"]
        if isinstance(created, bool) or not isinstance(created, (int, float)):
            raise FormatError("Prediction.created_at must be a number")
        if not isinstance(data["upstream"], list):
            raise FormatError("Prediction.upstream must be a list")
        try:
            return cls(
                cast(Any, value_from_json(data["value"])),
                ModelRef.from_dict(data["model"]),
                id=data["id"],
                created_at=created,
                upstream=tuple(cls.from_dict(u) for u in data["upstream"]),
            )
        except ConfigError as e:
            raise FormatError(str(e)) from e


def _check_threshold_scale(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not (isinstance(value, type) and value in SCALES.values()):
        raise ScaleError(f"Threshold.scale must be Score, LogOdds or Probability, got {value!r}")


def _check_version(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"Threshold.version must be a positive int, got {value!r}")


@final
@attrs.frozen
class Threshold(Generic[S]):
    """A cut-off on one scale, set for one model.

    A prediction *passes* when ``value >= threshold`` (or ``<=`` with
    ``direction="<="``). Comparing a value on another scale raises
    :class:`~guardrail.errors.ScaleError`, and mypy rejects it; deciding on a
    prediction of another model (name or version) raises
    :class:`~guardrail.errors.ModelMismatchError`.

    Args:
        value: The cut-off, a float on *scale*.
        scale: ``Score``, ``LogOdds`` or ``Probability``.
        model: The model it was set for; ``None`` accepts any model.
        origin: ``"fixed"`` (chosen by hand), ``"tuned"`` (chosen on data)
            or ``"dynamic"`` (from a :class:`DynamicThreshold`).
        version: Increases with every change of value.
        direction: ``">="`` (high scores act) or ``"<="`` (low scores act).

    >>> import guardrail as gr
    >>> t = gr.Threshold(0.9, scale=gr.Probability)
    >>> t.admits(gr.Probability(0.95))
    True
    """

    value: float
    scale: type[S] = attrs.field(validator=_check_threshold_scale)
    model: ModelRef | None = attrs.field(default=None)
    origin: Origin = attrs.field(default="fixed")
    version: int = attrs.field(default=1, validator=_check_version)
    direction: Direction = attrs.field(default=">=")

    def __attrs_post_init__(self) -> None:
        if self.origin not in ("fixed", "tuned", "dynamic"):
            raise ConfigError(
                f"Threshold.origin must be fixed, tuned or dynamic, got {self.origin!r}"
            )
        if self.direction not in (">=", "<="):
            raise ConfigError(f"Threshold.direction must be '>=' or '<=', got {self.direction!r}")
        if self.model is not None and not isinstance(self.model, ModelRef):
            raise ConfigError("Threshold.model must be a ModelRef or None")
        checked = self.scale(self.value)  # raises if the number is off the scale
        _set(self, "value", checked.value)

    def admits(self, value: S) -> bool | NDArray[np.bool_]:
        """True where *value* passes the threshold (a bool array for a batch)."""
        if type(value) is not self.scale:
            raise ScaleError(
                f"cannot compare a {type(value).__name__} with a "
                f"{self.scale.__name__} threshold; convert it explicitly first"
            )
        raw = value.value
        if type(raw) is float:
            return bool(raw >= self.value if self.direction == ">=" else raw <= self.value)
        out: NDArray[np.bool_] = raw >= self.value if self.direction == ">=" else raw <= self.value
        out.flags.writeable = False
        return out

    def check_model(self, model: ModelRef) -> None:
        """Raise :class:`~guardrail.errors.ModelMismatchError` unless set for *model*.

        A threshold set for no model accepts any; otherwise name and version
        must match (a threshold tuned on 3.1.0 says nothing about 3.2.0).
        """
        mine = self.model
        if mine is not None and (model.name != mine.name or model.version != mine.version):
            raise ModelMismatchError(
                f"threshold set for {mine.name} {mine.version} cannot decide on "
                f"predictions of {model.name} {model.version}"
            )

    def decide(self, prediction: Prediction[S]) -> Decision[S]:
        """Compare *prediction* with this threshold: a :class:`Decision`."""
        if not isinstance(prediction, Prediction):
            raise ScaleError(f"decide() takes a Prediction, got {type(prediction).__name__}")
        self.check_model(prediction.model)
        above = self.admits(prediction.value)
        return Decision(prediction=prediction, threshold=self, above=above, act=above)

    @classmethod
    def _dynamic(
        cls, value: float, scale: type[S], model: ModelRef | None, version: int
    ) -> Threshold[S]:
        """A dynamic threshold's constructor for each decision: arguments already checked."""
        t = _object_new(cls)
        _set_value(t, value)
        _set_scale(t, scale)
        _set_model(t, model)
        _set_origin(t, "dynamic")
        _set_version(t, version)
        _set_direction(t, ">=")
        return t

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "value": json_float(self.value),
            "scale": self.scale.scale,
            "model": None if self.model is None else self.model.to_dict(),
            "origin": self.origin,
            "version": self.version,
            "direction": self.direction,
        }


_object_new = object.__new__
# The slots' setters, looked up once: a dynamic threshold builds a Threshold
# per decision, and attrs' checked constructor costs a microsecond.
_set_value, _set_scale, _set_model, _set_origin, _set_version, _set_direction = (
    Threshold.__dict__[name].__set__
    for name in ("value", "scale", "model", "origin", "version", "direction")
)


@final
@attrs.frozen(eq=False)
class Decision(Generic[S]):
    """What was decided on a prediction, and why.

    Attributes:
        prediction: The prediction decided on.
        threshold: The threshold (value and version) it was compared with.
        above: Where the prediction passed the threshold.
        act: Where the action should be taken: above the threshold and not
            vetoed by an action limit, a holdout arm or a kill switch.
        reasons: Why an action was vetoed, e.g. ``("limit:block_card",)``.
        arm: The holdout arm (``"model"`` or ``"holdout"``), when one is used;
            an array of them for a batch.
        propensity: The probability of the *intended* action under the
            holdout's randomization, when randomized (not of ``act``: an
            action limit or a kill switch may veto the intended action).
        degraded: True when a mechanism could not answer and its failure
            policy decided instead.
        intended: The action the randomized policy chose before action
            limits and kill switches, when a holdout is used: the model's
            decision in the model arm, the default action in the holdout arm.
    """

    prediction: Prediction[S]
    threshold: Threshold[S]
    above: bool | NDArray[np.bool_]
    act: bool | NDArray[np.bool_]
    reasons: tuple[str, ...] = ()
    arm: str | NDArray[np.str_] | None = None
    propensity: float | NDArray[np.float64] | None = None
    degraded: bool = False
    intended: bool | NDArray[np.bool_] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (arrays become lists)."""

        def plain(x: object) -> object:
            return x.tolist() if isinstance(x, np.ndarray) else x

        return {
            "prediction": self.prediction.to_dict(),
            "threshold": self.threshold.to_dict(),
            "above": plain(self.above),
            "act": plain(self.act),
            "reasons": list(self.reasons),
            "arm": plain(self.arm),
            "intended": plain(self.intended),
            "propensity": plain(self.propensity),
            "degraded": self.degraded,
        }
