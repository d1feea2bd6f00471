"""Comparing a serving profile with its reference: distances, evidence, a report.

A metric alarms only when two things hold: its distance is past an
effect-size floor (so a huge sample does not alarm on a difference nobody
cares about) and the evidence against "no drift" is strong enough for a
stated false-alarm probability (so a small sample does not alarm on noise:
PSI, Jensen-Shannon and Wasserstein read high on small samples by chance).
The evidence is a test of the actual counts: Pearson's chi-square on the
reference's bins (pooled to expected counts of at least 5) for the
distances, Welch's test of the means as well for Wasserstein (from 1,000
rows), an exact conditional binomial test for the rates (missing,
invalid, out of range, unseen), Holm-corrected across every test of the
comparison. Every default and its source is listed in ``docs/skew.md``.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from typing import Any, Final, Literal, TypeAlias

import attrs
import numpy as np

from ._errors import ConfigError, ProfileMismatchError
from ._profile import F64, CategoricalProfile, NumericProfile, Profile
from ._stats import binomial_sf, chi2_isf, chi2_sf, holm

__all__ = ["DriftThresholds", "FeatureDrift", "MetricResult", "SkewReport", "compare"]

Severity: TypeAlias = Literal["ok", "warn", "alert"]
Verdict: TypeAlias = Literal["ok", "warn", "alert", "insufficient"]
_RANK: Final[dict[str, int]] = {"ok": 0, "warn": 1, "alert": 2}
_EPS: Final = 1e-4  # floor for empty bins in PSI, as in Evidently and most PSI write-ups
_MIN_EXPECTED: Final = 5.0  # Cochran's rule for the chi-square approximation


def _limits(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        or not all(math.isfinite(v) and v >= 0 for v in value)
        or value[0] > value[1]
    ):
        raise ConfigError(
            f"DriftThresholds.{attribute.name} must be None or (warn, alert) with "
            f"0 <= warn <= alert, got {value!r}"
        )


def _probabilities(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        or not all(0 < v < 1 for v in value)
        or value[1] > value[0]
    ):
        raise ConfigError(
            f"DriftThresholds.{attribute.name} must be None or (warn, alert) probabilities "
            f"with 0 < alert <= warn < 1, got {value!r}"
        )


@attrs.frozen
class DriftThresholds:
    """(warn, alert) levels per metric; ``None`` reports a metric without deciding.

    The defaults and their sources (see ``docs/skew.md``): PSI 0.1 / 0.25
    (the credit-scoring rule of thumb, Siddiqi 2006); Jensen-Shannon distance
    and normalized Wasserstein 0.1 (Evidently's defaults for large samples),
    alert at 0.2; L-infinity 0.1 / 0.2 (TFDV's skew comparator measure; TFDV
    leaves the threshold to the user); missing-rate increase 0.05 / 0.2;
    wrong-type or infinite rate increase 0.01 / 0.05; out-of-range and unseen
    shares 0.05 / 0.2; a pile-up (the share of values at one point, past the
    reference's share there: clipping, a stuck extreme, a new point mass)
    0.02 / 0.1. The KS statistic is reported, not decided on.

    These levels are effect-size floors. ``false_alarm`` is the (warn, alert)
    false-alarm probability of a whole comparison when nothing drifted:
    at most 1 % of no-drift comparisons warn and 0.1 % alert, at any sample
    size (Holm's correction spreads it over every feature and test).
    ``None`` decides on the floors alone, which alarms on the noise of
    small samples.

    >>> DriftThresholds(psi=(0.2, 0.4)).psi
    (0.2, 0.4)
    >>> DriftThresholds().false_alarm
    (0.01, 0.001)
    """

    psi: tuple[float, float] | None = attrs.field(default=(0.1, 0.25), validator=_limits)
    js: tuple[float, float] | None = attrs.field(default=(0.1, 0.2), validator=_limits)
    wasserstein: tuple[float, float] | None = attrs.field(default=(0.1, 0.2), validator=_limits)
    ks: tuple[float, float] | None = attrs.field(default=None, validator=_limits)
    linf: tuple[float, float] | None = attrs.field(default=(0.1, 0.2), validator=_limits)
    missing_rate_change: tuple[float, float] | None = attrs.field(
        default=(0.05, 0.2), validator=_limits
    )
    invalid_rate_change: tuple[float, float] | None = attrs.field(
        default=(0.01, 0.05), validator=_limits
    )
    out_of_range: tuple[float, float] | None = attrs.field(default=(0.05, 0.2), validator=_limits)
    unseen_share: tuple[float, float] | None = attrs.field(default=(0.05, 0.2), validator=_limits)
    pile_up: tuple[float, float] | None = attrs.field(default=(0.02, 0.1), validator=_limits)
    false_alarm: tuple[float, float] | None = attrs.field(
        default=(0.01, 0.001), validator=_probabilities
    )


@attrs.frozen
class MetricResult:
    """One metric of one feature: its value (the effect size), the limits, the evidence.

    ``p_value`` is the Holm-adjusted probability of a value at least this far
    from the reference if nothing drifted (None when the metric is not
    tested); the verdict needs both the effect past its limit and the
    p-value under the level's false-alarm probability.
    """

    metric: str
    value: float
    warn: float | None
    alert: float | None
    severity: Severity
    p_value: float | None = None
    #: Where the metric looked, when that is a place: a pile-up's ``"max"``,
    #: ``"min"`` or ``"inside"`` (at the serving side's maximum, minimum or
    #: most frequent value).
    where: str | None = None

    @property
    def ratio(self) -> float:
        """value / warn level: how far past (or short of) the first threshold."""
        if self.warn is None or math.isnan(self.value):
            return 0.0
        return self.value / self.warn if self.warn > 0 else math.inf * (self.value > 0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes null)."""
        return {
            "metric": self.metric,
            "value": None if math.isnan(self.value) else self.value,
            "warn": self.warn,
            "alert": self.alert,
            "severity": self.severity,
            "p_value": self.p_value,
            "where": self.where,
        }


@attrs.frozen
class FeatureDrift:
    """Every metric of one feature, and the worst verdict among them.

    ``rows_needed`` is 0 when the comparison had enough rows to see a
    difference at the warning floor; otherwise the serving rows it would
    need (-1: no number would do, the reference is too small), and a
    feature that did not alarm has the verdict ``"insufficient"``.
    """

    name: str
    kind: str
    severity: Severity
    metrics: tuple[MetricResult, ...]
    serving_rows: int
    rows_needed: int = 0

    @property
    def verdict(self) -> Verdict:
        """The severity, or ``"insufficient"`` when too few rows could not show drift."""
        if self.severity == "ok" and self.rows_needed:
            return "insufficient"
        return self.severity

    def __getitem__(self, metric: str) -> float:
        for result in self.metrics:
            if result.metric == metric:
                return result.value
        raise KeyError(metric)

    @property
    def worst(self) -> MetricResult:
        """The metric that decided the severity (the one furthest past its limit)."""
        return max(self.metrics, key=lambda r: (_RANK[r.severity], r.ratio))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "name": self.name,
            "kind": self.kind,
            "severity": self.severity,
            "serving_rows": self.serving_rows,
            "verdict": self.verdict,
            "rows_needed": self.rows_needed,
            "metrics": [m.to_dict() for m in self.metrics],
        }


@attrs.frozen
class SkewReport:
    """The comparison of a serving profile with its reference.

    ``drifted`` names the features past a threshold, the most severe first;
    ``underutilized`` the reference's features that carry little information.
    """

    features: tuple[FeatureDrift, ...]
    underutilized: tuple[tuple[str, str], ...]
    reference_rows: int
    serving_rows: int
    schema_fingerprint: str
    #: What the monitor that made the report wants known about it (plain sentences).
    notes: tuple[str, ...] = ()

    def __getitem__(self, name: str) -> FeatureDrift:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)

    @property
    def drifted(self) -> tuple[FeatureDrift, ...]:
        """Features with a warning or an alert, the most severe first."""
        flagged = [f for f in self.features if f.severity != "ok"]
        flagged.sort(key=lambda f: (-_RANK[f.severity], -f.worst.ratio, f.name))
        return tuple(flagged)

    @property
    def severity(self) -> Severity:
        """The worst severity over all features."""
        worst = max((_RANK[f.severity] for f in self.features), default=0)
        return ("ok", "warn", "alert")[worst]

    @property
    def insufficient(self) -> tuple[FeatureDrift, ...]:
        """Features that did not alarm but had too few rows to show drift."""
        return tuple(f for f in self.features if f.verdict == "insufficient")

    @property
    def verdict(self) -> Verdict:
        """The severity, or ``"insufficient"``: nothing alarmed, some feature had too few rows."""
        severity = self.severity
        if severity == "ok" and self.insufficient:
            return "insufficient"
        return severity

    @property
    def rows_needed(self) -> int:
        """The serving rows the comparison needs to decide every feature (0: enough; -1: never)."""
        needed = [f.rows_needed for f in self.insufficient]
        if -1 in needed:
            return -1
        return max(needed, default=0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "format": "guardrail.skew_report",
            "version": 1,
            "severity": self.severity,
            "verdict": self.verdict,
            "rows_needed": self.rows_needed,
            "reference_rows": self.reference_rows,
            "serving_rows": self.serving_rows,
            "schema_fingerprint": self.schema_fingerprint,
            "drifted": [f.name for f in self.drifted],
            "underutilized": [list(pair) for pair in self.underutilized],
            "features": [f.to_dict() for f in self.features],
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        """The report as JSON (sorted keys)."""
        return json.dumps(self.to_dict(), sort_keys=True, allow_nan=False)

    def to_text(self) -> str:
        """A plain-text rendering for a terminal or a ticket."""
        lines = [
            f"skew report: {self.severity} "
            f"({self.serving_rows} serving rows vs {self.reference_rows} reference rows)"
        ]
        drifted = self.drifted
        insufficient = self.insufficient
        if not drifted:
            lines.append("no feature drifted")
        for f in drifted:
            lines.append(f"{f.severity.upper():5} {f.name} ({f.kind})")
            for m in f.metrics:
                if m.severity != "ok":
                    evidence = "" if m.p_value is None else f", {_evidence(m.p_value)}"
                    place = "" if m.where is None else f" at the {_PLACES[m.where]}"
                    lines.append(
                        f"        {m.metric}{place} = {m.value:.4g} "
                        f"(warn {m.warn:g}, alert {m.alert:g}{evidence}) {m.severity}"
                    )
        if insufficient:
            needed = self.rows_needed
            lines.append(
                f"insufficient data for {len(insufficient)} feature(s): "
                + (
                    "the reference is too small to show drift"
                    if needed < 0
                    else f"about {needed} serving rows needed"
                )
                + f" ({', '.join(f.name for f in insufficient[:8])}"
                + (", ..." if len(insufficient) > 8 else "")
                + ")"
            )
        for name, reason in self.underutilized:
            lines.append(f"underutilized: {name} ({reason.replace('_', ' ')})")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


_PLACES: Final = {"max": "maximum", "min": "minimum", "inside": "most frequent value"}


def _evidence(p_value: float) -> str:
    return "p < 1e-12" if p_value < 1e-12 else f"p = {p_value:.2g}"


def _judge(
    metric: str,
    value: float,
    limits: tuple[float, float] | None,
    p_value: float | None,
    levels: tuple[float, float] | None,
    where: str | None = None,
) -> MetricResult:
    """The effect's severity, capped by the evidence's (when levels are given)."""
    if limits is None:
        return MetricResult(metric, value, None, None, "ok", p_value, where)
    warn, alert = limits
    effect = 2 if value >= alert else 1 if value >= warn else 0
    if levels is not None and effect:
        p = 1.0 if p_value is None else p_value
        evidence = 2 if p <= levels[1] else 1 if p <= levels[0] else 0
        effect = min(effect, evidence)
    severity: Severity = ("ok", "warn", "alert")[effect]
    return MetricResult(metric, value, warn, alert, severity, p_value, where)


def _pool(counts: F64, need: float, ordered: bool) -> list[F64]:
    """Group cells so that each holds at least *need* of the pooled counts.

    Ordered cells (numeric bins) merge with their neighbours; unordered ones
    (categories) keep the frequent cells and pool the rare ones.
    """
    totals = counts.sum(axis=0)
    cells: list[list[int]] = []
    if ordered:
        current: list[int] = []
        held = 0.0
        for j, total in enumerate(totals.tolist()):
            if total <= 0:
                continue
            current.append(j)
            held += total
            if held >= need:
                cells.append(current)
                current, held = [], 0.0
        if current:
            if cells:
                cells[-1].extend(current)
            else:
                cells.append(current)
    else:
        order = [j for j in np.argsort(-totals, kind="stable").tolist() if totals[j] > 0]
        big = [[j] for j in order if totals[j] >= need]
        rest = [j for j in order if totals[j] < need]
        if rest:
            if sum(totals[j] for j in rest) >= need or not big:
                big.append(rest)
            else:
                big[-1].extend(rest)
        cells = big
    group = np.zeros(counts.shape[1], dtype=np.int64)
    used = np.zeros(counts.shape[1], dtype=bool)
    for g, cell in enumerate(cells):
        group[cell] = g
        used[cell] = True
    return list(
        np.column_stack(
            [np.bincount(group[used], weights=row[used], minlength=len(cells)) for row in counts]
        )
    )


def _homogeneity(reference: F64, serving: F64, ordered: bool) -> tuple[float, int]:
    """Pearson's chi-square test that two count vectors share one distribution.

    Returns the p-value and the degrees of freedom used (cells are pooled to
    expected counts of at least 5 in the smaller sample, where the chi-square
    approximation holds).
    """
    n1, n2 = float(reference.sum()), float(serving.sum())
    if n1 <= 0 or n2 <= 0:
        return 1.0, 0
    total = n1 + n2
    need = _MIN_EXPECTED * total / min(n1, n2)
    cells = _pool(np.vstack([reference, serving]).astype(np.float64), need, ordered)
    if len(cells) < 2:
        return 1.0, 0
    table = np.array(cells)  # one row per cell: (reference, serving)
    pooled = table.sum(axis=1, keepdims=True)
    expected = pooled * np.array([[n1, n2]]) / total
    statistic = float(np.sum((table - expected) ** 2 / expected))
    df = len(cells) - 1
    return chi2_sf(statistic, df), df


def _rate_increase(
    tests: dict[str, float], test: str, ref_hits: int, ref_n: int, hits: int, n: int, cut: float
) -> None:
    """Add the p-value of a rate at least this much higher than the reference's.

    Conditional on the hits of both sides together, the serving side's
    share is binomial with the serving side's share of the rows (exact for
    rare events, conservative otherwise). A test that could not reach *cut*
    even with every hit on the serving side is left out of the family
    (Tarone 1990): it cannot alarm, so it need not dilute the others.
    """
    if n <= 0 or ref_n <= 0:
        return
    share = n / (ref_n + n)
    total = ref_hits + hits
    if total <= 0 or share**total > cut:
        return
    tests[test] = binomial_sf(hits, total, share) if hits > 0 else 1.0


def _distances(p: F64, q: F64) -> tuple[float, float, float]:
    """PSI, Jensen-Shannon distance (base 2) and L-infinity of two distributions."""
    pe = np.maximum(p, _EPS)
    qe = np.maximum(q, _EPS)
    psi = float(np.sum((qe - pe) * np.log(qe / pe)))
    m = (p + q) / 2
    # Only where a side has mass (0 log 0 = 0); there m > 0 too.
    has_p, has_q = p > 0, q > 0
    kl_p = float(np.dot(p[has_p], np.log2(p[has_p] / m[has_p])))
    kl_q = float(np.dot(q[has_q], np.log2(q[has_q] / m[has_q])))
    js = math.sqrt(max(0.0, (kl_p + kl_q) / 2))
    linf = float(np.max(np.abs(p - q))) if len(p) else 0.0
    return psi, js, linf


_MAX = sys.float_info.max


def _wasserstein(ref: NumericProfile, cur: NumericProfile, gaps: F64, unit: float = 1.0) -> float:
    """Wasserstein-1, the integral of |F_ref - F_cur|, from the binned profiles.

    Inside the reference's range the CDFs are taken linear within each bin
    (the trapezoid rule on the gaps at the edges). The open-ended outer bins
    use E[(e - X)+] and E[(X - e)+], exact from the bins' counts and sums
    when the CDFs do not cross there. Without edges (a constant reference)
    it is the difference of the means, a lower bound.

    Everything is measured in *unit* (a power of two: exact), so that
    profiles of values near the float limits do not overflow.
    """
    edges = ref.edges / unit
    if not len(edges):
        return abs(ref.mean / unit - cur.mean / unit)
    first, last = float(edges[0]), float(edges[-1])

    def lower(f: NumericProfile) -> float:
        return (int(f.bins[0]) / f.n) * first - (f.tail_low / unit) / f.n

    def upper(f: NumericProfile) -> float:
        return (f.tail_high / unit) / f.n - (int(f.bins[-1]) / f.n) * last

    inner = float(np.sum(np.diff(edges) * (gaps[:-1] + gaps[1:]) / 2))
    return abs(lower(ref) - lower(cur)) + inner + abs(upper(ref) - upper(cur))


_Pieces: TypeAlias = tuple[F64, F64, F64, "np.ndarray[Any, np.dtype[np.bool_]]"]


def _pieces(f: NumericProfile, unit: float) -> _Pieces:
    """A feature's bins as pieces of mass: (start, end, mass, is a point) per non-empty bin.

    A bin whose values are all one value is a point mass there; any other is
    spread evenly over the widest interval inside its [lowest, highest]
    value that keeps the bin's mean (its sum / count).
    """
    full = f.bins > 0
    count = f.bins[full].astype(np.float64)
    low = f.lows[full] / unit
    high = f.highs[full] / unit
    with np.errstate(over="ignore", invalid="ignore"):
        mean = np.clip((f.sums[full] / unit) / count, low, high)
    left = mean - low <= high - mean
    start = np.where(left, low, 2 * mean - high)
    end = np.where(left, 2 * mean - low, high)
    point = ~(end > start)
    end = np.where(point, start, end)
    return start.astype(np.float64), end.astype(np.float64), count / f.n, point


def _cdf(pieces: _Pieces, at: F64, *, left: bool) -> F64:
    """The CDF of *pieces* at each of *at* (its left limit when *left*)."""
    start, end, mass, point = pieces
    width = np.where(point, 1.0, end - start)
    share = np.clip((at[None, :] - start[:, None]) / width[:, None], 0.0, 1.0)
    hit = at[None, :] > start[:, None] if left else at[None, :] >= start[:, None]
    share = np.where(point[:, None], hit, share)
    cdf: F64 = mass @ share
    return cdf


def _wasserstein_spread(ref: NumericProfile, cur: NumericProfile, unit: float) -> float:
    """Wasserstein-1 from the bins' spreads: exact on point masses (heaped or tied values).

    Both CDFs are piecewise linear with jumps between the pieces' ends, so
    the integral of |F_ref - F_cur| is exact for those pieces: a bin of one
    value is that value's point mass, and others keep their mean.
    """
    a, b = _pieces(ref, unit), _pieces(cur, unit)
    at = np.unique(np.concatenate([a[0], a[1], b[0], b[1]]))
    if len(at) < 2:
        return 0.0
    after = _cdf(a, at[:-1], left=False) - _cdf(b, at[:-1], left=False)
    before = _cdf(a, at[1:], left=True) - _cdf(b, at[1:], left=True)
    width = np.diff(at)
    same = after * before >= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = (after**2 + before**2) / (2 * (np.abs(after) + np.abs(before)))
    area = np.where(same, (np.abs(after) + np.abs(before)) / 2, np.nan_to_num(crossing))
    return float(np.sum(width * area))


def _share_at(f: NumericProfile, value: float) -> int:
    """At least how many of the reference's values equal *value* (an upper bound)."""
    if f.n == 0 or value < f.min or value > f.max:
        return 0
    if value == f.max:
        return f.at_max
    if value == f.min:
        return f.at_min
    bound = f.heaviest
    if f.spread:
        j = int(np.searchsorted(f.edges, value, side="right"))
        low, high = f.lows[j], f.highs[j]
        if not (low <= value <= high):  # no value of the bin is this one
            return 0
        if value == low:
            return int(f.at_lows[j])
        if value == high:
            return int(f.at_highs[j])
        bound = min(bound, int(f.bins[j] - f.at_lows[j] - f.at_highs[j]))
    return bound


def _pile_up(
    ref: NumericProfile, cur: NumericProfile, tests: dict[str, float], cut: float
) -> tuple[float, str | None]:
    """The largest share of serving values at one point past the reference's share there.

    The points: the serving side's maximum, minimum and most frequent value
    (kept exactly or as a lower bound), against an upper bound of the
    reference's count at the same value (exact at its own extremes). The
    evidence is the conditional binomial test of the rates, Bonferroni over
    the points (and, for the most frequent value, over the serving rows it
    was chosen among); a test that cannot reach *cut* is left out.
    """
    if not (ref.points and cur.points and ref.n and cur.n):
        return math.nan, None
    candidates = [("max", cur.max, cur.at_max), ("min", cur.min, cur.at_min)]
    if cur.mode_count > 0 and cur.mode not in (cur.max, cur.min):
        candidates.append(("inside", cur.mode, cur.mode_count))
    share = cur.n / (ref.n + cur.n)
    m = len(candidates)
    results = []
    for where, value, hits in candidates:
        ref_hits = _share_at(ref, value)
        effect = max(0.0, hits / cur.n - ref_hits / ref.n)
        total = ref_hits + hits
        # The most frequent value was chosen for its count: Bonferroni over
        # every value the serving side could have made its mode.
        factor = m * (cur.n if where == "inside" else 1)
        p = min(1.0, factor * binomial_sf(hits, total, share)) if hits > 0 else 1.0
        results.append((p, -effect, where, factor * share**total))
    # The point with the strongest evidence (the largest effect among equals).
    p, effect, where, reachable = min(results)
    if reachable <= cut:
        tests["pile_up"] = p
    return -effect, where


# metric, value, the tests deciding it, where it looked
_Row: TypeAlias = tuple[str, float, tuple[str, ...], str | None]
_TESTS_PER_FEATURE: Final = 3  # Holm's family size assumed for rows_needed
_MIN_LOCATION_ROWS: Final = 1_000  # below this a mean's normal approximation is not trusted


def _location(ref: NumericProfile, cur: NumericProfile) -> float | None:
    """Welch's two-sided z-test that the means agree (None: too few rows or no spread).

    Bins cannot see a shift that keeps values in their bins (heaped or
    mostly constant features); the means, kept exactly, can.
    """
    if min(ref.n, cur.n) < _MIN_LOCATION_ROWS:
        return None
    spread = ref.variance / ref.n + cur.variance / cur.n
    if not spread > 0:
        return None
    z = abs(cur.mean - ref.mean) / math.sqrt(spread)
    return math.erfc(z / math.sqrt(2))


def _numeric(
    ref: NumericProfile, cur: NumericProfile, cut: float
) -> tuple[list[_Row], dict[str, float]]:
    nan = math.nan
    psi = js = ks = wasserstein = out_of_range = pile_up = nan
    pile_where: str | None = None
    tests: dict[str, float] = {}
    if ref.n and cur.n:
        p = ref.bins / ref.n
        q = cur.bins / cur.n
        psi, js, _ = _distances(p, q)
        gap = np.cumsum(p)[:-1] - np.cumsum(q)[:-1]
        ks = float(np.max(np.abs(gap))) if len(gap) else 0.0
        scale = ref.std if ref.std > 0 else max(abs(ref.mean), 1.0)
        if ref.m2 >= _MAX:  # saturated (values near the float limits): half the range instead
            scale = max(ref.max / 2 - ref.min / 2, abs(ref.mean), 1.0)
        # Near the float limits, measure in a power of two of the data's size.
        largest = max(abs(ref.min), abs(ref.max), abs(cur.min), abs(cur.max), scale)
        unit = math.ldexp(1.0, math.frexp(largest)[1] - 1) if largest > 2.0**480 else 1.0
        if ref.spread and cur.spread:
            distance = _wasserstein_spread(ref, cur, unit)
        else:
            distance = _wasserstein(ref, cur, np.abs(gap), unit)
        wasserstein = min(distance / (scale / unit), _MAX)
        pile_up, pile_where = _pile_up(ref, cur, tests, cut)
        out_of_range = (cur.below + cur.above) / cur.n
        tests["distribution"], _ = _homogeneity(
            ref.bins.astype(np.float64), cur.bins.astype(np.float64), ordered=True
        )
        location = _location(ref, cur)
        if location is not None:
            tests["location"] = location
        # New samples beyond the reference's extremes by chance: the two
        # extremes count as the reference's own "out of range" values.
        _rate_increase(
            tests,
            "out_of_range",
            ref.below + ref.above + 2,
            ref.n,
            cur.below + cur.above,
            cur.n,
            cut,
        )
    return [
        ("psi", psi, ("distribution",), None),
        ("js", js, ("distribution",), None),
        ("ks", ks, ("distribution",), None),
        ("wasserstein", wasserstein, ("distribution", "location"), None),
        ("out_of_range", out_of_range, ("out_of_range",), None),
        ("pile_up", pile_up, ("pile_up",), pile_where),
        *_rate_changes(ref, cur, tests, cut),
    ], tests


def _rate_changes(
    ref: NumericProfile | CategoricalProfile,
    cur: NumericProfile | CategoricalProfile,
    tests: dict[str, float],
    cut: float,
) -> tuple[_Row, _Row]:
    """How much more often the feature is missing, or invalid, than in the reference."""
    nan = math.nan
    if cur.count:
        if isinstance(ref, NumericProfile) and isinstance(cur, NumericProfile):
            ref_missing, cur_missing = ref.missing + ref.nan, cur.missing + cur.nan
            ref_invalid = ref.invalid + ref.posinf + ref.neginf
            cur_invalid = cur.invalid + cur.posinf + cur.neginf
        else:
            ref_missing, cur_missing = ref.missing, cur.missing
            ref_invalid, cur_invalid = ref.invalid, cur.invalid
        _rate_increase(tests, "missing", ref_missing, ref.count, cur_missing, cur.count, cut)
        _rate_increase(tests, "invalid", ref_invalid, ref.count, cur_invalid, cur.count, cut)
    return (
        (
            "missing_rate_change",
            cur.missing_rate - ref.missing_rate if cur.count else nan,
            ("missing",),
            None,
        ),
        (
            "invalid_rate_change",
            cur.invalid_rate - ref.invalid_rate if cur.count else nan,
            ("invalid",),
            None,
        ),
    )


def _categorical(
    ref: CategoricalProfile, cur: CategoricalProfile, cut: float
) -> tuple[list[_Row], dict[str, float]]:
    nan = math.nan
    psi = js = linf = unseen = nan
    tests: dict[str, float] = {}
    ref_n, cur_n = ref.n, cur.n
    if ref_n and cur_n:
        ref_counts = np.append(ref.counts, ref.other).astype(np.float64)
        cur_counts = np.append(cur.counts, cur.other).astype(np.float64)
        p = ref_counts / ref_n
        q = cur_counts / cur_n
        psi, js, linf = _distances(p, q)
        unseen = max(0.0, cur.other / cur_n - ref.other / ref_n)
        tests["distribution"], _ = _homogeneity(ref_counts, cur_counts, ordered=False)
        # A category the reference never saw may still be legitimate and rare.
        _rate_increase(tests, "unseen", ref.other + 1, ref_n, cur.other, cur_n, cut)
    return [
        ("psi", psi, ("distribution",), None),
        ("js", js, ("distribution",), None),
        ("linf", linf, ("distribution",), None),
        ("unseen_share", unseen, ("unseen",), None),
        *_rate_changes(ref, cur, tests, cut),
    ], tests


def _rows_to_decide(
    ref: NumericProfile | CategoricalProfile, limits: DriftThresholds, tests: int, level: int = 0
) -> int:
    """Serving rows needed to see a distribution difference at the warning floor.

    For small differences PSI is the chi-square divergence, so Pearson's
    statistic grows as n_eff * PSI with n_eff = n1 n2 / (n1 + n2); a
    difference at the PSI floor reaches the warning level (Holm's first
    step) once n_eff * floor passes the critical value. 0 when the feature
    is not decided that way; -1 when the reference is too small for any
    number of serving rows. *level* 1 asks for a difference at the alert
    floor instead (still at the warning's evidence).
    """
    if limits.false_alarm is None or limits.psi is None or limits.psi[level] <= 0:
        return 0
    if isinstance(ref, NumericProfile):
        cells = int(np.count_nonzero(ref.bins))
    else:
        assert isinstance(ref, CategoricalProfile)
        cells = int(np.count_nonzero(ref.counts)) + (ref.other > 0)
    if cells < 2:
        return 0
    critical = chi2_isf(limits.false_alarm[0] / max(tests, 1), cells - 1)
    n_eff = critical / limits.psi[level]
    n1 = ref.n
    if n1 <= n_eff * 1.001:
        return -1
    return math.ceil(n_eff * n1 / (n1 - n_eff))


def _rows_needed(
    ref: NumericProfile | CategoricalProfile,
    cur: NumericProfile | CategoricalProfile,
    limits: DriftThresholds,
    tests: int,
) -> int:
    """:func:`_rows_to_decide`, or 0 when the serving side has that many."""
    needed = _rows_to_decide(ref, limits, tests)
    return 0 if 0 <= needed <= cur.n else needed


def rows_to_decide(
    reference: Profile,
    thresholds: DriftThresholds,
    per_feature: Mapping[str, DriftThresholds] | None = None,
    level: int = 0,
) -> int:
    """About the serving rows a comparison with *reference* needs to decide every feature.

    Assumes three tests per feature in Holm's family (the distribution, the
    location and one rate), as the comparison's own ``rows_needed`` does.
    -1 when the reference is too small for some feature; 0 when no feature
    is decided on evidence. *level* 1: rows to show a difference at the
    alert floors (PSI 0.25 rather than 0.1; about 2.5 times fewer).
    """
    per_feature = per_feature or {}
    tests = _TESTS_PER_FEATURE * len(reference)
    needed = 0
    for ref in reference:
        rows = _rows_to_decide(ref, per_feature.get(ref.name, thresholds), tests, level)
        if rows < 0:
            return -1
        needed = max(needed, rows)
    return needed


_DEFAULT: Final = DriftThresholds()


def compare(
    reference: Profile,
    serving: Profile,
    *,
    thresholds: DriftThresholds = _DEFAULT,
    per_feature: Mapping[str, DriftThresholds] | None = None,
) -> SkewReport:
    """Compare a serving profile with its reference, feature by feature.

    Numeric features: PSI, Jensen-Shannon distance, KS statistic and
    Wasserstein distance divided by the reference's standard deviation, all
    over the reference's quantile bins; the share of values outside the
    reference's range. Categorical features: PSI, Jensen-Shannon distance and
    L-infinity over the known categories plus "other"; the share of unseen
    values. Both: the change of the missing rate and of the wrong-type rate.

    A metric warns (alerts) when its value is past its warning (alert)
    level *and* the Holm-adjusted p-value of its test is at most
    ``thresholds.false_alarm[0]`` (``[1]``): on data that did not drift,
    at most 1 % of comparisons warn and 0.1 % alert, whatever the number of
    rows. A feature with too few rows to show drift at the warning level
    has the verdict ``"insufficient"`` and the rows it needs.

    Args:
        reference: The training-time profile.
        serving: A profile built on the reference's layout
            (``reference.builder()``, ``like=reference`` or a monitor's).
        thresholds: The (warn, alert) levels for every feature.
        per_feature: Levels for named features, overriding *thresholds*.
    """
    if not isinstance(reference, Profile) or not isinstance(serving, Profile):
        raise TypeError("compare takes two Profile values")
    per_feature = dict(per_feature or {})
    unknown = set(per_feature) - set(reference.names)
    if unknown:
        raise ConfigError(f"per_feature names unknown features: {sorted(unknown)}")
    if reference.names != serving.names:
        raise ProfileMismatchError(
            f"the profiles have different features: {reference.names} vs {serving.names}"
        )
    pending = []
    p_values: list[float] = []
    for ref, cur in zip(reference, serving, strict=True):
        limits = per_feature.get(ref.name, thresholds)
        cut = 1.0 if limits.false_alarm is None else limits.false_alarm[0]
        if isinstance(ref, NumericProfile) and isinstance(cur, NumericProfile):
            if not np.array_equal(ref.edges, cur.edges):
                raise ProfileMismatchError(f"{ref.name}: the profiles have different bins")
            rows, tests = _numeric(ref, cur, cut)
        elif isinstance(ref, CategoricalProfile) and isinstance(cur, CategoricalProfile):
            if ref.categories != cur.categories:
                raise ProfileMismatchError(f"{ref.name}: the profiles have different categories")
            rows, tests = _categorical(ref, cur, cut)
        else:
            raise ProfileMismatchError(f"{ref.name}: the profiles disagree on the kind")
        index = {name: len(p_values) + i for i, name in enumerate(tests)}
        p_values.extend(tests.values())
        pending.append((ref, cur, limits, rows, index))
    adjusted = holm(p_values)
    results = []
    for ref, cur, limits, rows, index in pending:
        levels = limits.false_alarm
        metrics = tuple(
            _judge(
                metric,
                value,
                getattr(limits, metric),
                min((adjusted[index[t]] for t in tested if t in index), default=None),
                levels,
                where,
            )
            for metric, value, tested, where in rows
        )
        severity = max((m.severity for m in metrics), key=_RANK.__getitem__)
        needed = _rows_needed(ref, cur, limits, _TESTS_PER_FEATURE * len(pending))
        results.append(FeatureDrift(ref.name, ref.kind, severity, metrics, cur.count, needed))
    return SkewReport(
        features=tuple(results),
        underutilized=reference.underutilized(),
        reference_rows=reference.rows,
        serving_rows=serving.rows,
        schema_fingerprint=reference.schema.fingerprint,
    )
