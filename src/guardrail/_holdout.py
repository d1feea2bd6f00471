"""Randomized holdout by hashed unit id, and the decision log it feeds."""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, Protocol, runtime_checkable

import attrs
import numpy as np

from ._call import Source
from ._errors import ConfigError, SinkClosedError, SinkFullError
from ._forks import fork_safe_lock, in_child
from ._hooks import emit
from ._inputs import rows_of
from ._mechanism_events import DecisionLogFailed
from ._model import callable_name, canonical_json, fingerprint_bytes
from ._outcomes import row_ids
from ._prediction import Decision, Prediction, Threshold, json_float

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from ._call import Call
    from ._thresholds import DynamicThreshold

__all__ = ["DecisionLog", "DecisionRecord", "DecisionSink", "Holdout", "JsonLinesSink"]

Arm = Literal["model", "holdout"]
_SCALE: Final = float(1 << 64)


class Holdout:
    """Sends a fixed fraction of units to a holdout arm that gets a default action.

    A unit (a user, an account) is assigned by hashing *salt* and its id with
    BLAKE2b, so the same unit always lands in the same arm for the same salt,
    in every process; change the salt to draw a new holdout. Keep the salt
    secret and hard to guess: whoever knows it can predict every unit's arm
    (configurations and reprs show only :attr:`salt_fingerprint`). The
    holdout arm gets *default_action* instead of the model's decision.

    Every decision records its arm, the *intended* action (the model's
    decision in the model arm, *default_action* in the holdout arm) and its
    propensity: the probability of the intended action under this
    randomization (1 where both arms agree, ``1 - fraction`` for the model's
    action, ``fraction`` for the holdout's), floored at *propensity_floor* so
    inverse-propensity weights stay bounded. An action limit or a kill switch
    running later may still veto the intended action; the decision's ``act``
    is what was done.

    Args:
        fraction: The share of units in the holdout arm, in ``[0, 1)``.
        unit: The unit id of one input row, e.g. ``lambda row: row["user_id"]``.
        salt: Makes the assignment reproducible; a new salt, a new draw.
        default_action: What the holdout arm does (``False``: no action).
        propensity_floor: The smallest propensity recorded, in ``(0, 1]``.
        name: Identifies the holdout in events.

    >>> import guardrail as gr
    >>> h = gr.Holdout(fraction=0.5, unit=lambda row: row["user_id"], salt="2026-11")
    >>> h.arm({"user_id": 42}) == h.arm({"user_id": 42})
    True
    """

    kind: ClassVar[str] = "holdout"

    def __init__(
        self,
        *,
        fraction: float = 0.05,
        unit: Callable[[Any], object],
        salt: str,
        default_action: bool = False,
        propensity_floor: float = 0.01,
        name: str = "holdout",
    ) -> None:
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
            raise ConfigError(f"fraction must be a number, got {fraction!r}")
        if not 0.0 <= fraction < 1.0:
            raise ConfigError(f"fraction must lie in [0, 1), got {fraction!r}")
        if not callable(unit):
            raise ConfigError("unit must be a function of one input row")
        if not isinstance(salt, str) or not salt:
            raise ConfigError("salt must be a non-empty string")
        if not isinstance(default_action, bool):
            raise ConfigError(f"default_action must be a bool, got {default_action!r}")
        if (
            isinstance(propensity_floor, bool)
            or not isinstance(propensity_floor, (int, float))
            or not 0.0 < propensity_floor <= 1.0
        ):
            raise ConfigError(f"propensity_floor must lie in (0, 1], got {propensity_floor!r}")
        if not isinstance(name, str) or not name:
            raise ConfigError("name must be a non-empty string")
        self.name = name
        #: Who emits this holdout's events (set again when a guard takes it).
        self.source = Source("holdout", name)
        self.fraction = float(fraction)
        self.unit = unit
        self.salt = salt
        self.default_action = default_action
        self.propensity_floor = float(propensity_floor)
        # Hashes below the cut are in the holdout.
        self._cut = int(self.fraction * _SCALE)
        salt_bytes = salt.encode()
        self._key = salt_bytes if len(salt_bytes) <= 64 else hashlib.sha256(salt_bytes).digest()
        #: Identifies the salt in configurations and reprs without revealing it.
        self.salt_fingerprint = hashlib.sha256(salt_bytes).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        """The settings, JSON-ready (same as :attr:`config`)."""
        return self.config

    @property
    def config(self) -> dict[str, Any]:
        """The configuration as a JSON-ready dict.

        The unit function appears by name, the salt only by its fingerprint
        (the first 12 hex digits of its sha256): whoever knows the salt can
        predict every unit's arm.
        """
        return {
            "name": self.name,
            "fraction": self.fraction,
            "unit": callable_name(self.unit),
            "salt_fingerprint": self.salt_fingerprint,
            "default_action": self.default_action,
            "propensity_floor": self.propensity_floor,
        }

    def _digest(self, row: object) -> bytes:
        unit = self.unit(row)
        # Any text is hashed as its bytes: lone surrogates and odd Unicode included.
        data = unit if isinstance(unit, bytes) else str(unit).encode("utf-8", "surrogatepass")
        return hashlib.blake2b(data, digest_size=8, key=self._key).digest()

    def hashed_unit(self, row: object) -> str:
        """The row's unit id, salted and hashed (16 hex digits): safe to log."""
        return self._digest(row).hex()

    def arm(self, row: object) -> Arm:
        """``"holdout"`` or ``"model"`` for one input row."""
        return "holdout" if int.from_bytes(self._digest(row), "big") < self._cut else "model"

    def assign(self, rows: object) -> tuple[NDArray[np.bool_], list[str]]:
        """For a sequence of rows: a bool array (True = holdout) and hashed unit ids."""
        digests = [self._digest(row) for row in rows]  # type: ignore[attr-defined]
        cut = self._cut
        held = np.fromiter(
            (int.from_bytes(d, "big") < cut for d in digests), dtype=np.bool_, count=len(digests)
        )
        return held, [d.hex() for d in digests]

    def propensity(self, held: bool, model_act: bool | None) -> float:
        """The floored probability of the policy's intended action for one row."""
        f = self.fraction
        if model_act is None:
            p = f if held else 1.0 - f  # no action decided: the arm's probability
        elif model_act == self.default_action:
            p = 1.0
        else:
            p = f if held else 1.0 - f
        return max(p, self.propensity_floor)

    def assign_call(self, call: Call) -> None:
        """The guard's assigner: the arm, intended action and propensity of each row.

        The holdout arm gets the default action.
        """
        inputs = call.inputs
        act = call.act
        reason = None
        if inputs.batch_size is None:
            held = self.arm(inputs.raw) == "holdout"
            model_act = None if act is None else bool(act)
            new_act: bool | None = None
            if held and act is not None and act != self.default_action:
                new_act, reason = self.default_action, "holdout"
            call.assign(
                "holdout" if held else "model",
                None if model_act is None else self.default_action if held else model_act,
                self.propensity(held, model_act),
                act=new_act,
                reason=reason,
            )
            return
        mask, _ = self.assign(inputs.rows())
        f = self.fraction
        arm = np.where(mask, "holdout", "model")
        if act is None:
            call.assign(arm, None, np.maximum(np.where(mask, f, 1.0 - f), self.propensity_floor))
            return
        acts = np.asarray(act, dtype=np.bool_)
        prop = np.where(acts == self.default_action, 1.0, np.where(mask, f, 1.0 - f))
        flipped = np.where(mask, self.default_action, acts)
        call.assign(
            arm,
            flipped,
            np.maximum(prop, self.propensity_floor),
            act=flipped,
            reason="holdout" if bool((flipped != acts).any()) else None,
        )

    def __repr__(self) -> str:
        return (
            f"Holdout(name={self.name!r}, fraction={self.fraction}, "
            f"salt_fingerprint={self.salt_fingerprint!r})"
        )


@attrs.frozen
class DecisionRecord:
    """One row of the decision log: what an off-policy evaluation needs.

    ``decision_id`` is the prediction id (``"<id>:<row>"`` for a row of a
    batch), the same id :meth:`OutcomeMonitor.record_outcome` joins on.
    ``intended`` is the action the randomized policy chose (the model's
    decision in the model arm, the default action in the holdout arm) and
    ``propensity`` the probability of that intended action; both are
    ``None`` without a holdout. ``action`` is what was done after action
    limits and kill switches, and ``reasons`` why an action was vetoed (for
    a batch, the reasons of any of its rows: compare ``intended`` and
    ``action`` to see which rows an action limit vetoed).
    """

    decision_id: str
    unit: str | None
    timestamp: float
    model: str
    model_version: str
    score: float
    scale: str
    threshold: float | None
    threshold_version: int | None
    intended: bool | None
    propensity: float | None
    action: bool | None
    reasons: tuple[str, ...]
    arm: str | None
    config: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; an infinite score or threshold is ``"inf"`` or ``"-inf"``."""
        return {
            "decision_id": self.decision_id,
            "unit": self.unit,
            "timestamp": self.timestamp,
            "model": self.model,
            "model_version": self.model_version,
            "score": json_float(self.score),
            "scale": self.scale,
            "threshold": None if self.threshold is None else json_float(self.threshold),
            "threshold_version": self.threshold_version,
            "intended": self.intended,
            "propensity": self.propensity,
            "action": self.action,
            "reasons": list(self.reasons),
            "arm": self.arm,
            "config": self.config,
        }


@runtime_checkable
class DecisionSink(Protocol):
    """Where decision records go: any object with ``write``, ``flush`` and ``close``.

    ``write`` may raise :class:`~guardrail.errors.SinkFullError` when it cannot keep
    a record, and :class:`~guardrail.errors.SinkClosedError` after ``close``; any
    exception is counted and reported by the :class:`DecisionLog`, never
    raised into the predict call.
    """

    def write(self, record: DecisionRecord) -> None:
        """Keep one record."""

    def flush(self) -> None:
        """Make kept records durable."""

    def close(self) -> None:
        """Flush and release resources."""


class JsonLinesSink:
    """Appends decision records to a JSON-lines file, through a bounded buffer.

    Records are buffered and written every *flush_every* records, on
    :meth:`flush`, on :meth:`close` (also as a context manager) and at
    interpreter exit (registered at the first write, not at import). Writing
    after :meth:`close` raises :class:`~guardrail.errors.SinkClosedError`.

    Each record is written exactly once and whole: lines go to the file with
    unbuffered appends, and after a failed or partial write only the bytes
    not yet written are retried. A forked child drops the records its parent
    had buffered (the parent writes them). If writing fails, the buffer keeps
    up to *max_buffer* records, the sink retries at most every *retry_every*
    seconds (so a failing file costs O(1) per record) and
    :class:`~guardrail.errors.SinkFullError` is raised for records beyond the
    buffer. :attr:`written` counts the records that reached the file,
    :attr:`failures` the failed writes (``last_error`` the latest).

    >>> import guardrail as gr, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "decisions.jsonl")
    >>> with gr.holdout.JsonLinesSink(path) as sink:
    ...     pass
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_buffer: int = 10_000,
        flush_every: int = 1000,
        retry_every: float = 1.0,
    ) -> None:
        for key, n in (("max_buffer", max_buffer), ("flush_every", flush_every)):
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ConfigError(f"{key} must be a positive int, got {n!r}")
        if flush_every > max_buffer:
            raise ConfigError("flush_every must not exceed max_buffer")
        if (
            isinstance(retry_every, bool)
            or not isinstance(retry_every, (int, float))
            or not 0 <= retry_every <= 3600
        ):
            raise ConfigError(f"retry_every must be seconds in [0, 3600], got {retry_every!r}")
        self.path = os.fspath(path)
        self.max_buffer = max_buffer
        self.flush_every = flush_every
        self.retry_every = float(retry_every)
        self._buffer: list[str] = []
        # Bytes taken from the buffer whose write has not completed, from _offset on,
        # and how many records they still hold.
        self._chunk = b""
        self._offset = 0
        self._chunk_records = 0
        self._lock = fork_safe_lock(self)
        self._fd: int | None = None
        self._registered = False
        self._closed = False
        self._retry_at = 0.0
        #: Records that reached the file.
        self.written = 0
        #: Failed writes (a retry that fails again counts again).
        self.failures = 0
        #: The latest failed write's exception type and message.
        self.last_error = ""
        in_child(self, _drop_inherited)

    def write(self, record: DecisionRecord) -> None:
        """Buffer *record*; write the buffer out when it reaches *flush_every*."""
        # Strict JSON: a NaN or infinity would make the line unreadable elsewhere.
        line = json.dumps(record.to_dict(), separators=(",", ":"), allow_nan=False)
        with self._lock:
            if self._closed:
                raise SinkClosedError(f"{self.path}: the sink is closed")
            if not self._registered:
                atexit.register(self._close_at_exit)
                self._registered = True
            buffer = self._buffer
            held = len(buffer) + self._chunk_records
            if held >= self.flush_every and time.monotonic() >= self._retry_at:
                # On failure the records stay buffered, retried after retry_every.
                with contextlib.suppress(OSError):
                    self._flush_locked()
                held = len(buffer) + self._chunk_records
            if held >= self.max_buffer:
                raise SinkFullError(f"{self.path}: {held} records buffered")
            buffer.append(line)
            if held + 1 >= self.flush_every and time.monotonic() >= self._retry_at:
                with contextlib.suppress(OSError):
                    self._flush_locked()

    def _flush_locked(self) -> None:
        if not self._chunk and self._buffer:
            self._chunk = ("\n".join(self._buffer) + "\n").encode()
            self._offset = 0
            self._chunk_records = len(self._buffer)
            self._buffer.clear()
        chunk = self._chunk
        if not chunk:
            return
        view = memoryview(chunk)
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            while self._offset < len(chunk):
                start = self._offset
                n = os.write(self._fd, view[start:])
                self._offset = start + n
                lines = chunk.count(b"\n", start, start + n)
                self.written += lines
                self._chunk_records -= lines
        except OSError as e:
            self.failures += 1
            self.last_error = f"{type(e).__name__}: {e}"[:200]
            self._retry_at = time.monotonic() + self.retry_every
            raise
        finally:
            view.release()
        self._chunk, self._offset, self._chunk_records = b"", 0, 0
        self._retry_at = 0.0

    def flush(self) -> None:
        """Write buffered records to the file (``OSError`` if it cannot)."""
        with self._lock:
            self._flush_locked()
            if self._buffer:  # records buffered behind a chunk just written
                self._flush_locked()

    @property
    def buffered(self) -> int:
        """Records waiting to be written."""
        return len(self._buffer) + self._chunk_records

    def close(self) -> None:
        """Flush and close the file; safe to call twice.

        Raises ``OSError`` if the buffered records cannot be written (they are
        kept, and a later ``close`` tries again).
        """
        with self._lock:
            if self._closed and not self.buffered:
                return
            try:
                self._flush_locked()
                if self._buffer:
                    self._flush_locked()
            finally:
                if self._fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(self._fd)
                    self._fd = None
                self._closed = True
                if self._registered:
                    atexit.unregister(self._close_at_exit)
                    self._registered = False

    def _close_at_exit(self) -> None:
        lost = self.buffered
        try:
            self.close()
        except OSError as e:
            # Too late for hooks: say it where an operator will look.
            sys.stderr.write(
                f"guardrail: {lost} decision records not written to {self.path}: {e}\n"
            )

    def __enter__(self) -> JsonLinesSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"JsonLinesSink({self.path!r}, buffered={self.buffered})"


def _drop_inherited(sink: JsonLinesSink) -> None:
    """In a forked child: the parent writes what it had buffered; the child starts empty."""
    sink._buffer = []
    sink._chunk, sink._offset, sink._chunk_records = b"", 0, 0
    if sink._fd is not None:
        with contextlib.suppress(OSError):
            os.close(sink._fd)  # the child's copy; the parent's stays open
        sink._fd = None


def _threshold_settings(threshold: object) -> Any:
    """What a decision log's fingerprint records of its threshold."""
    if threshold is None:
        return None
    if isinstance(threshold, Threshold):
        return threshold.to_dict()
    config = getattr(threshold, "config", None)
    if config is None:
        raise ConfigError(f"threshold must be a Threshold or a DynamicThreshold, got {threshold!r}")
    return config


class DecisionLog:
    """Writes one :class:`DecisionRecord` per decided row to a sink.

    Use it as a guard's last mechanism, give it to an
    :class:`OutcomeMonitor` (``log=``), or call :meth:`write` by hand. A sink
    that raises or is full is counted (``dropped_full``, ``dropped_error``)
    and reported with :class:`~guardrail.instrumentation.DecisionLogFailed` at doubling
    counts; it never raises into the predict call. A sink that keeps a
    ``failures`` count (as :class:`JsonLinesSink` does) is reported at its
    first failed write, and again each time that count doubles.

    Args:
        sink: A :class:`DecisionSink`, e.g. :class:`JsonLinesSink`.
        holdout: Hashes unit ids with the holdout's unit function and salt.
        threshold: A threshold (fixed or dynamic) whose settings the
            fingerprint covers.
        config: Anything else the fingerprint should cover (JSON-ready).
        name: Identifies the log in events.
    """

    kind: ClassVar[str] = "decision_log"

    def __init__(
        self,
        sink: DecisionSink,
        *,
        holdout: Holdout | None = None,
        threshold: DynamicThreshold[Any] | Threshold[Any] | None = None,
        config: Mapping[str, Any] | None = None,
        name: str = "decisions",
    ) -> None:
        if not isinstance(sink, DecisionSink):
            raise ConfigError("sink must have write(record), flush() and close() methods")
        if holdout is not None and not isinstance(holdout, Holdout):
            raise ConfigError("holdout must be a Holdout")
        if not isinstance(name, str) or not name:
            raise ConfigError("name must be a non-empty string")
        self.sink = sink
        self.holdout = holdout
        self.name = name
        #: Who emits this log's events (set again when a guard takes it).
        self.source = Source("decision_log", name)
        try:
            text = canonical_json(
                {
                    "holdout": None if holdout is None else holdout.config,
                    "threshold": _threshold_settings(threshold),
                    "config": None if config is None else dict(config),
                }
            )
        except (TypeError, ValueError) as e:
            raise ConfigError(f"config must be JSON-ready: {e}") from e
        #: The sha256 of the configuration, written into every record.
        self.fingerprint = fingerprint_bytes(text.encode())
        self._lock = fork_safe_lock(self)
        #: Records the sink accepted (buffered or written).
        self.accepted = 0
        self.dropped_full = 0
        self.dropped_error = 0
        self._sink_failures = 0

    @property
    def written(self) -> int:
        """Records that reached the sink's storage.

        The sink's own ``written`` count when it keeps one (as
        :class:`JsonLinesSink` does: records in the file, not in its buffer),
        else the records the sink accepted.
        """
        written = getattr(self.sink, "written", None)
        if isinstance(written, int) and not isinstance(written, bool):
            return written
        return self.accepted

    def records(
        self,
        prediction: Prediction[Any],
        threshold: Threshold[Any] | None = None,
        act: object = None,
        arm: object = None,
        propensity: object = None,
        inputs: object = None,
        intended: object = None,
        reasons: tuple[str, ...] | list[str] = (),
    ) -> list[DecisionRecord]:
        """The records for one prediction (one per row of a batch).

        *act*, *arm*, *intended* and *propensity* are one value or an array
        over the rows; *reasons* are the decision's veto reasons.
        """
        raw = prediction.value.value
        ids = row_ids(prediction)
        n = len(ids)
        scores = [raw] if type(raw) is float else raw.tolist()
        units: list[str | None] = [None] * n
        if self.holdout is not None:
            rows = rows_of(inputs, n)
            if rows is not None:
                units = [self.holdout.hashed_unit(row) for row in rows]

        def each(x: object) -> list[Any]:
            if isinstance(x, np.ndarray):
                return x.tolist()  # type: ignore[no-any-return]
            return [x] * n

        acts, arms, props, intents = each(act), each(arm), each(propensity), each(intended)
        vetoes = tuple(reasons)
        model = prediction.model
        t_value = None if threshold is None else threshold.value
        t_version = None if threshold is None else threshold.version
        return [
            DecisionRecord(
                decision_id=ids[i],
                unit=units[i],
                timestamp=prediction.created_at,
                model=model.name,
                model_version=model.version,
                score=scores[i],
                scale=prediction.value.scale,
                threshold=t_value,
                threshold_version=t_version,
                intended=None if intents[i] is None else bool(intents[i]),
                propensity=None if props[i] is None else float(props[i]),
                action=None if acts[i] is None else bool(acts[i]),
                reasons=vetoes,
                arm=arms[i],
                config=self.fingerprint,
            )
            for i in range(n)
        ]

    def write(self, decision: Decision[Any] | Prediction[Any], *, inputs: object = None) -> None:
        """Write the records of a decision (or a bare prediction); never raises."""
        try:
            if isinstance(decision, Decision):
                records = self.records(
                    decision.prediction,
                    decision.threshold,
                    decision.act,
                    decision.arm,
                    decision.propensity,
                    inputs,
                    decision.intended,
                    decision.reasons,
                )
            else:
                records = self.records(decision, inputs=inputs)
        except Exception as e:  # noqa: BLE001 - e.g. the unit function failed
            self._failed(e)
            return
        self._send(records)

    def _send(self, records: list[DecisionRecord]) -> None:
        for record in records:
            try:
                self.sink.write(record)
            except SinkFullError as e:
                with self._lock:
                    self.dropped_full += 1
                    count = self.dropped_full
                self._report("full", count, e)
            except Exception as e:  # noqa: BLE001 - a failing sink must not break the call
                self._failed(e)
            else:
                with self._lock:
                    self.accepted += 1
        failures = getattr(self.sink, "failures", 0)
        if failures != self._sink_failures and isinstance(failures, int):
            # The sink failed to write (its records wait in its buffer): say so at
            # the first failure, not when the buffer is full.
            with self._lock:
                seen, self._sink_failures = self._sink_failures, failures
            if failures > seen and (seen == 0 or failures.bit_length() > seen.bit_length()):
                error = str(getattr(self.sink, "last_error", "")).partition(":")[0] or "OSError"
                emit(
                    DecisionLogFailed(
                        source=self.source, reason="error", count=failures, error=error
                    )
                )

    def _failed(self, error: Exception) -> None:
        with self._lock:
            self.dropped_error += 1
            count = self.dropped_error
        self._report("error", count, error)

    def _report(self, reason: Literal["full", "error"], count: int, error: Exception) -> None:
        if count & (count - 1) == 0:  # 1, 2, 4, 8, ...
            emit(
                DecisionLogFailed(
                    source=self.source, reason=reason, count=count, error=type(error).__name__
                )
            )

    def record_call(self, call: Call) -> None:
        """The guard's recorder: write the call's records; never raises."""
        prediction = call.prediction
        if prediction is None:
            return
        try:
            records = self.records(
                prediction,
                call.threshold,
                call.act,
                call.arm,
                call.propensity,
                call.inputs,
                call.intended,
                call.reasons,
            )
        except Exception as e:  # noqa: BLE001 - e.g. the unit function failed
            self._failed(e)
            return
        self._send(records)

    def close(self) -> None:
        """Close the sink."""
        self.sink.close()

    def __repr__(self) -> str:
        return f"DecisionLog({self.sink!r}, written={self.written})"
