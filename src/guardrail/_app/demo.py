"""The built-in demo: a simulated fraud-scoring service with every guardrail on.

A small logistic model is trained with numpy on generated transactions, then
serves a stream of requests, one row per call, through one guard holding a
skew monitor, a dynamic threshold, a holdout, an action limit and an outcome
monitor. Partway through, the world changes: amounts arrive in another
currency (a shifted feature), a new country appears (a new category), the
device-score service fails for a while (a null spike), and a scripted attack
at one merchant pushes the model to block card after card. Labels arrive late
and are joined to their predictions. At the end: a table of what each
guardrail caught and when, and an HTML report.

Everything is seeded and runs on a simulated clock (half a second per
request), so two runs print the same table.
"""

from __future__ import annotations

import collections
import math
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, TextIO

import attrs
import numpy as np
from numpy.typing import NDArray

from .._drift import SkewReport, compare
from .._events import Event
from .._guard import guard
from .._holdout import Holdout
from .._limits import ActionLimit, MemoryStore
from .._mechanism_events import (
    InputsInvalid,
    PredictionBiasOutOfRange,
    SkewDetected,
    ThresholdChanged,
    UpstreamFailure,
)
from .._model import ModelRef, fingerprint_bytes
from .._outcomes import OutcomeMonitor, OutcomeReport
from .._profile import Profile
from .._scales import Probability
from .._skew import SkewMonitor
from .._thresholds import DynamicThreshold
from ..instrumentation import configure, get_config
from .progress import Progress
from .report import Report, ReportSeries, ReportTable

__all__ = ["MIN_REQUESTS", "DemoResult", "run", "simulate"]

#: The fewest requests a run serves (below, no injection has room to happen).
MIN_REQUESTS: Final = 100
#: What the report file is called in the directory it is written to.
REPORT_NAME: Final = "guardrail-demo-report.html"

COUNTRIES: Final = ("FR", "DE", "ES", "IT", "NL")
NEW_COUNTRY: Final = "BR"
MERCHANTS: Final = tuple(f"m-{i:02d}" for i in range(20))
ATTACKED: Final = "m-07"
SECONDS_PER_REQUEST: Final = 0.5
AMOUNT_FACTOR: Final = 4.0  # amounts arrive in a currency worth a quarter as much
LABEL_DELAY: Final = 0.04  # of the run: until a transaction's label (a chargeback) arrives

# When each injection starts and ends, as fractions of the run.
DRIFT_AT: Final = 0.30
NULLS: Final = (0.50, 0.58)
ATTACK: Final = (0.66, 0.74)


@attrs.frozen
class Caught:
    """One line of the summary: a guardrail, what it saw, and when."""

    guardrail: str
    injected: str
    caught_at: int | None
    what: str


@attrs.frozen
class DemoResult:
    """What a demo run produced: the summary lines, the report and some counts."""

    requests: int
    caught: tuple[Caught, ...]
    report: Report
    report_path: Path | None
    seconds: float
    acted: int
    vetoed_by_limit: int
    held_out: int
    skew: SkewReport
    outcomes: OutcomeReport


# -- the world -----------------------------------------------------------------------


def _draw(rng: np.random.Generator, n: int) -> dict[str, Any]:
    """n transactions as columns, before any injection."""
    return {
        "amount": np.round(rng.lognormal(mean=3.6, sigma=0.9, size=n), 2),
        "age": np.clip(rng.normal(41.0, 13.0, size=n), 18, 95).round(),
        "hour": rng.integers(0, 24, size=n).astype(np.float64),
        "device_score": rng.normal(0.0, 1.0, size=n).round(3),
        "country": rng.choice(COUNTRIES, size=n, p=(0.35, 0.25, 0.15, 0.15, 0.10)),
        "merchant": rng.choice(MERCHANTS, size=n),
    }


def _true_logit(columns: Mapping[str, Any]) -> NDArray[np.float64]:
    """The ground truth: how likely each transaction is to be fraud."""
    amount = np.log1p(np.asarray(columns["amount"], dtype=np.float64))
    night = (np.asarray(columns["hour"]) < 6).astype(np.float64)
    nl = (np.asarray(columns["country"]) == "NL").astype(np.float64)
    device = np.asarray(columns["device_score"], dtype=np.float64)
    logit: NDArray[np.float64] = -5.6 + 1.1 * (amount - 3.6) + 1.4 * device + 0.9 * night + nl
    return logit


def _features(
    amount: float, age: float, hour: float, device: float | None, country: str
) -> list[float]:
    return [
        1.0,
        math.log1p(amount) - 3.6,
        (age - 41.0) / 13.0,
        1.0 if hour < 6 else 0.0,
        0.0 if device is None else device,
        *(1.0 if country == c else 0.0 for c in COUNTRIES[1:]),
    ]


def _train(columns: Mapping[str, Any], labels: NDArray[np.float64]) -> NDArray[np.float64]:
    """Logistic regression by Newton's method (a few steps on a few features)."""
    x = np.array(
        [
            _features(a, g, h, d, c)
            for a, g, h, d, c in zip(
                columns["amount"].tolist(),
                columns["age"].tolist(),
                columns["hour"].tolist(),
                columns["device_score"].tolist(),
                columns["country"].tolist(),
                strict=True,
            )
        ]
    )
    w = np.zeros(x.shape[1])
    for _ in range(12):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        gradient = x.T @ (p - labels) + 1e-3 * w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + 1e-3 * np.eye(len(w))
        w -= np.linalg.solve(hessian, gradient)
    return w


def _serving(rng: np.random.Generator, n: int) -> tuple[list[dict[str, Any]], NDArray[np.bool_]]:
    """The request stream with the injections, and each request's true label."""
    columns = _draw(rng, n)
    index = np.arange(n)
    drifted = index >= int(DRIFT_AT * n)
    # Ground truth is decided on the transactions as they really are...
    truth = _true_logit(columns)
    attack = (index >= int(ATTACK[0] * n)) & (index < int(ATTACK[1] * n))
    scripted = attack & (rng.random(n) < 0.35)
    columns["merchant"] = np.where(scripted, ATTACKED, columns["merchant"])
    columns["amount"] = np.where(scripted, np.round(rng.uniform(600, 900, n), 2), columns["amount"])
    columns["device_score"] = np.where(
        scripted, rng.normal(2.2, 0.3, n).round(3), columns["device_score"]
    )
    # Scripted transactions are card testing by a fraud ring: half are fraud.
    truth = np.where(scripted, 0.0, truth)
    labels = rng.random(n) < 1.0 / (1.0 + np.exp(-truth))
    # ...then the world the model sees changes: amounts in another currency,
    # a new market, and the device-score service failing for a while.
    columns["amount"] = np.where(
        drifted & ~scripted, np.round(columns["amount"] * AMOUNT_FACTOR, 2), columns["amount"]
    )
    new_market = drifted & (rng.random(n) < 0.08)
    columns["country"] = np.where(new_market, NEW_COUNTRY, columns["country"])
    nulls = (index >= int(NULLS[0] * n)) & (index < int(NULLS[1] * n)) & (rng.random(n) < 0.45)
    device: list[float | None] = columns["device_score"].tolist()
    for i in np.flatnonzero(nulls).tolist():
        device[i] = None
    cards = rng.integers(0, 200_000, size=n)
    rows = [
        {
            "amount": a,
            "age": g,
            "hour": h,
            "device_score": d,
            "country": c,
            "merchant": m,
            "card": f"card-{k}",
        }
        for a, g, h, d, c, m, k in zip(
            columns["amount"].tolist(),
            columns["age"].tolist(),
            columns["hour"].tolist(),
            device,
            columns["country"].tolist(),
            columns["merchant"].tolist(),
            cards.tolist(),
            strict=True,
        )
    ]
    return rows, labels


class _Clock:
    """The simulated time: half a second per request."""

    def __init__(self) -> None:
        self.request = 0

    def seconds(self) -> float:
        return self.request * SECONDS_PER_REQUEST


class _Timeline:
    """A hook that keeps each event with the request it happened at."""

    wants_predictions = False

    def __init__(self, clock: _Clock) -> None:
        self.clock = clock
        self.events: list[tuple[int, Event]] = []

    def emit(self, event: Event) -> None:
        self.events.append((self.clock.request, event))

    def first(
        self, kind: type[Event], *, since: int = 0, **match: object
    ) -> tuple[int, Any] | None:
        """The first event of *kind* at or after request *since* (before it, nothing was
        injected yet: an event there is noise, not a catch)."""
        for at, event in self.events:
            if (
                at >= since
                and isinstance(event, kind)
                and all(getattr(event, k) == v for k, v in match.items())
            ):
                return at, event
        return None


# -- the run -------------------------------------------------------------------------


def simulate(
    *, requests: int = 40_000, seed: int = 7, progress: TextIO | None = None
) -> DemoResult:
    """Run the simulation and return what each guardrail caught (no printing)."""
    if requests < MIN_REQUESTS:
        raise ValueError(f"the demo needs at least {MIN_REQUESTS} requests, got {requests}")
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    train = _draw(rng, 20_000)
    train_labels = (rng.random(20_000) < 1.0 / (1.0 + np.exp(-_true_logit(train)))).astype(
        np.float64
    )
    weights = _train(train, train_labels)
    reference = Profile.from_columns(train)
    model = ModelRef(
        name="fraud",
        version="1.0.0",
        artifact_sha256=fingerprint_bytes(weights.tobytes()),
        training_data=f"generated:seed={seed}",
        feature_schema=reference.schema.fingerprint,
        consumers=("card-blocker",),
    )
    rows, labels = _serving(rng, requests)

    clock = _Clock()
    window = max(250, requests // 20)
    monitor = SkewMonitor(
        reference=reference,
        every=window,
        seconds=None,
        checks=("missing", "type", "nan_inf"),
        seed=seed,
        background=False,  # a simulation: each check lands at its request
    )
    threshold = DynamicThreshold(
        target_rate=0.03,
        initial=Probability(0.5),
        lower=Probability(0.05),
        upper=Probability(0.995),
        step=0.05,
        warmup=200,
        model=model,
        name="block",
    )
    holdout = Holdout(fraction=0.05, unit=lambda row: row["card"], salt=f"demo-{seed}")
    limit = ActionLimit(
        "block_card",
        # Room for the honest traffic (a 3% block rate over 20 merchants, for at most an
        # hour of simulated time) with a margin: only the attack should trip it.
        max_actions=max(
            4,
            requests // 1_300,
            math.ceil(2.5 * 0.03 * min(requests, 3_600 / SECONDS_PER_REQUEST) / len(MERCHANTS)),
        ),
        per="1h",
        key=lambda row: row["merchant"],
        store=MemoryStore(clock=clock.seconds),
    )
    outcomes = OutcomeMonitor(
        capacity=max(1_000, requests // 8),
        ttl="4h",
        slice=lambda row: row["country"],
        bias_bounds=(-0.02, 0.02),
        ece_bound=None,
        min_outcomes=max(200, requests // 40),
        clock=clock.seconds,
    )

    @guard(
        model=model,
        returns=Probability,
        name="fraud-demo",
        inputs=monitor,
        threshold=threshold,
        holdout=holdout,
        limits=[limit],
        outcomes=outcomes,
    )
    def predict(row: Mapping[str, Any]) -> float:
        x = _features(row["amount"], row["age"], row["hour"], row["device_score"], row["country"])
        z = float(np.dot(weights, x))
        return 1.0 / (1.0 + math.exp(-z))

    timeline = _Timeline(clock)
    saved = get_config()
    # The demo's inputs are its own synthetic data: its report may name them.
    configure(hooks=[timeline], redact=str)
    bar = Progress(requests, "serving", stream=progress, unit="requests")
    history: list[tuple[float, float]] = [(0, threshold.current().value)]
    pending: collections.deque[tuple[int, str, bool]] = collections.deque()
    acted = vetoed = held = 0
    delay = int(LABEL_DELAY * requests)
    vetoes: collections.Counter[str] = collections.Counter()
    first_veto: dict[str, int] = {}
    attack_vetoed_at: int | None = None
    attack_at = int(ATTACK[0] * requests)
    try:
        for i, row in enumerate(rows):
            clock.request = i
            decision = predict(row)
            pending.append((i + delay, decision.prediction.id, bool(labels[i])))
            while pending and pending[0][0] <= i:
                _, prediction_id, label = pending.popleft()
                outcomes.record_outcome(prediction_id, label)
            if decision.act:
                acted += 1
            held += decision.arm == "holdout"
            if "limit:block_card" in decision.reasons:
                vetoed += 1
                vetoes[row["merchant"]] += 1
                first_veto.setdefault(row["merchant"], i)
                if attack_vetoed_at is None and row["merchant"] == ATTACKED and i >= attack_at:
                    attack_vetoed_at = i
            if i % 100 == 0:
                history.append((i, threshold.current().value))
                bar.update(i, note=f"threshold {threshold.current().value:.3f}")
        monitor.check()
    finally:
        configure(hooks=saved.hooks)
        bar.update(requests)
        bar.close()
    history.append((requests, threshold.current().value))

    # The report compares the reference with everything served after the drift began;
    # the summary quotes the same figures.
    after = rows[int(DRIFT_AT * requests) :]
    names = reference.names
    serving = Profile.from_columns({n: [r[n] for r in after] for n in names}, like=reference)
    skew = compare(reference, serving)
    bias = outcomes.report()
    caught = _summary(timeline, requests, vetoes, attack_vetoed_at, history, held, skew, bias)
    report = Report.from_skew(
        skew,
        reference=reference,
        serving=serving,
        violations=monitor.violations(),
        title="guardrail demo: fraud scoring",
        summary=[
            ("requests", f"{requests:,}"),
            ("model", f"{model.name} {model.version}"),
            ("actions taken", f"{acted:,}"),
            ("vetoed by the limit", f"{vetoed:,}"),
            ("held out", f"{held:,}"),
        ],
        threshold_history=ReportSeries(
            "block threshold (probability)",
            [x for x, _ in history],
            [y for _, y in history],
            x_label="requests",
            y_label="threshold",
        ),
        limit_trips=ReportTable(
            "block_card trips",
            ["merchant", "first veto at request", "actions vetoed"],
            [[m, first_veto[m], n] for m, n in vetoes.most_common()],
            note=f"block_card allows {limit.max_actions} blocks per merchant per hour.",
        ),
        bias=ReportTable(
            "bias by country",
            ["slice", "mean prediction - mean label"],
            [["all", bias.bias], *sorted(bias.bias_by_slice.items())],
            note=f"{bias.outcomes:,} labelled predictions; {bias.pending:,} waiting for labels.",
        ),
        findings=ReportTable(
            "What each guardrail caught",
            ["guardrail", "injected", "caught at request", "what it saw"],
            [[c.guardrail, c.injected, c.caught_at or "-", c.what] for c in caught],
        ),
    )
    configure(redact=saved.redact)
    return DemoResult(
        requests=requests,
        caught=caught,
        report=report,
        report_path=None,
        seconds=time.perf_counter() - started,
        acted=int(acted),
        vetoed_by_limit=vetoed,
        held_out=int(held),
        skew=skew,
        outcomes=bias,
    )


def _drift_text(skew: SkewReport, name: str) -> str:
    """A feature's drift as the report's drift table shows it: its worst metric."""
    try:
        worst = skew[name].worst
    except KeyError:
        return f"{name}: not compared"
    return f"{name} drifted: {worst.metric} {worst.value:.2f} ({worst.severity})"


def _summary(
    timeline: _Timeline,
    requests: int,
    vetoes: collections.Counter[str],
    attack_vetoed_at: int | None,
    history: list[tuple[float, float]],
    held: int,
    skew: SkewReport,
    bias: OutcomeReport,
) -> tuple[Caught, ...]:
    """One line per guardrail: when it first saw the injection (never before the
    injection started), and what it saw in the report's own figures."""
    drift_at = int(DRIFT_AT * requests)
    nulls_at = int(NULLS[0] * requests)
    attack_at = int(ATTACK[0] * requests)
    out = []

    amount = timeline.first(SkewDetected, since=drift_at, feature="amount", severity="alert")
    out.append(
        Caught(
            "skew monitor",
            f"amounts x{AMOUNT_FACTOR:g} at {drift_at:,}",
            amount[0] if amount else None,
            _drift_text(skew, "amount") if amount else "nothing",
        )
    )
    country = timeline.first(SkewDetected, since=drift_at, feature="country", severity="alert")
    out.append(
        Caught(
            "skew monitor",
            f"new country {NEW_COUNTRY} at {drift_at:,}",
            country[0] if country else None,
            _drift_text(skew, "country") if country else "nothing",
        )
    )
    upstream = timeline.first(UpstreamFailure, since=nulls_at, feature="device_score")
    invalid = timeline.first(InputsInvalid, since=nulls_at, feature="device_score")
    nulls: tuple[int | None, str] = (None, "nothing")
    if upstream is not None:
        at, event = upstream
        nulls = (
            at,
            f"device_score {event.missing_rate:.0%} missing "
            f"(reference {event.reference_missing_rate:.0%})",
        )
    if invalid is not None and (nulls[0] is None or invalid[0] < nulls[0]):
        at, event = invalid
        nulls = (at, f"device_score {event.problem}: {event.count:,} inputs")
    out.append(Caught("skew + schema", f"device_score nulls at {nulls_at:,}", *nulls))
    out.append(
        Caught(
            "action limit",
            f"attack on {ATTACKED} at {attack_at:,}",
            attack_vetoed_at,
            f"{sum(vetoes.values()):,} blocks vetoed, {vetoes[ATTACKED]:,} at {ATTACKED}"
            if vetoes
            else "no block vetoed",
        )
    )
    moves = [e for _, e in timeline.events if isinstance(e, ThresholdChanged)]
    peak_at, peak = max(history, key=lambda p: p[1])
    out.append(
        Caught(
            "dynamic threshold",
            "score shifts (drift, attack)",
            int(peak_at) if moves else None,
            f"3% block rate held: {len(moves):,} versions, peak {peak:.3f}",
        )
    )
    out.append(
        Caught(
            "holdout",
            "-",
            None,
            f"{held:,} requests ({held / requests:.1%}) held out, propensities logged",
        )
    )
    alarm = timeline.first(PredictionBiasOutOfRange, since=drift_at)
    if alarm is None:
        what = "bias within bounds"
    else:
        where = alarm[1].slice
        value = bias.bias if where is None else bias.bias_by_slice.get(where, math.nan)
        what = f"prediction bias {value:+.3f} ({'all' if where is None else where}) at the end"
    out.append(
        Caught(
            "outcome monitor",
            f"labels {int(LABEL_DELAY * requests):,} requests late",
            alarm[0] if alarm else None,
            what,
        )
    )
    return tuple(out)


def _table(caught: tuple[Caught, ...]) -> str:
    header = ("guardrail", "injected", "caught at", "what it saw")
    rows = [
        (c.guardrail, c.injected, "-" if c.caught_at is None else f"{c.caught_at:,}", c.what)
        for c in caught
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(4)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(), line]
    out.extend("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows)
    return "\n".join(out)


def run(
    out: TextIO | None = None,
    *,
    requests: int = 40_000,
    report: str | Path | None = None,
    directory: str | Path | None = None,
    seed: int = 7,
    progress: TextIO | None = None,
) -> int:
    """Run the demo: print what each guardrail caught and write the HTML report.

    The report goes to *report* if given, else into *directory* (created if
    needed), else into a new temporary directory; never into the current one.
    """
    out = out if out is not None else sys.stdout
    if report is None:
        if directory is None:
            directory = tempfile.mkdtemp(prefix="guardrail-demo-")
        Path(directory).mkdir(parents=True, exist_ok=True)
        report = Path(directory) / REPORT_NAME
    print(
        f"guardrail demo: a fraud model serving {requests:,} requests through one guard\n"
        "(skew monitor, dynamic threshold, holdout, action limit, outcome monitor)\n",
        file=out,
    )
    result = simulate(requests=requests, seed=seed, progress=progress)
    print(_table(result.caught), file=out)
    print(
        f"\n{result.acted:,} cards blocked, {result.vetoed_by_limit:,} blocks vetoed by the "
        f"limit, {result.held_out:,} requests in the holdout arm; "
        f"{result.seconds:.1f} s",
        file=out,
    )
    path = result.report.write(report)
    print(f"report: {path.resolve()}", file=out)
    return 0
