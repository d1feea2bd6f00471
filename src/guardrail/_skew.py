"""The serving side of skew detection: a monitor that samples inputs into the
current profile (the rows since the last check), validates them against the
reference schema and compares the current profile with the reference now and
then.

The per-row path does as little as it can: a sampling draw, one
``itemgetter`` call and a list append. Sampled rows are profiled in blocks of
up to 1,024 (one vectorized step per column). Whether a check is due is
decided lazily on the calls themselves (there is no timer thread); the
comparison itself runs on a background worker thread, started on the first
check, so that no guarded call pays for it.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

import attrs
import numpy as np

from ._call import Source
from ._config import CONFIG
from ._drift import DriftThresholds, SkewReport, compare, rows_to_decide
from ._errors import ConfigError, SchemaViolationError
from ._events import MachineryError
from ._forks import fork_safe_lock
from ._hooks import emit
from ._inputs import Inputs
from ._mechanism_events import InputsInvalid, SkewCheckDelayed, SkewDetected, UpstreamFailure
from ._privacy import redact
from ._profile import (
    NUMBER_TYPES,
    REAL,
    CategoricalProfile,
    FeatureSpec,
    NumericProfile,
    Profile,
    count_values,
    numeric_column,
    to_float,
)
from ._worker import CHECKS

if TYPE_CHECKING:
    from ._call import Call

__all__ = ["SkewMonitor"]

InvalidPolicy = Literal["report", "raise"]
PROBLEMS: Final = ("missing", "unexpected", "type", "nan_inf", "out_of_range")
_BLOCK: Final = 1_024
_MAX_UNEXPECTED_NAMES: Final = 64
# The bounds of an automatic check size (every=None).
_MIN_EVERY: Final = 100
_MAX_EVERY: Final = 10_000
#: Past this many calls before the first check, a monitor says so (``SkewCheckDelayed``).
SLOW_CALLS: Final = 10_000

#: A value no numeric feature takes: what a row that cannot be profiled is counted as.
_WRONG_TYPE: Final = "<invalid>"


class SkewMonitor:
    """Watches a model's inputs for skew against a training-time reference.

    Use it in a guard (``guard(inputs=SkewMonitor(...))``) or on its own:
    call :meth:`observe` with each row (a mapping of feature name to value)
    or :meth:`observe_batch` with a batch. Nothing it does raises into the
    caller, except :class:`~guardrail.errors.SchemaViolationError` under
    ``on_invalid="raise"``.

    Args:
        reference: The training-time :class:`Profile`; its schema is what
            inputs are validated against.
        sample: The share of inputs folded into the serving profile, in
            (0, 1]. Draws are seeded (reproducible) when *seed* is given or
            :func:`guardrail.testing.deterministic` is active.
        on_invalid: ``"report"`` counts schema violations of the sampled
            inputs (in the profile and in :meth:`violations`) and reports them
            at each check; ``"raise"`` checks every input and raises
            :class:`~guardrail.errors.SchemaViolationError` before the model runs.
        checks: The problems that count as violations (default: all of
            ``"missing"``, ``"unexpected"``, ``"type"``, ``"nan_inf"``,
            ``"out_of_range"``).
        every: Compare once the current profile (the sampled rows since the
            last check) holds this many rows. ``None`` (default): the first
            check as soon as it holds enough rows to show drift at the alert
            levels, later ones at the warning levels (about the
            ``rows_needed`` of a comparison, between 100 and 10,000, a
            little more at each check as the lifetime budget's share falls).
            A monitor whose first check is more than 10,000 calls away, or
            whose checks are too small to show drift, says so once: a
            ``SkewCheckDelayed`` event on its first call and a note in its
            reports.
        seconds: ...or once it is this old (and holds at least
            *min_samples* rows); ``None`` to compare by count only.
        min_samples: The fewest rows the current profile needs to be
            compared on time.
        thresholds: Drift levels for every feature.
        per_feature: Drift levels for named features.
        name: The monitor's name in events.
        seed: Seed the sampling draws.
        clock: Returns seconds, for the current profile's age;
            ``time.monotonic`` by default.
        budget: ``"lifetime"`` (default): the thresholds' ``false_alarm``
            probabilities are the monitor's whole false-alarm budget, spent
            over its checks (check k decides at ``false_alarm`` x
            1 / (2 k (1 + ln k)^2), which sums to at most 1), so the chance
            that a monitor of a stream that never drifts *ever* warns is at
            most ``false_alarm[0]`` (1 %), however long it runs.
            ``"check"``: the levels hold per check (a monitor that checks
            n times may then raise about n x 1 % false warnings).
        background: Run the checks that observed calls make due on a
            background thread (one per process, started on the first check),
            so the call that fills the current profile does not wait for the
            comparison. ``False``, or inside
            :func:`guardrail.testing.deterministic`, runs them in that call.
            :meth:`check` always runs now, in the caller.
        range_tolerance: Under ``"raise"``, about the share of legitimate
            rows that may be refused as ``out_of_range`` (default 1 %, over
            all numeric features): a value is out of range only beyond the
            reference's range widened by what a reference of its size leaves
            unseen (see ``docs/skew.md``). ``None``: the observed range
            exactly, which refuses about 2 / (n + 1) of legitimate values
            per feature for a reference of n rows.
        allow_missing: Under ``"raise"``, accept a missing value (None, an
            absent key, NaN) in a feature the reference had missing values
            in. ``False`` refuses every missing value.

    >>> import numpy as np, guardrail as gr
    >>> ref = gr.Profile.from_columns({"amount": np.arange(1000.0)})
    >>> monitor = gr.SkewMonitor(reference=ref, on_invalid="raise")
    >>> monitor.observe({"amount": 12.0})
    >>> monitor.observe({"amount": float("nan")})
    Traceback (most recent call last):
    ...
    guardrail.errors.SchemaViolationError: input violates the schema: amount: nan_inf
    """

    kind: ClassVar[str] = "skew"

    def __init__(
        self,
        *,
        reference: Profile,
        sample: float = 1.0,
        on_invalid: InvalidPolicy = "report",
        checks: Iterable[str] = PROBLEMS,
        every: int | None = None,
        seconds: float | None = 60.0,
        min_samples: int = 1_000,
        thresholds: DriftThresholds | None = None,
        per_feature: Mapping[str, DriftThresholds] | None = None,
        name: str = "skew",
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        budget: Literal["lifetime", "check"] = "lifetime",
        background: bool = True,
        range_tolerance: float | None = 0.01,
        allow_missing: bool = True,
    ) -> None:
        if not isinstance(reference, Profile) or not len(reference):
            raise ConfigError("reference must be a Profile with at least one feature")
        if isinstance(sample, bool) or not isinstance(sample, (int, float)):
            raise ConfigError(f"sample must be a number in (0, 1], got {sample!r}")
        if not 0 < sample <= 1:
            raise ConfigError(f"sample must be in (0, 1], got {sample!r}")
        if on_invalid not in ("report", "raise"):
            raise ConfigError(f"on_invalid must be 'report' or 'raise', got {on_invalid!r}")
        checks = frozenset(checks)
        if not checks <= set(PROBLEMS):
            raise ConfigError(f"unknown checks {sorted(checks - set(PROBLEMS))}; use {PROBLEMS}")
        if every is not None and (type(every) is not int or every < 1):
            raise ConfigError(f"every must be a positive integer or None, got {every!r}")
        if seconds is not None and (
            isinstance(seconds, bool)
            or not isinstance(seconds, (int, float))
            or not seconds > 0
            or not math.isfinite(seconds)
        ):
            raise ConfigError(f"seconds must be a positive number or None, got {seconds!r}")
        if type(min_samples) is not int or min_samples < 1:
            raise ConfigError(f"min_samples must be a positive integer, got {min_samples!r}")
        if not isinstance(name, str) or not name:
            raise ConfigError("name must be a non-empty string")
        if not callable(clock):
            raise ConfigError("clock must be a function returning seconds")
        if thresholds is not None and not isinstance(thresholds, DriftThresholds):
            raise ConfigError("thresholds must be a DriftThresholds")
        unknown = set(per_feature or {}) - set(reference.names)
        if unknown:
            raise ConfigError(f"per_feature names unknown features: {sorted(unknown)}")

        self.name = name
        #: Who emits this monitor's events (set again when a guard takes it).
        self.source = Source("skew", name)
        self.reference = reference
        self.schema = reference.schema
        self.sample = float(sample)
        self.on_invalid: InvalidPolicy = on_invalid
        self.checks = checks
        #: Whether the check size follows the evidence (``every=None``).
        self.auto_every = every is None
        self.every = _MAX_EVERY if every is None else every
        self.seconds = None if seconds is None else float(seconds)
        self.min_samples = min_samples
        self.thresholds = thresholds or DriftThresholds()
        self.per_feature = dict(per_feature or {})
        self.last_report: SkewReport | None = None
        self.errors = 0
        if range_tolerance is not None and (
            isinstance(range_tolerance, bool)
            or not isinstance(range_tolerance, (int, float))
            or not 0 < range_tolerance < 1
        ):
            raise ConfigError(f"range_tolerance must be in (0, 1) or None, got {range_tolerance!r}")
        self.range_tolerance = None if range_tolerance is None else float(range_tolerance)
        self.allow_missing = bool(allow_missing)
        if budget not in ("lifetime", "check"):
            raise ConfigError(f"budget must be 'lifetime' or 'check', got {budget!r}")
        self.budget = budget
        #: Checks run so far (the k of the lifetime budget's spending).
        self.checks_run = 0
        if self.auto_every:
            self.every = self._auto_every(1)
        self.background = bool(background)
        self._clock = clock
        self._delay = self._delayed()
        #: What this monitor's reports note about its checks (``SkewReport.notes``).
        self.notes: tuple[str, ...] = () if self._delay is None else (self._delay[1],)
        self._announce = self._delay is not None

        names = reference.names
        self._names = names
        self._keys = frozenset(names)
        self._width = len(names)
        self._getter: Callable[[Any], tuple[Any, ...]] = (
            itemgetter(*names) if len(names) > 1 else lambda row: (row[names[0]],)
        )
        # Fast-path bounds: NaN, ±inf, strings and None all fail `low <= v <= high`.
        big = float(np.finfo(np.float64).max)
        check_range = "out_of_range" in checks
        numeric = [f for f in reference if isinstance(f, NumericProfile)]
        #: The range a row's value may take under "raise", per numeric feature.
        self.row_ranges: dict[str, tuple[float, float]] = {
            f.name: row_range(f, self.range_tolerance / (2 * len(numeric)))
            if self.range_tolerance is not None
            else (f.min, f.max)
            for f in numeric
            if f.n
        }
        #: Features whose missing values a row may have under "raise".
        self.may_be_missing = frozenset(
            f.name for f in reference if allow_missing and f.missing_rate > 0
        )
        self._ranges = tuple(
            (
                name,
                low if check_range else -big,
                high if check_range else big,
            )
            for name, (low, high) in self.row_ranges.items()
        ) + tuple((f.name, -big, big) for f in numeric if f.name not in self.row_ranges)
        self._categorical_names = tuple(
            f.name for f in self.schema.features if f.kind == "categorical"
        )
        self._block = min(_BLOCK, self.every)
        self._raise = on_invalid == "raise"
        self._random = random.random
        self._seeded = random.Random(0 if seed is None else seed).random
        self._use_seed = seed is not None
        self._np_seed = 0 if seed is None else seed
        self._np_rng = np.random.default_rng(seed)
        self._np_seeded = np.random.default_rng(self._np_seed)

        self._lock = fork_safe_lock(self)
        self._buffer: list[tuple[Any, ...]] = []
        self._window = reference.builder()
        self._total = reference.builder()
        self._window_rows = 0
        self._window_started = self._clock()
        self._deadline = math.inf if self.seconds is None else self._window_started + self.seconds
        self._absent: dict[str, int] = {}
        self._unexpected: dict[str, int] = {}
        self._reported: dict[tuple[str, str], int] = {}

    def __repr__(self) -> str:
        return (
            f"SkewMonitor(name={self.name!r}, features={len(self._names)}, "
            f"sample={self.sample}, on_invalid={self.on_invalid!r})"
        )

    def to_dict(self) -> dict[str, Any]:
        """The monitor's settings, JSON-ready (a guard's configuration shows them)."""
        return {
            "reference_schema": self.schema.fingerprint,
            "sample": self.sample,
            "on_invalid": self.on_invalid,
            "checks": sorted(self.checks),
            "every": self.every,
            "seconds": self.seconds,
            "min_samples": self.min_samples,
            "budget": self.budget,
            "thresholds": attrs.asdict(self.thresholds),
            "per_feature": {
                name: attrs.asdict(levels) for name, levels in sorted(self.per_feature.items())
            },
        }

    # -- the guard's input-monitor role -----------------------------------

    def observe_call(self, call: Call) -> None:
        """Validate and sample the call's inputs: one row, or a batch in one step."""
        inputs = call.inputs
        if inputs.kind == "row":
            self.observe(inputs.raw)
        else:
            self.observe_inputs(inputs)

    # -- rows ----------------------------------------------------------------

    def observe(self, row: Mapping[str, Any]) -> None:
        """Validate one row (under ``"raise"``) and maybe sample it."""
        if self._announce:
            self._say_delayed()
        if self._raise:
            self._check_row(row)
        sample = self.sample
        if sample < 1.0:
            draw = self._seeded if (self._use_seed or CONFIG.deterministic) else self._random
            if draw() >= sample:
                return
        try:
            try:
                values = self._getter(row)
            except (KeyError, TypeError, IndexError):
                values = self._slow_values(row)
            else:
                if len(row) != self._width:
                    self._count_unexpected(row)
            with self._lock:
                self._buffer.append(values)
                if len(self._buffer) < self._block and self._clock() < self._deadline:
                    return
                due = self._flush_locked()
            if due is not None:
                self._report(due)
        except Exception as e:  # noqa: BLE001 - the predict path is sacred
            self._failed(e)

    def _slow_values(self, row: Any) -> tuple[Any, ...]:
        if not isinstance(row, Mapping):
            with self._lock:
                self._absent["<input>"] = self._absent.get("<input>", 0) + 1
            return (None,) * self._width
        out = []
        for name in self._names:
            if name in row:
                out.append(row[name])
            else:
                out.append(None)
                with self._lock:
                    self._absent[name] = self._absent.get(name, 0) + 1
        if len(row) > len(row.keys() & self._keys):
            self._count_unexpected(row)
        return tuple(out)

    def _count_unexpected(self, row: Mapping[str, Any]) -> None:
        with self._lock:
            for key in row:
                if key not in self._keys:
                    self._add_unexpected_locked(key, 1)

    def _add_unexpected_locked(self, key: Any, count: int) -> None:
        # Names arrive with the inputs: past a few dozen, they share one counter,
        # and each is kept redacted (configure(redact=...)) and bounded.
        unexpected = self._unexpected
        name = redact(key)
        if name not in unexpected and len(unexpected) >= _MAX_UNEXPECTED_NAMES:
            name = "<other>"
        unexpected[name] = unexpected.get(name, 0) + count

    def _check_row(self, row: Any) -> None:
        try:
            if row.keys() == self._keys:
                for name, low, high in self._ranges:
                    value = row[name]
                    # Other types (complex, Decimal) may compare in range: the slow path decides.
                    if type(value) not in NUMBER_TYPES or not low <= value <= high:
                        break
                else:
                    for name in self._categorical_names:
                        if type(row[name]) is not str:
                            break
                    else:
                        return
        except Exception:  # noqa: BLE001 - not a mapping, or values that do not compare
            pass
        try:
            violations = self._row_violations(row)
        except Exception as e:  # noqa: BLE001 - only the chosen policy may raise
            self._failed(e)
            return
        if violations:
            raise SchemaViolationError(violations)

    def _row_violations(self, row: Any) -> tuple[tuple[str, str], ...]:
        checks = self.checks
        if not isinstance(row, Mapping):
            return (("<input>", "type"),) if "type" in checks else ()
        found: list[tuple[str, str]] = []
        for spec in self.schema.features:
            try:
                problem = _problem(
                    spec,
                    row.get(spec.name),
                    self.row_ranges.get(spec.name),
                    spec.name in self.may_be_missing,
                )
            except Exception:  # noqa: BLE001 - a value that cannot be checked is not valid
                problem = "type"
            if problem is not None:
                found.append((spec.name, problem))
        found.extend((redact(key), "unexpected") for key in row if key not in self._keys)
        return tuple(v for v in found if v[1] in checks)

    # -- batches -------------------------------------------------------------

    def observe_batch(self, batch: Any) -> None:
        """Validate (under ``"raise"``) and sample a batch, profiled in one step.

        A batch is anything :class:`~guardrail.mechanisms.Inputs` reads as
        one: a 2-D numpy array or a sequence of rows (lists, tuples or 1-D
        arrays) whose values follow the schema's feature order, a sequence of
        row mappings, a mapping of feature name to a column of values, a
        pandas DataFrame or a pyarrow Table.
        """
        try:
            inputs = Inputs.of(batch, self._names)
            if inputs.kind == "row" and isinstance(batch, Mapping):
                # Given as a batch: a mapping is columns, even of unusual ones.
                inputs = Inputs(batch, "columns", None, self._names)
        except Exception as e:  # noqa: BLE001 - the predict path is sacred
            self._failed(e)
            return
        self.observe_inputs(inputs)

    def observe_inputs(self, inputs: Inputs) -> None:
        """Validate (under ``"raise"``) and sample a batch read as :class:`Inputs`."""
        if self._announce:
            self._say_delayed()
        try:
            columns, rows = self._columns(inputs)
            if not rows:
                return
            if self._raise:
                self._check_columns(columns)
            if self.sample < 1.0:
                rng = self._np_seeded if (self._use_seed or CONFIG.deterministic) else self._np_rng
                keep = np.flatnonzero(rng.random(rows) < self.sample)
                if not len(keep):
                    return
                columns = {name: _take(col, keep) for name, col in columns.items()}
                rows = len(keep)
            with self._lock:
                self._window.add_columns(columns)
                self._window_rows += rows
                due = self._flush_locked()
            if due is not None:
                self._report(due)
        except SchemaViolationError:
            raise
        except Exception as e:  # noqa: BLE001 - the predict path is sacred
            self._failed(e)

    def _columns(self, inputs: Inputs) -> tuple[dict[str, Any], int]:
        names = self._names
        kind = inputs.kind
        if kind == "positional":
            batch = inputs.raw
            if isinstance(batch, np.ndarray):
                if batch.shape[1] != self._width:
                    return self._bad_shape("missing" if batch.shape[1] < self._width else "type")
                return {name: batch[:, j] for j, name in enumerate(names)}, len(batch)
            return self._positional_columns(batch)
        if kind in ("columns", "frame", "arrow"):
            batch = inputs.columns()
            columns = {name: batch[name] for name in names if name in batch}
            lengths = {len(c) for c in columns.values()}
            if len(lengths) > 1:
                raise ConfigError("columns of a batch have different lengths")
            rows = lengths.pop() if lengths else len(inputs)
            extra = [key for key in batch if key not in self._keys]
            absent = [name for name in names if name not in batch]
            if self._raise:
                problems = [(n, "missing") for n in absent] + [
                    (redact(k), "unexpected") for k in extra
                ]
                problems = [v for v in problems if v[1] in self.checks]
                # A batch holding none of the features is refused even without rows.
                if problems and (rows or not columns):
                    raise SchemaViolationError(tuple(problems))
            if rows:
                with self._lock:
                    for name in absent:
                        self._absent[name] = self._absent.get(name, 0) + rows
                    for key in extra:
                        self._add_unexpected_locked(key, rows)
            return columns, rows
        if kind == "rows":
            batch = inputs.rows()
            if not batch:
                return {}, 0
            getter = self._getter
            try:
                values = list(map(getter, batch))
            except (KeyError, TypeError, IndexError):
                if self._raise:
                    for row in batch:
                        found = self._row_violations(row)
                        if found:
                            raise SchemaViolationError(found) from None
                values = [self._slow_values(row) for row in batch]
            else:
                width = self._width
                for row in batch:
                    if len(row) != width:
                        if self._raise:
                            found = self._row_violations(row)
                            if found:
                                raise SchemaViolationError(found) from None
                        self._count_unexpected(row)
            transposed = list(zip(*values, strict=True))
            return {name: list(transposed[j]) for j, name in enumerate(names)}, len(values)
        raise ConfigError(
            "a batch is a 2-D numpy array, a sequence of rows, a mapping of columns, a "
            f"pandas DataFrame or a pyarrow Table, got {type(inputs.raw).__name__}"
        )

    def _positional_columns(self, batch: Sequence[Any]) -> tuple[dict[str, Any], int]:
        """Rows of values in the schema's feature order, read like a 2-D array."""
        width = self._width
        for row in batch:
            if isinstance(row, np.ndarray) and row.ndim != 1:
                return self._bad_shape("type")
            if not isinstance(row, (list, tuple, np.ndarray)):
                return self._bad_shape("type")
            if len(row) != width:
                return self._bad_shape("missing" if len(row) < width else "type")
        columns = list(zip(*batch, strict=True))
        return {name: list(columns[j]) for j, name in enumerate(self._names)}, len(batch)

    def _bad_shape(self, problem: str) -> tuple[dict[str, Any], int]:
        if self._raise and problem in self.checks:
            raise SchemaViolationError((("<columns>", problem),))
        with self._lock:
            self._absent["<columns>"] = self._absent.get("<columns>", 0) + 1
        return {}, 0

    def _check_columns(self, columns: Mapping[str, Any]) -> None:
        found: list[tuple[str, str]] = []
        for spec in self.schema.features:
            if spec.name not in columns:
                continue
            column = columns[spec.name]
            if isinstance(column, np.ndarray) and column.ndim != 1:
                found.append((spec.name, "type"))  # a column of rows, not of values
            elif spec.kind == "numeric":
                x, missing, invalid = numeric_column(column)
                may_miss = spec.name in self.may_be_missing
                if missing and not may_miss:
                    found.append((spec.name, "missing"))
                if invalid:
                    found.append((spec.name, "type"))
                finite = np.isfinite(x)
                if not finite.all():
                    if not may_miss or np.isinf(x).any():
                        found.append((spec.name, "nan_inf"))
                    x = x[finite]
                bounds = self.row_ranges.get(spec.name)
                if len(x) and bounds is not None and (x.min() < bounds[0] or x.max() > bounds[1]):
                    found.append((spec.name, "out_of_range"))
            else:
                _, missing, invalid = count_values(column)
                if missing and spec.name not in self.may_be_missing:
                    found.append((spec.name, "missing"))
                if invalid:
                    found.append((spec.name, "type"))
        found = [v for v in found if v[1] in self.checks]
        if found:
            raise SchemaViolationError(tuple(found))

    # -- the current profile and checks ---------------------------------------

    def _flush_locked(self) -> Profile | None:
        """Profile the buffered rows; hand back the current profile if a check is due."""
        buffer = self._buffer
        if buffer:
            self._buffer = []
            self._add_rows_locked(buffer)
            self._window_rows += len(buffer)
        rows = self._window_rows
        # Flush exactly when the current profile fills, so checks land on `every`.
        self._block = max(1, min(_BLOCK, self.every - rows))
        now = self._clock()
        if rows >= self.every or (now >= self._deadline and rows >= self.min_samples):
            return self._rotate_locked(now)
        if now >= self._deadline:
            self._deadline = now + (self.seconds or math.inf)
        return None

    def _add_rows_locked(self, rows: list[tuple[Any, ...]]) -> None:
        """Profile buffered rows as columns; a row that cannot be profiled counts as invalid.

        One vectorized step per block; only if that fails is the block taken
        row by row, so that a bad value costs its own row, not its block.
        """
        names = self._names
        columns = list(zip(*rows, strict=True))
        try:
            self._window.add_columns(
                {name: list(values) for name, values in zip(names, columns, strict=True)}
            )
            return
        except Exception:  # noqa: BLE001 - find the rows that cannot be profiled
            pass
        invalid = self._invalid_row
        for row in rows:
            try:
                self._window.add_columns({name: [v] for name, v in zip(names, row, strict=True)})
            except Exception:  # noqa: BLE001 - counted as one invalid row
                self._window.add_columns(invalid)

    @property
    def _invalid_row(self) -> dict[str, list[Any]]:
        """One row whose every value counts as of the wrong type."""
        return {f.name: [_WRONG_TYPE if f.kind == "numeric" else 0] for f in self.schema.features}

    def _rotate_locked(self, now: float) -> Profile:
        window = self._window.build()
        self._total.add_profile(window)
        self._window = self.reference.builder()
        self._window_rows = 0
        self._window_started = now
        self._deadline = math.inf if self.seconds is None else now + self.seconds
        return window

    def check(self) -> SkewReport | None:
        """Compare the current profile with the reference now, and start a new one.

        Returns the report (also kept as :attr:`last_report`), or None when
        no row was sampled since the last check.
        """
        try:
            with self._lock:
                self._flush_locked_no_check()
                if not self._window_rows:
                    return None
                window = self._rotate_locked(self._clock())
            return self._compare(window)
        except Exception as e:  # noqa: BLE001 - the predict path is sacred
            self._failed(e)
            return None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the checks queued on the background thread have run.

        Returns False if *timeout* seconds passed first. The thread is shared
        by every monitor of the process.
        """
        return CHECKS.wait(timeout)

    def _flush_locked_no_check(self) -> None:
        every, self.every = self.every, 1 << 62
        deadline, self._deadline = self._deadline, math.inf
        try:
            self._flush_locked()
        finally:
            self.every, self._deadline = every, deadline
            self._block = max(1, min(_BLOCK, every - self._window_rows))

    def _report(self, window: Profile) -> None:
        """Compare a full current profile: on the background thread, or now."""
        if self.background and not CONFIG.deterministic:
            CHECKS.submit(lambda: self._compare_reporting_errors(window))
        else:
            self._compare(window)

    def _compare_reporting_errors(self, window: Profile) -> None:
        try:
            self._compare(window)
        except Exception as e:  # noqa: BLE001 - counted and reported, as on the call path
            self._failed(e)

    def _levels(self, k: int) -> tuple[DriftThresholds, dict[str, DriftThresholds]]:
        """The thresholds of the k-th check: the budget's share of it under "lifetime"."""
        if self.budget == "check":
            return self.thresholds, self.per_feature
        share = spend(k)

        def scaled(levels: DriftThresholds) -> DriftThresholds:
            if levels.false_alarm is None:
                return levels
            warn, alert = levels.false_alarm
            return attrs.evolve(levels, false_alarm=(warn * share, alert * share))

        return scaled(self.thresholds), {n: scaled(t) for n, t in self.per_feature.items()}

    def _auto_every(self, k: int) -> int:
        """The rows the k-th check needs to decide, within [100, 10,000].

        The first check needs only enough to show drift at the alert floors,
        so that a sampled monitor looks early; later ones the warning floors.
        """
        thresholds, per_feature = self._levels(k)
        needed = rows_to_decide(self.reference, thresholds, per_feature, level=int(k == 1))
        return _MAX_EVERY if needed < 0 else min(_MAX_EVERY, max(_MIN_EVERY, needed))

    def _delayed(self) -> tuple[SkewCheckDelayed, str] | None:
        """The event and note of a monitor that will not decide for a while, if it will not."""
        thresholds, per_feature = self._levels(1)
        needed = rows_to_decide(self.reference, thresholds, per_feature)
        calls = math.ceil(self.every / self.sample)
        share = f"{self.sample:.3g}" if self.sample < 1 else "every call"
        if needed < 0:
            reason, calls = "small_reference", -1
            note = "the reference is too small for any check to show drift at the warning levels"
        elif not self.auto_every and self.every < needed:
            reason = "small_checks"
            note = (
                f"a check every {self.every:,} sampled rows is too few to show drift at the "
                f"warning levels (about {needed:,} needed)"
            )
        elif calls > SLOW_CALLS:
            reason = "sampling"
            note = (
                f"the first check comes after about {calls:,} calls "
                f"({self.every:,} sampled rows at sample={share})"
            )
        else:
            return None
        event = SkewCheckDelayed(
            source=self.source, reason=reason, calls=calls, rows=self.every, sample=self.sample
        )
        return event, note

    def _say_delayed(self) -> None:
        """Emit the delay notice once, with the source the monitor has by now."""
        with self._lock:
            if not self._announce:
                return
            self._announce = False
        try:
            assert self._delay is not None
            emit(attrs.evolve(self._delay[0], source=self.source))
        except Exception as e:  # noqa: BLE001 - the predict path is sacred
            self._failed(e)

    def _compare(self, window: Profile) -> SkewReport:
        with self._lock:
            self.checks_run += 1
            k = self.checks_run
        if self.auto_every:
            following = self._auto_every(k + 1)
            with self._lock:
                self.every = following
        thresholds, per_feature = self._levels(k)
        report = compare(self.reference, window, thresholds=thresholds, per_feature=per_feature)
        if self.notes:
            report = attrs.evolve(report, notes=self.notes)
        self.last_report = report
        samples = report.serving_rows
        for drift in report.drifted:
            missing = next(m for m in drift.metrics if m.metric == "missing_rate_change")
            if missing.severity == "alert":
                feature = window[drift.name]
                ref = self.reference[drift.name]
                emit(
                    UpstreamFailure(
                        source=self.source,
                        feature=drift.name,
                        missing_rate=feature.missing_rate,
                        reference_missing_rate=ref.missing_rate,
                        samples=samples,
                    )
                )
            # A missing-rate alert is an UpstreamFailure (an error); a warning is skew.
            others = [
                m
                for m in drift.metrics
                if m.severity != "ok" and not (m is missing and m.severity == "alert")
            ]
            if others:
                worst = max(others, key=lambda m: (m.severity == "alert", m.ratio))
                assert worst.warn is not None
                assert worst.alert is not None
                emit(
                    SkewDetected(
                        source=self.source,
                        feature=drift.name,
                        metric=worst.metric,
                        value=worst.value,
                        warn=worst.warn,
                        alert=worst.alert,
                        severity=worst.severity,
                        samples=samples,
                    )
                )
        for (name, problem), count in self._new_violations().items():
            if problem in _JUDGED and not _beyond_chance(report, name, problem, thresholds):
                continue  # as many as sampling alone gives: not a problem of the inputs
            emit(InputsInvalid(source=self.source, feature=name, problem=problem, count=count))
        return report

    def _new_violations(self) -> dict[tuple[str, str], int]:
        with self._lock:
            current = self._violations_locked()
            new = {
                key: count - self._reported.get(key, 0)
                for key, count in current.items()
                if count > self._reported.get(key, 0)
            }
            self._reported = current
        return new

    def _violations_locked(self) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for name, count in self._absent.items():
            out[(name, "missing")] = count
        for name, count in self._unexpected.items():
            out[(name, "unexpected")] = count
        merged = self._total.build().merge(self._window.build())
        for f in merged:
            if isinstance(f, NumericProfile):
                values = {
                    "missing": f.missing - self._absent.get(f.name, 0),
                    "type": f.invalid,
                    "nan_inf": f.nan + f.posinf + f.neginf,
                    "out_of_range": f.below + f.above,
                }
            else:
                assert isinstance(f, CategoricalProfile)
                values = {"missing": f.missing - self._absent.get(f.name, 0), "type": f.invalid}
            for problem, count in values.items():
                if count > 0:
                    key = (f.name, problem)
                    out[key] = out.get(key, 0) + count
        return {k: v for k, v in out.items() if k[1] in self.checks}

    def violations(self) -> dict[tuple[str, str], int]:
        """Counts of schema problems among the sampled inputs, by (feature, problem)."""
        with self._lock:
            self._flush_locked_no_check()
            return self._violations_locked()

    def serving_profile(self) -> Profile:
        """Everything sampled so far, as one profile (for export and fleet merging).

        Never raises: should profiling fail, the failure is reported as a
        ``MachineryError`` and the profile holds what was profiled before.
        """
        try:
            with self._lock:
                self._flush_locked_no_check()
                return self._total.build().merge(self._window.build())
        except Exception as e:  # noqa: BLE001 - the caller gets what there is
            self._failed(e)
        try:
            with self._lock:
                return self._total.build()
        except Exception:  # noqa: BLE001 - nothing profiled can be read: an empty profile
            return self.reference.builder().build()

    def _failed(self, error: BaseException) -> None:
        self.errors += 1
        emit(MachineryError(source=self.source, error=type(error).__name__))


# Problems that sampling alone produces at some rate: judged against it.
_JUDGED: Final = {"out_of_range": "out_of_range", "missing": "missing_rate_change"}


def _beyond_chance(report: SkewReport, name: str, problem: str, levels: DriftThresholds) -> bool:
    """Whether a check's count of *problem* is more than the reference's rate explains.

    New samples fall outside the reference's observed range by chance (at
    about 2 / (n + 1) for a reference of n rows) and a feature missing in
    training is missing in serving too: both are judged by the comparison's
    rate test at the warning level.
    """
    try:
        feature = report[name]
    except KeyError:  # "<input>", "<columns>": not a feature
        return True
    if levels.false_alarm is None:
        return True
    for metric in feature.metrics:
        if metric.metric == _JUDGED[problem]:
            return metric.p_value is not None and metric.p_value <= levels.false_alarm[0]
    return True


def spend(k: int) -> float:
    """The share of a lifetime false-alarm budget the k-th check may spend.

    1 / (2 k (1 + ln k)^2): the first check spends half, and the shares of
    all checks sum to at most 1 (the terms after the first are bounded by
    the integral of 1 / (x (1 + ln x)^2) from 1, which is 1).

    >>> spend(1), round(spend(10_000), 10)
    (0.5, 4.796e-07)
    """
    return 1.0 / (2 * k * (1 + math.log(k)) ** 2)


def row_range(feature: NumericProfile, alpha: float) -> tuple[float, float]:
    """The range beyond which a new value is rarer than *alpha* on each side.

    A reference of n rows has seen values up to its maximum; a new value
    exceeds that maximum with probability about 1 / (n + 1), which refuses
    legitimate rows of small references. Past its outer quantile edge, the
    tail is taken exponential: its k values beyond the edge put the
    maximum at about the edge + s H_k (H_k the k-th harmonic number), which
    estimates the scale s, and the tail's share k / n falls to *alpha*
    at s ln(k / (n alpha)) beyond the edge. The range is never narrower
    than the observed one. For tails no heavier than exponential (normal,
    uniform, exponential, most measurements) this refuses at most about
    *alpha* of legitimate values per side; heavier tails are refused more.
    """
    low, high = feature.min, feature.max
    edges = feature.edges
    if not feature.n or not len(edges):
        return low, high
    n = feature.n
    for side in (0, 1):
        # The outer five edges (a quarter of 20 bins): the largest scale; a heaped edge at
        # the extreme has none.
        reach = 0.0
        for j in range(min(_TAIL_EDGES, len(edges))):
            if side:
                edge = float(edges[-1 - j])
                k = int(feature.bins[len(edges) - j :].sum())
                span = high - edge
            else:
                edge = float(edges[j])
                k = int(feature.bins[: j + 1].sum())
                span = edge - low
            share = k / n
            if k < 1 or not span > 0 or share <= alpha:
                continue
            # Beyond the observed extreme: the tail's share there is about 1 / (n + 1).
            scale = span / _harmonic(k)
            reach = max(reach, scale * math.log(1 / ((n + 1) * alpha)))
        if side:
            high = min(high + reach, _FLOAT_MAX)
        else:
            low = max(low - reach, -_FLOAT_MAX)
    return low, high


_TAIL_EDGES: Final = 5


_FLOAT_MAX: Final = float(np.finfo(np.float64).max)


def _harmonic(k: int) -> float:
    """1 + 1/2 + ... + 1/k (Euler's approximation past a thousand)."""
    if k <= 1_000:
        return math.fsum(1.0 / i for i in range(1, k + 1))
    return math.log(k) + 0.5772156649015329 + 1 / (2 * k)


def _problem(
    spec: FeatureSpec,
    value: Any,
    bounds: tuple[float, float] | None = None,
    may_miss: bool = False,
) -> str | None:
    """What is wrong with one value, if anything, as a profile would count it."""
    if value is None:
        return None if may_miss else "missing"
    if spec.kind == "categorical":
        return None if isinstance(value, str) else "type"
    if not isinstance(value, REAL):  # strings, complex numbers, other objects
        return "type"
    number = to_float(value)  # an int beyond float range is infinite, as in profiles
    if math.isnan(number) and may_miss:
        return None
    if not math.isfinite(number):
        return "nan_inf"
    if bounds is not None and not bounds[0] <= number <= bounds[1]:
        return "out_of_range"
    return None


def _take(column: Any, keep: Any) -> Any:
    if isinstance(column, np.ndarray):
        return column[keep]
    if isinstance(column, list):
        return [column[i] for i in keep.tolist()]
    return np.asarray(column, dtype=object)[keep]
