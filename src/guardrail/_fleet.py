"""A fleet's serving profile through OpenTelemetry metrics, read back from Prometheus.

Each replica counts its serving inputs on the reference's layout and exports
the counts as OpenTelemetry metrics; any OpenTelemetry or Prometheus backend
sums them over the fleet; :func:`fleet_profile` reads the sum back from
Prometheus's HTTP API as a :class:`Profile`, which compares like any other.

The instruments (each labelled ``model``, ``model_version``, ``schema`` (the
first 16 hex digits of the reference's schema fingerprint) and ``feature``):

- ``guardrail.fleet.values.<digest>``: an OpenTelemetry histogram per
  numeric feature's bin edges, whose explicit bucket boundaries (the
  ``explicit_bucket_boundaries_advisory``) are the reference's inner edges,
  so its buckets are the reference's bins (``<digest>``: 12 hex digits of
  the boundaries; features with the same edges share the instrument). Two
  conventions differ, and the exporter bridges both: OpenTelemetry buckets
  include their upper boundary where guardrail's bins include their lower
  edge, and the SDK drops negative measurements. So a value is recorded as
  its bin's bucket boundary (the top bin as the next float above the last
  boundary), and when the lowest edge is negative every boundary is the edge
  minus the lowest edge. Recording happens when the SDK collects (a scrape),
  from the counts since the last collection (for at most half the
  collection's time limit; the next collection records the rest): the
  predict path pays no OpenTelemetry call. The histogram's ``_sum`` is of
  the recorded boundaries; the values' sum is ``guardrail.fleet.sum`` (an
  up-down counter).
- or, with ``bins="counters"``, ``guardrail.fleet.bins``: an observable
  counter per numeric feature and ``bin`` (the bin's index, ``0`` to
  ``len(edges)``), whose collection costs the same however many values were
  served.
- ``guardrail.fleet.outcomes``: a counter per feature and ``outcome``
  (``missing``, ``invalid``, ``nan``, ``posinf``, ``neginf``, ``below``,
  ``above`` for numeric features; ``missing``, ``invalid``, ``other`` for
  categorical ones).
- ``guardrail.fleet.categories``: a counter per known category.
- ``guardrail.fleet.tail_low`` / ``tail_high`` (up-down counters: the sums
  of the values in the outer bins) and ``guardrail.fleet.squares`` (the sum
  of squared deviations from the reference mean, for the variance).
- ``guardrail.fleet.min`` / ``max``: gauges of each replica's extremes.

All but the histograms are observable: they report the replica's cumulative
counts when the SDK collects. The series per model are bounded by the
reference's layout: per numeric feature ``len(edges) + 3`` histogram series
in Prometheus (``len(edges) + 1`` buckets, ``_count``, ``_sum``), 7 outcome
series, 6 float series; per categorical feature one series per known
category plus 3 outcome series; times the replicas (the ``instance`` label
the scrape adds).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import threading
import time
import urllib.parse
import urllib.request
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final

import numpy as np

from ._call import Source
from ._durations import parse_duration
from ._errors import ConfigError, MetricsQueryError
from ._forks import fork_safe_lock
from ._model import ModelRef
from ._profile import CategoricalProfile, NumericProfile, Profile

if TYPE_CHECKING:
    from ._call import Call

__all__ = ["FleetExporter", "fleet_profile"]

_SCHEMA_DIGITS: Final = 16
_NUMERIC_OUTCOMES: Final[tuple[str, ...]] = (
    "missing",
    "invalid",
    "nan",
    "posinf",
    "neginf",
    "below",
    "above",
)
_CATEGORICAL_OUTCOMES: Final[tuple[str, ...]] = ("missing", "invalid", "other")


def _labels(reference: Profile, model: ModelRef) -> dict[str, str]:
    return {
        "model": model.name,
        "model_version": model.version,
        "schema": reference.schema.fingerprint[:_SCHEMA_DIGITS],
    }


class FleetExporter:
    """Counts serving inputs on a reference's layout into OpenTelemetry metrics.

    Use it as a guard's input monitor (``inputs=``), or call :meth:`record`
    with columns. A call only buffers its columns (folded into a profile
    builder every ``fold_rows`` rows). When the SDK collects (a scrape), the
    numeric features' new counts are recorded into histograms whose buckets
    are the reference's bins, and observable instruments report the other
    cumulative counts, so the predict path pays no OpenTelemetry call. Summed
    across replicas by the backend, they are the fleet's serving profile;
    read it back with :func:`fleet_profile`.

    Args:
        reference: The training-time profile whose bins and categories the
            metrics take.
        model: The model served (its name and version label every series).
        meter_provider: The OpenTelemetry ``MeterProvider`` to export through
            (default: the global one).
        fold_rows: Buffered rows that trigger folding into the builder.
        name: The monitor's name in events.
        bins: ``"histogram"`` (OpenTelemetry histograms whose buckets are the
            reference's bins; one ``record`` per finite numeric value when the
            SDK collects) or ``"counters"`` (``guardrail.fleet.bins``, an
            observable counter per bin with a ``bin`` label: a collection
            costs the same however many values were served). A fleet may
            mix both; :func:`fleet_profile` reads and adds both.
    """

    kind: ClassVar[str] = "fleet"

    def __init__(
        self,
        reference: Profile,
        *,
        model: ModelRef,
        meter_provider: Any = None,
        fold_rows: int = 4096,
        name: str = "fleet",
        bins: str = "histogram",
    ) -> None:
        if not isinstance(reference, Profile):
            raise ConfigError(f"reference must be a Profile, got {type(reference).__name__}")
        if not isinstance(model, ModelRef):
            raise ConfigError("model must be a ModelRef")
        if bins not in ("histogram", "counters"):
            raise ConfigError(f'bins must be "histogram" or "counters", got {bins!r}')
        if type(fold_rows) is not int or fold_rows < 1:
            raise ConfigError(f"fold_rows must be an integer >= 1, got {fold_rows!r}")
        if meter_provider is None:
            from opentelemetry import metrics

            meter_provider = metrics.get_meter_provider()
        self.reference = reference
        self.model = model
        self.name = name
        self.fold_rows = fold_rows
        self.source = Source("fleet", name, None, model)
        #: Calls whose inputs could not be read (counted, never raised).
        self.errors = 0
        self._lock = fork_safe_lock(self)
        self._builder = reference.builder()
        self._pending: list[Mapping[str, Any]] = []
        self._pending_rows = 0
        self._snapshot: Profile | None = None
        self._centre = {f.name: f.mean for f in reference if isinstance(f, NumericProfile)}
        base = _labels(reference, model)
        self._attributes = {f.name: {**base, "feature": f.name} for f in reference}
        meter = meter_provider.get_meter("guardrail.fleet")
        #: Per numeric feature: its histogram, the value recorded for each bin,
        #: and the bin counts recorded so far.
        self._histograms: dict[str, tuple[Any, list[float], np.ndarray]] = {}
        self._recording = fork_safe_lock(self, "_recording")
        for f in reference:
            if bins == "histogram" and isinstance(f, NumericProfile):
                boundaries = _boundaries(f.edges)
                try:
                    histogram = meter.create_histogram(
                        _histogram_name(boundaries),
                        description="Finite values of a numeric feature in the reference's bins",
                        explicit_bucket_boundaries_advisory=list(boundaries),
                    )
                except TypeError as e:  # an API before the advisory (1.30)
                    raise ConfigError(
                        "FleetExporter needs opentelemetry-api and -sdk 1.30 or later "
                        "(explicit bucket boundaries)"
                    ) from e
                self._histograms[f.name] = (
                    histogram,
                    _bin_values(boundaries),
                    np.zeros(len(boundaries) + 1, np.int64),
                )
        self.bins = bins
        _share(meter, self)

    # -- counting --------------------------------------------------------

    def observe_call(self, call: Call) -> None:
        """The guard's input monitor: record the call's inputs (a failure is only counted)."""
        try:
            self.record(call.inputs.columns())
        except Exception:  # noqa: BLE001 - the predict path is never changed by monitoring
            self.errors += 1

    def record(self, columns: Mapping[str, Any]) -> None:
        """Count a batch of columns (feature name to values of one length)."""
        if not isinstance(columns, Mapping):
            raise ConfigError(f"columns must be a mapping, got {type(columns).__name__}")
        rows = max((len(v) for v in columns.values()), default=0)
        with self._lock:
            self._pending.append(columns)
            self._pending_rows += rows
            if self._pending_rows >= self.fold_rows:
                self._fold()

    def profile(self) -> Profile:
        """Everything this replica counted, as a profile on the reference's layout."""
        with self._lock:
            self._fold()
            return self._builder.build()

    def _fold(self) -> None:
        """Add the buffered columns to the builder in one pass per feature (lock held)."""
        pending, self._pending, self._pending_rows = self._pending, [], 0
        if not pending:
            return
        names = {name for columns in pending for name in columns}
        merged: dict[str, Any] = {}
        for name in names:
            parts = [_as_column(columns.get(name), _rows(columns)) for columns in pending]
            if all(isinstance(p, np.ndarray) and p.dtype.kind in "iufb" for p in parts):
                merged[name] = np.concatenate(parts)
            else:
                merged[name] = [
                    v for p in parts for v in (p.tolist() if isinstance(p, np.ndarray) else p)
                ]
        self._builder.add_columns(merged)

    # -- observing (called by the SDK when it collects) --------------------

    def _collect(self, options: Any, record: bool = False) -> Profile:
        profile = self.profile()
        if record:  # one callback a collection: at most half the collection's time limit,
            # so a scrape after a busy spell never times out; the next one records the rest
            budget = float(getattr(options, "timeout_millis", 10_000.0)) / 2_000.0
            self._record_new(profile, time.monotonic() + budget)
        return profile

    def _record_new(self, profile: Profile, deadline: float) -> None:
        """Record into the histograms the counts not recorded yet, until *deadline*."""
        with self._recording:
            for f in profile:
                if not isinstance(f, NumericProfile) or f.name not in self._histograms:
                    continue
                histogram, values, recorded = self._histograms[f.name]
                attributes = self._attributes[f.name]
                record = histogram.record
                for i in np.flatnonzero(f.bins > recorded).tolist():
                    value, todo = values[i], int(f.bins[i] - recorded[i])
                    while todo:
                        step = min(todo, 1024)
                        for _ in range(step):
                            record(value, attributes)
                        recorded[i] += step
                        todo -= step
                        if time.monotonic() > deadline:
                            return

    def _observe_bins(self, options: Any) -> Iterator[Any]:
        from opentelemetry.metrics import Observation

        if self.bins != "counters":
            return
        for f in self._collect(options):
            if isinstance(f, NumericProfile):
                attributes = self._attributes[f.name]
                for i, count in enumerate(f.bins.tolist()):
                    yield Observation(count, {**attributes, "bin": str(i)})

    def _observe_outcomes(self, options: Any) -> Iterator[Any]:
        from opentelemetry.metrics import Observation

        for f in self._collect(options, record=True):
            outcomes = _NUMERIC_OUTCOMES if isinstance(f, NumericProfile) else _CATEGORICAL_OUTCOMES
            attributes = self._attributes[f.name]
            for outcome in outcomes:
                yield Observation(getattr(f, outcome), {**attributes, "outcome": outcome})

    def _observe_categories(self, options: Any) -> Iterator[Any]:
        from opentelemetry.metrics import Observation

        for f in self._collect(options):
            if isinstance(f, CategoricalProfile):
                attributes = self._attributes[f.name]
                for category, count in zip(f.categories, f.counts.tolist(), strict=True):
                    yield Observation(count, {**attributes, "category": category})

    def _observe_floats(self, what: str, options: Any) -> Iterator[Any]:
        from opentelemetry.metrics import Observation

        for f in self._collect(options):
            if not isinstance(f, NumericProfile):
                continue
            if what in ("min", "max"):
                if not f.n:
                    continue
                value = f.min if what == "min" else f.max
            elif what == "sum":
                value = f.mean * f.n
            elif what == "squares":
                value = f.m2 + f.n * (f.mean - self._centre[f.name]) ** 2 if f.n else 0.0
            else:
                value = getattr(f, what)
            yield Observation(value, self._attributes[f.name])


class _Shared:
    """The exporters on one meter, and the observable instruments they share.

    The SDK keeps one instrument per name and meter, with the callbacks of
    the first registration only, so each instrument's callback observes every
    live exporter on the meter.
    """

    def __init__(self) -> None:
        self.exporters: list[weakref.ref[FleetExporter]] = []
        self.made: set[str] = set()

    def live(self) -> list[FleetExporter]:
        with _SHARED_LOCK:
            self.exporters[:] = [r for r in self.exporters if r() is not None]
            return [e for r in self.exporters if (e := r()) is not None]

    def each(
        self, observe: Callable[[FleetExporter, Any], Iterator[Any]]
    ) -> Callable[[Any], Iterator[Any]]:
        def callback(options: Any) -> Iterator[Any]:
            for exporter in self.live():
                yield from observe(exporter, options)

        return callback


_SHARED: weakref.WeakKeyDictionary[Any, _Shared] = weakref.WeakKeyDictionary()
_SHARED_LOCK: Final = threading.Lock()


def _floats(what: str) -> Callable[[FleetExporter, Any], Iterator[Any]]:
    def observe(exporter: FleetExporter, options: Any) -> Iterator[Any]:
        return exporter._observe_floats(what, options)

    return observe


def _share(meter: Any, exporter: FleetExporter) -> None:
    """Add *exporter* to its meter's exporters; make the instruments the meter lacks."""
    with _SHARED_LOCK:
        try:
            shared = _SHARED.setdefault(meter, _Shared())
        except TypeError:  # a meter that cannot be weakly referenced: instruments of its own
            shared = _Shared()
        shared.exporters.append(weakref.ref(exporter))
        wanted = ["outcomes", "categories", "squares", "sum", "tail_low", "tail_high", "min", "max"]
        if exporter.bins == "counters":
            wanted.append("bins")
        new = [what for what in wanted if what not in shared.made]
        shared.made.update(new)
    for what in new:
        name = f"guardrail.fleet.{what}"
        if what == "bins":
            meter.create_observable_counter(
                name,
                [shared.each(FleetExporter._observe_bins)],
                description="Finite values of a numeric feature per reference bin",
            )
        elif what == "outcomes":
            meter.create_observable_counter(
                name,
                [shared.each(FleetExporter._observe_outcomes)],
                description="Values by what they were",
            )
        elif what == "categories":
            meter.create_observable_counter(
                name,
                [shared.each(FleetExporter._observe_categories)],
                description="Values of each known category",
            )
        else:
            callback = shared.each(_floats(what))
            if what == "squares":
                meter.create_observable_counter(name, [callback])
            elif what in ("min", "max"):
                meter.create_observable_gauge(name, [callback])
            else:
                meter.create_observable_up_down_counter(name, [callback])


def _rows(columns: Mapping[str, Any]) -> int:
    return max((len(v) for v in columns.values()), default=0)


def _as_column(values: Any, rows: int) -> Any:
    """A column as a numpy array or a list; an absent column as *rows* missing values."""
    if values is None:
        return [None] * rows
    if isinstance(values, (np.ndarray, list)):
        return values
    if hasattr(values, "to_pylist"):  # pyarrow
        return values.to_pylist()
    if hasattr(values, "to_numpy"):  # pandas
        return values.to_numpy()
    return list(values)


def _boundaries(edges: Any) -> tuple[float, ...]:
    """A numeric feature's bucket boundaries: its inner edges, shifted to start at 0 if negative.

    The SDK drops negative measurements, so the values recorded (the
    boundaries themselves) must be non-negative; a shift that would merge two
    edges in floating point falls back to the bin indices.
    """
    edges = [float(e) for e in edges]
    low = min(edges[0], 0.0) if edges else 0.0
    shifted = [e - low for e in edges]
    if all(a < b for a, b in itertools.pairwise(shifted)):
        return tuple(shifted)
    return tuple(float(i) for i in range(len(edges)))


def _bin_values(boundaries: tuple[float, ...]) -> list[float]:
    """The value recorded for each bin: bin ``i`` is the bucket ``(b[i-1], b[i]]``."""
    top = math.nextafter(boundaries[-1], math.inf) if boundaries else 0.0
    return [*boundaries, top]


def _histogram_name(boundaries: tuple[float, ...]) -> str:
    digest = hashlib.sha256(json.dumps(list(boundaries)).encode()).hexdigest()
    return f"guardrail.fleet.values.{digest[:12]}"


def fleet_profile(
    reference: Profile,
    prometheus: str,
    *,
    model: ModelRef | str,
    since: str | float | None = None,
    at: float | None = None,
    timeout: float = 10.0,
) -> Profile:
    """The fleet's serving profile, summed by Prometheus, on the reference's layout.

    Args:
        reference: The reference whose layout the replicas exported on (its
            schema fingerprint selects the series).
        prometheus: The server's base URL, e.g. ``http://127.0.0.1:9090``.
        model: The model (a :class:`ModelRef`, or its name for every version;
            the numeric bins then come from the versions whose references
            had the same edges, as their histograms are named by the edges).
        since: A duration (``"1h"``, seconds): only what was counted in that
            range before *at* (``increase`` for the counts, rounded; a
            difference for the float sums). ``None``: everything the replicas
            counted since they started, exactly.
        at: The evaluation time (Unix seconds); default now.
        timeout: Seconds to wait for each query.
    """
    name = model.name if isinstance(model, ModelRef) else model
    selector = {"model": name, "schema": reference.schema.fingerprint[:_SCHEMA_DIGITS]}
    if isinstance(model, ModelRef):
        selector["model_version"] = model.version
    match = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(selector.items()))
    window = None if since is None else parse_duration(since)
    when = time.time() if at is None else float(at)

    def query(metric: str, by: str, counter: bool = True) -> dict[tuple[str, ...], float]:
        series = f"{metric}{{{match}}}"
        if window is None:
            expression = f"sum by ({by}) ({series})"
        elif counter:
            expression = f"sum by ({by}) (increase({series}[{int(window)}s]))"
        else:
            expression = (
                f"sum by ({by}) ({series}) - sum by ({by}) ({series} offset {int(window)}s)"
            )
        return _query(prometheus, expression, when, by.split(", "), timeout)

    buckets: dict[str, np.ndarray] = {}
    for boundaries, names in _by_boundaries(reference).items():
        metric = _histogram_name(boundaries).replace(".", "_") + "_bucket"
        cumulative = query(metric, "feature, le")
        position = {b: i for i, b in enumerate(boundaries)}
        for name in names:
            counts = np.zeros(len(boundaries) + 1, np.int64)
            for (feature, le), value in cumulative.items():
                i = len(boundaries) if le == "+Inf" else position.get(_float(le), -1)
                if feature == name and i >= 0:
                    counts[i] = _count(value)
            # De-cumulate; increase() extrapolates each bucket alone, so clamp at zero.
            buckets[name] = np.maximum(np.diff(counts, prepend=0), 0)
    counters = query("guardrail_fleet_bins_total", "feature, bin")  # replicas with bins="counters"
    for (feature, bin_), value in counters.items():
        if feature in buckets and bin_.isdigit() and int(bin_) < len(buckets[feature]):
            buckets[feature][int(bin_)] += _count(value)
    sums = query("guardrail_fleet_sum", "feature", counter=False)
    outcomes = query("guardrail_fleet_outcomes_total", "feature, outcome")
    categories = query("guardrail_fleet_categories_total", "feature, category")
    tail_low = query("guardrail_fleet_tail_low", "feature", counter=False)
    tail_high = query("guardrail_fleet_tail_high", "feature", counter=False)
    squares = query("guardrail_fleet_squares_total", "feature")
    lows = _query(
        prometheus, f"min by (feature) (guardrail_fleet_min{{{match}}})", when, ["feature"], timeout
    )
    highs = _query(
        prometheus, f"max by (feature) (guardrail_fleet_max{{{match}}})", when, ["feature"], timeout
    )

    features: list[NumericProfile | CategoricalProfile] = []
    for ref in reference:
        out = {o: _count(outcomes.get((ref.name, o), 0.0)) for o in _NUMERIC_OUTCOMES}
        if isinstance(ref, NumericProfile):
            bins = buckets[ref.name]
            n = int(bins.sum())
            mean = sums.get((ref.name,), 0.0) / n if n else 0.0
            m2 = max(squares.get((ref.name,), 0.0) - n * (mean - ref.mean) ** 2, 0.0) if n else 0.0
            features.append(
                NumericProfile(
                    name=ref.name,
                    edges=ref.edges,
                    low=ref.min if ref.n else ref.low,
                    high=ref.max if ref.n else ref.high,
                    count=n
                    + sum(out[o] for o in ("missing", "invalid", "nan", "posinf", "neginf")),
                    missing=out["missing"],
                    nan=out["nan"],
                    posinf=out["posinf"],
                    neginf=out["neginf"],
                    invalid=out["invalid"],
                    n=n,
                    min=lows.get((ref.name,), math.nan) if n else math.nan,
                    max=highs.get((ref.name,), math.nan) if n else math.nan,
                    mean=mean,
                    m2=m2,
                    bins=bins,
                    below=out["below"],
                    above=out["above"],
                    tail_low=tail_low.get((ref.name,), 0.0),
                    tail_high=tail_high.get((ref.name,), 0.0),
                )
            )
        else:
            counts = np.array(
                [_count(categories.get((ref.name, c), 0.0)) for c in ref.categories], np.int64
            )
            other = _count(outcomes.get((ref.name, "other"), 0.0))
            features.append(
                CategoricalProfile(
                    name=ref.name,
                    categories=ref.categories,
                    heavy_k=ref.heavy_k,
                    count=int(counts.sum()) + other + out["missing"] + out["invalid"],
                    missing=out["missing"],
                    invalid=out["invalid"],
                    other=other,
                    counts=counts,
                    heavy={},
                )
            )
    return Profile(features)


def _by_boundaries(reference: Profile) -> dict[tuple[float, ...], list[str]]:
    """The numeric features' names, grouped by their histogram's boundaries."""
    out: dict[tuple[float, ...], list[str]] = {}
    for f in reference:
        if isinstance(f, NumericProfile):
            out.setdefault(_boundaries(f.edges), []).append(f.name)
    return out


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _count(value: float) -> int:
    return round(value)


def _query(
    base: str, expression: str, at: float, labels: list[str], timeout: float
) -> dict[tuple[str, ...], float]:
    """An instant query: each series' labels (in *labels*' order) to its value."""
    url = f"{base.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode(
        {"query": expression, "time": repr(at)}
    )
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = json.load(response)
    except (OSError, ValueError) as e:
        raise MetricsQueryError(f"Prometheus query failed: {e}") from e
    if not isinstance(data, Mapping) or data.get("status") != "success":
        raise MetricsQueryError(f"Prometheus answered with an error: {str(data)[:200]}")
    out: dict[tuple[str, ...], float] = {}
    for item in data["data"]["result"]:
        key = tuple(str(item["metric"].get(label, "")) for label in labels)
        value = float(item["value"][1])
        if math.isfinite(value):
            out[key] = value
    return out
