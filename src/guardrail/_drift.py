"""Comparing a serving profile with its reference: distances, thresholds, a report.

Distances, not p-values, decide: on the sample sizes of a serving window a
test's p-value goes to zero for differences nobody cares about. Every
default threshold and its source is listed in ``docs/skew.md``.
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

__all__ = ["DriftThresholds", "FeatureDrift", "MetricResult", "SkewReport", "compare"]

Severity: TypeAlias = Literal["ok", "warn", "alert"]
_RANK: Final[dict[str, int]] = {"ok": 0, "warn": 1, "alert": 2}
_EPS: Final = 1e-4  # floor for empty bins in PSI, as in Evidently and most PSI write-ups


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


@attrs.frozen
class DriftThresholds:
    """(warn, alert) levels per metric; ``None`` reports a metric without deciding.

    The defaults and their sources (see ``docs/skew.md``): PSI 0.1 / 0.25
    (the credit-scoring rule of thumb, Siddiqi 2006); Jensen-Shannon distance
    and normalized Wasserstein 0.1 (Evidently's defaults for large samples),
    alert at 0.2; L-infinity 0.1 / 0.2 (TFDV's skew comparator measure; TFDV
    leaves the threshold to the user); missing-rate increase 0.05 / 0.2;
    wrong-type or infinite rate increase 0.01 / 0.05; out-of-range and unseen
    shares 0.05 / 0.2. The KS statistic is reported, not decided on.

    >>> DriftThresholds(psi=(0.2, 0.4)).psi
    (0.2, 0.4)
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


@attrs.frozen
class MetricResult:
    """One metric of one feature: its value, the limits applied and the verdict."""

    metric: str
    value: float
    warn: float | None
    alert: float | None
    severity: Severity

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
        }


@attrs.frozen
class FeatureDrift:
    """Every metric of one feature, and the worst verdict among them."""

    name: str
    kind: str
    severity: Severity
    metrics: tuple[MetricResult, ...]
    serving_rows: int

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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "format": "guardrail.skew_report",
            "version": 1,
            "severity": self.severity,
            "reference_rows": self.reference_rows,
            "serving_rows": self.serving_rows,
            "schema_fingerprint": self.schema_fingerprint,
            "drifted": [f.name for f in self.drifted],
            "underutilized": [list(pair) for pair in self.underutilized],
            "features": [f.to_dict() for f in self.features],
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
        if not drifted:
            lines.append("no feature drifted")
        for f in drifted:
            lines.append(f"{f.severity.upper():5} {f.name} ({f.kind})")
            for m in f.metrics:
                if m.severity != "ok":
                    lines.append(
                        f"        {m.metric} = {m.value:.4g} "
                        f"(warn {m.warn:g}, alert {m.alert:g}) {m.severity}"
                    )
        for name, reason in self.underutilized:
            lines.append(f"underutilized: {name} ({reason.replace('_', ' ')})")
        return "\n".join(lines)


def _judge(metric: str, value: float, limits: tuple[float, float] | None) -> MetricResult:
    if limits is None:
        return MetricResult(metric, value, None, None, "ok")
    warn, alert = limits
    severity: Severity = "ok"
    if value >= alert:
        severity = "alert"
    elif value >= warn:
        severity = "warn"
    return MetricResult(metric, value, warn, alert, severity)


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


def _numeric(
    ref: NumericProfile, cur: NumericProfile, limits: DriftThresholds
) -> tuple[MetricResult, ...]:
    nan = math.nan
    psi = js = ks = wasserstein = out_of_range = nan
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
        wasserstein = min(_wasserstein(ref, cur, np.abs(gap), unit) / (scale / unit), _MAX)
        out_of_range = (cur.below + cur.above) / cur.n
    return (
        _judge("psi", psi, limits.psi),
        _judge("js", js, limits.js),
        _judge("ks", ks, limits.ks),
        _judge("wasserstein", wasserstein, limits.wasserstein),
        _judge("out_of_range", out_of_range, limits.out_of_range),
        *_rate_changes(ref, cur, limits),
    )


def _rate_changes(
    ref: NumericProfile | CategoricalProfile,
    cur: NumericProfile | CategoricalProfile,
    limits: DriftThresholds,
) -> tuple[MetricResult, MetricResult]:
    """How much more often the feature is missing, or invalid, than in the reference."""
    nan = math.nan
    return (
        _judge(
            "missing_rate_change",
            cur.missing_rate - ref.missing_rate if cur.count else nan,
            limits.missing_rate_change,
        ),
        _judge(
            "invalid_rate_change",
            cur.invalid_rate - ref.invalid_rate if cur.count else nan,
            limits.invalid_rate_change,
        ),
    )


def _categorical(
    ref: CategoricalProfile, cur: CategoricalProfile, limits: DriftThresholds
) -> tuple[MetricResult, ...]:
    nan = math.nan
    psi = js = linf = unseen = nan
    ref_n, cur_n = ref.n, cur.n
    if ref_n and cur_n:
        p = np.append(ref.counts, ref.other) / ref_n
        q = np.append(cur.counts, cur.other) / cur_n
        psi, js, linf = _distances(p, q)
        unseen = max(0.0, cur.other / cur_n - ref.other / ref_n)
    return (
        _judge("psi", psi, limits.psi),
        _judge("js", js, limits.js),
        _judge("linf", linf, limits.linf),
        _judge("unseen_share", unseen, limits.unseen_share),
        *_rate_changes(ref, cur, limits),
    )


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
    results = []
    for ref, cur in zip(reference, serving, strict=True):
        limits = per_feature.get(ref.name, thresholds)
        if isinstance(ref, NumericProfile) and isinstance(cur, NumericProfile):
            if not np.array_equal(ref.edges, cur.edges):
                raise ProfileMismatchError(f"{ref.name}: the profiles have different bins")
            metrics = _numeric(ref, cur, limits)
        elif isinstance(ref, CategoricalProfile) and isinstance(cur, CategoricalProfile):
            if ref.categories != cur.categories:
                raise ProfileMismatchError(f"{ref.name}: the profiles have different categories")
            metrics = _categorical(ref, cur, limits)
        else:
            raise ProfileMismatchError(f"{ref.name}: the profiles disagree on the kind")
        severity = max((m.severity for m in metrics), key=_RANK.__getitem__)
        results.append(FeatureDrift(ref.name, ref.kind, severity, metrics, cur.count))
    return SkewReport(
        features=tuple(results),
        underutilized=reference.underutilized(),
        reference_rows=reference.rows,
        serving_rows=serving.rows,
        schema_fingerprint=reference.schema.fingerprint,
    )
