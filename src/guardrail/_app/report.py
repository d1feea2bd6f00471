"""A self-contained HTML report: drift, schema, thresholds, limits and bias.

The report is built from plain data (the small frozen section values below),
so anything that can describe itself in numbers and strings plugs in: a skew
report and its profiles (see :meth:`Report.from_skew`), a threshold's history,
the trips of an action limit, an outcome monitor's bias by slice. The page
has no script, loads nothing from the network, draws its charts as inline
SVG, escapes every piece of text, and prints on paper.
"""

from __future__ import annotations

import datetime as _dt
import html
import itertools
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

import attrs

from .._errors import ConfigError
from .._privacy import redact

__all__ = [
    "Report",
    "ReportFeature",
    "ReportHistogram",
    "ReportMetric",
    "ReportSeries",
    "ReportTable",
]

Severity: TypeAlias = Literal["ok", "warn", "alert"]
_RANK: Final[dict[str, int]] = {"ok": 0, "warn": 1, "alert": 2}
_SEVERITIES: Final = ("ok", "warn", "alert")
_NOTHING: Final = "\u2013"  # an en dash for a missing number


def _check_severity(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in _RANK:
        raise ConfigError(f"{attribute.name} must be 'ok', 'warn' or 'alert', got {value!r}")


def _floats(value: Iterable[Any]) -> tuple[float, ...]:
    return tuple(float(v) for v in value)


def _strings(value: Iterable[Any]) -> tuple[str, ...]:
    return tuple(str(v) for v in value)


def _rows(value: Iterable[Iterable[Any]]) -> tuple[tuple[Any, ...], ...]:
    return tuple(tuple(row) for row in value)


def _pairs(value: Iterable[tuple[Any, Any]]) -> tuple[tuple[str, str], ...]:
    return tuple((str(a), str(b)) for a, b in value)


def _counted(value: Iterable[tuple[Any, Any, Any]]) -> tuple[tuple[str, str, int], ...]:
    return tuple((str(f), str(p), int(c)) for f, p, c in value)


def _metrics(value: Iterable[ReportMetric]) -> tuple[ReportMetric, ...]:
    return tuple(value)


def _features(value: Iterable[ReportFeature]) -> tuple[ReportFeature, ...]:
    return tuple(value)


def _tables(value: Iterable[ReportTable]) -> tuple[ReportTable, ...]:
    return tuple(value)


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


@attrs.frozen
class ReportHistogram:
    """The reference and serving distributions of one feature, bin by bin.

    *reference* and *serving* are counts or shares per bin (they are
    normalized to shares when drawn); *labels* name the bins.

    >>> h = ReportHistogram(labels=("a", "b"), reference=(3, 1), serving=(1, 1))
    >>> h.shares()
    ((0.75, 0.25), (0.5, 0.5))
    """

    labels: tuple[str, ...] = attrs.field(converter=_strings)
    reference: tuple[float, ...] = attrs.field(converter=_floats)
    serving: tuple[float, ...] = attrs.field(converter=_floats)

    def __attrs_post_init__(self) -> None:
        if not (len(self.labels) == len(self.reference) == len(self.serving)):
            raise ConfigError(
                "a histogram needs as many labels as reference and serving values, got "
                f"{len(self.labels)}, {len(self.reference)} and {len(self.serving)}"
            )
        for value in (*self.reference, *self.serving):
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"histogram values are finite and >= 0, got {value!r}")

    def shares(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(reference, serving) as shares of their totals (all zero if empty)."""

        def norm(values: tuple[float, ...]) -> tuple[float, ...]:
            total = sum(values)
            return tuple(v / total for v in values) if total > 0 else tuple(0.0 for _ in values)

        return norm(self.reference), norm(self.serving)


@attrs.frozen
class ReportMetric:
    """One drift metric of one feature: its value (effect size), limits, evidence, verdict."""

    name: str
    value: float | None
    warn: float | None = None
    alert: float | None = None
    severity: Severity = attrs.field(default="ok", validator=_check_severity)
    p_value: float | None = None

    @property
    def ratio(self) -> float:
        """value / warn level: how far past (or short of) the first limit."""
        if self.value is None or self.warn is None or math.isnan(self.value):
            return 0.0
        if self.warn <= 0:
            return math.inf if self.value > 0 else 0.0
        return self.value / self.warn


@attrs.frozen
class ReportFeature:
    """One feature's section: its metrics, verdict and optional histogram."""

    name: str
    kind: str = "numeric"
    severity: Severity = attrs.field(default="ok", validator=_check_severity)
    metrics: tuple[ReportMetric, ...] = attrs.field(default=(), converter=_metrics)
    histogram: ReportHistogram | None = None
    #: Serving rows needed to show drift (0: enough; -1: the reference is too small).
    rows_needed: int = 0

    @property
    def worst(self) -> ReportMetric | None:
        """The metric furthest past its limits, or None without metrics."""
        if not self.metrics:
            return None
        return max(self.metrics, key=lambda m: (_RANK[m.severity], m.ratio))

    def sort_key(self) -> tuple[int, float, str]:
        """Most severe first, then furthest past its limit, then by name."""
        worst = self.worst
        ratio = worst.ratio if worst is not None else 0.0
        return (-_RANK[self.severity], -ratio, self.name)


@attrs.frozen
class ReportSeries:
    """A line over time, e.g. a dynamic threshold's value after each update.

    *x* are seconds (or any increasing numbers, such as request counts),
    *y* the values; *target* draws a dashed horizontal reference line.
    """

    title: str
    x: tuple[float, ...] = attrs.field(converter=_floats)
    y: tuple[float, ...] = attrs.field(converter=_floats)
    x_label: str = "time"
    y_label: str = "value"
    target: float | None = None

    def __attrs_post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ConfigError(f"a series needs as many x as y, got {len(self.x)} and {len(self.y)}")
        if not all(math.isfinite(v) for v in (*self.x, *self.y)):
            raise ConfigError("a series holds finite numbers only")


@attrs.frozen
class ReportTable:
    """A titled table of plain cells, for sections the report does not model.

    Action-limit trips and prediction bias by slice are drawn this way; a
    cell is text or a number.
    """

    title: str
    columns: tuple[str, ...] = attrs.field(converter=_strings)
    rows: tuple[tuple[Any, ...], ...] = attrs.field(converter=_rows)
    note: str = ""

    def __attrs_post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ConfigError(
                    f"{self.title}: a row has {len(row)} cells for {len(self.columns)} columns"
                )


@attrs.frozen
class Report:
    """An HTML report: write it with :meth:`write`, or get the text from :meth:`to_html`.

    Every section is optional; the drift sections say so when they are empty.

    Args:
        title: The page's heading.
        summary: Key facts shown at the top, as (label, value) pairs.
        findings: A table drawn first, under the facts: what was found.
        features: One section per feature (drift metrics and a histogram).
        violations: Schema violations as (feature, problem, count).
        underutilized: Features carrying little information, as (feature, reason).
        threshold_history: A dynamic threshold's values over time.
        limit_trips: When and where action limits stopped actions.
        bias: Predicted vs observed rates, by slice.
        tables: Further tables, drawn after the sections above.
        generated_at: When the report was made (ISO-8601); now by default.

    >>> report = Report(title="nightly check", features=[ReportFeature("amount")])
    >>> "<td>amount</td>" in report.to_html()
    True
    """

    title: str = "guardrail report"
    summary: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_pairs)
    features: tuple[ReportFeature, ...] = attrs.field(default=(), converter=_features)
    violations: tuple[tuple[str, str, int], ...] = attrs.field(default=(), converter=_counted)
    underutilized: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_pairs)
    findings: ReportTable | None = None
    threshold_history: ReportSeries | None = None
    limit_trips: ReportTable | None = None
    bias: ReportTable | None = None
    tables: tuple[ReportTable, ...] = attrs.field(default=(), converter=_tables)
    generated_at: str = attrs.field(factory=_now)

    @property
    def severity(self) -> Severity:
        """The worst severity over all features."""
        worst = max((_RANK[f.severity] for f in self.features), default=0)
        return _SEVERITIES[worst]

    @classmethod
    def from_skew(
        cls,
        skew: Any,
        *,
        reference: Any = None,
        serving: Any = None,
        violations: Mapping[tuple[str, str], int] | None = None,
        **sections: Any,
    ) -> Report:
        """A report from a skew report (``gr.compare``'s result) and its profiles.

        Only the public JSON forms are read: ``skew.to_dict()`` for the
        metrics and ``profile.to_dict()`` for the histograms, so anything
        with the same forms plugs in. *violations* are ``(feature, problem)``
        counts (a skew monitor's ``violations()``); without them, the
        problems the serving profile counted and the reference did not
        (wrong types, NaN, infinities, values outside the reference's range)
        are listed. *sections* are passed on to :class:`Report` (``title=``,
        ``threshold_history=``, ...).
        """
        data = skew.to_dict() if hasattr(skew, "to_dict") else skew
        if not isinstance(data, Mapping):
            raise ConfigError("from_skew takes a skew report or its to_dict() form")
        histograms = _histograms(reference, serving)
        features = []
        for feature in data.get("features", ()):
            metrics = tuple(
                ReportMetric(
                    name=str(m["metric"]),
                    value=None if m.get("value") is None else float(m["value"]),
                    warn=m.get("warn"),
                    alert=m.get("alert"),
                    severity=m.get("severity", "ok"),
                    p_value=m.get("p_value"),
                )
                for m in feature.get("metrics", ())
            )
            features.append(
                ReportFeature(
                    name=str(feature["name"]),
                    kind=str(feature.get("kind", "numeric")),
                    severity=feature.get("severity", "ok"),
                    metrics=metrics,
                    histogram=histograms.get(str(feature["name"])),
                    rows_needed=int(feature.get("rows_needed", 0)),
                )
            )
        summary = list(sections.pop("summary", ()))
        summary[:0] = [
            ("reference rows", f"{data.get('reference_rows', 0):,}"),
            ("serving rows", f"{data.get('serving_rows', 0):,}"),
        ]
        if data.get("verdict") == "insufficient":
            needed = int(data.get("rows_needed", 0))
            summary.append(
                (
                    "verdict",
                    "insufficient data: "
                    + (
                        "the reference is too small"
                        if needed < 0
                        else f"about {needed:,} serving rows needed"
                    ),
                )
            )
        return cls(
            features=features,
            underutilized=[tuple(pair) for pair in data.get("underutilized", ())],
            violations=[
                (f, p, c)
                for (f, p), c in sorted(
                    (
                        violations
                        if violations is not None
                        else profile_violations(reference, serving)
                    ).items()
                )
            ],
            summary=summary,
            **sections,
        )

    def to_html(self) -> str:
        """The whole page as one string (UTF-8, no external resources)."""
        return _render(self)

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the page to *path* (parent directories are created); return the path."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(self.to_html(), encoding="utf-8")
        return out


# -- adapters from the profiles' JSON form --------------------------------------------


def _histograms(reference: Any, serving: Any) -> dict[str, ReportHistogram]:
    if reference is None or serving is None:
        return {}
    ref = reference.to_dict() if hasattr(reference, "to_dict") else reference
    cur = serving.to_dict() if hasattr(serving, "to_dict") else serving
    out: dict[str, ReportHistogram] = {}
    cur_by_name = {f.get("name"): f for f in cur.get("features", ())}
    for feature in ref.get("features", ()):
        other = cur_by_name.get(feature.get("name"))
        if other is None:
            continue
        histogram = _histogram(feature, other)
        if histogram is not None:
            out[str(feature["name"])] = histogram
    return out


#: Counts in a feature's JSON form that are schema problems, by the problem's name.
_PROBLEM_COUNTS: Final = (
    ("invalid", "type"),
    ("nan", "nan_inf"),
    ("posinf", "nan_inf"),
    ("neginf", "nan_inf"),
    ("below", "out_of_range"),
    ("above", "out_of_range"),
)


def profile_violations(reference: Any, serving: Any) -> dict[tuple[str, str], int]:
    """Problems the serving profile counted where the reference counted none."""
    if reference is None or serving is None:
        return {}
    ref = reference.to_dict() if hasattr(reference, "to_dict") else reference
    cur = serving.to_dict() if hasattr(serving, "to_dict") else serving
    ref_by_name = {f.get("name"): f for f in ref.get("features", ())}
    out: dict[tuple[str, str], int] = {}
    for feature in cur.get("features", ()):
        name = str(feature.get("name"))
        before = ref_by_name.get(name, {})
        for key, problem in _PROBLEM_COUNTS:
            count = feature.get(key) or 0
            if isinstance(count, int) and count > 0 and not before.get(key):
                out[(name, problem)] = out.get((name, problem), 0) + count
    return out


#: At most this many new categories are named in a histogram.
_NEW_CATEGORIES: Final = 5


def _histogram(ref: Mapping[str, Any], cur: Mapping[str, Any]) -> ReportHistogram | None:
    if "edges" in ref and "bins" in ref:
        edges = [_num(e) for e in ref["edges"]]
        labels = (
            [f"< {_short(edges[0])}"]
            + [f"[{_short(a)}, {_short(b)})" for a, b in itertools.pairwise(edges)]
            + [f">= {_short(edges[-1])}"]
            if edges
            else ["all"]
        )
        if len(labels) != len(ref["bins"]) or len(cur.get("bins", ())) != len(ref["bins"]):
            return None
        return ReportHistogram(labels, ref["bins"], cur["bins"])
    if "categories" in ref and "counts" in ref:
        # New values the serving side counted most (its heavy hitters, at most
        # _NEW_CATEGORIES of them) get a bar of their own; the rest stay "(other)".
        known = set(ref["categories"])
        new = sorted(
            (
                (str(value), int(count))
                for value, count in cur.get("heavy", ())
                if value not in known and int(count) > 0
            ),
            key=lambda item: -item[1],
        )[:_NEW_CATEGORIES]
        new_total = sum(count for _, count in new)
        other = cur.get("other", 0)
        if not isinstance(other, int) or new_total > other:
            new, new_total = [], 0
        # New values come from serving inputs: shown through the redaction
        # function (a digest by default; configure(redact=str) shows them).
        labels = [*ref["categories"], *(f"{redact(value)} (new)" for value, _ in new), "(other)"]
        reference = [*ref["counts"], *(0 for _ in new), ref.get("other", 0)]
        serving = [*cur.get("counts", ()), *(count for _, count in new), other - new_total]
        if len(serving) != len(reference):
            return None
        return ReportHistogram(labels, reference, serving)
    return None


def _num(value: Any) -> float:
    return float(value) if not isinstance(value, str) else float(value.replace("Infinity", "inf"))


def _short(value: float) -> str:
    return f"{value:.3g}"


# -- rendering ------------------------------------------------------------------------

_CSS: Final = """
:root { --ref: #4c78a8; --cur: #f58518; --ok: #2e7d32; --warn: #b26a00; --alert: #c62828;
  --ink: #1d1d1f; --muted: #5f6368; --line: #dadce0; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--ink); margin: 0 auto; max-width: 1100px; padding: 24px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid var(--line);
  padding-bottom: 4px; }
h3 { font-size: 15px; margin: 0 0 6px; }
.muted { color: var(--muted); }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; }
.scroll { overflow-x: auto; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { background: #f5f5f7; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 0 8px; border-radius: 10px; color: #fff;
  font-size: 12px; font-weight: 600; text-transform: uppercase; }
.badge.ok { background: var(--ok); } .badge.warn { background: var(--warn); }
.badge.alert { background: var(--alert); }
.facts { display: flex; flex-wrap: wrap; gap: 8px 24px; margin: 12px 0; }
.facts div { min-width: 140px; } .facts b { display: block; font-size: 16px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr));
  gap: 16px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px;
  break-inside: avoid; page-break-inside: avoid; }
.legend span { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 10px; }
svg text { font: 10px system-ui, sans-serif; fill: var(--muted); }
.empty { color: var(--muted); font-style: italic; }
@media print { body { max-width: none; padding: 0; font-size: 11px; }
  h2 { break-after: avoid; } .grid { grid-template-columns: 1fr 1fr; } }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: object) -> str:
    if value is None:
        return _NOTHING
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return _NOTHING
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:.3g}"
    return str(value)


def _badge(severity: str) -> str:
    return f'<span class="badge {_e(severity)}">{_e(severity)}</span>'


def _render(report: Report) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # No network, no script: a strict policy makes that checkable.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">",
        f"<title>{_e(report.title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<header><h1>{_e(report.title)}</h1>",
        f'<div class="muted">generated {_e(report.generated_at)} · verdict '
        f"{_badge(report.severity)}</div>",
    ]
    if report.summary:
        parts.append('<div class="facts">')
        parts.extend(f"<div>{_e(k)}<b>{_e(v)}</b></div>" for k, v in report.summary)
        parts.append("</div>")
    parts.append("</header>")
    if report.findings is not None:
        parts.append(_table_section("findings", report.findings.title, report.findings))
    parts.append(_drift_table(report))
    parts.append(_histogram_section(report))
    parts.append(_violations(report))
    parts.append(_underutilized(report))
    if report.threshold_history is not None:
        parts.append(
            _section(
                "threshold-history",
                "Threshold history",
                _line_chart(report.threshold_history),
            )
        )
    if report.limit_trips is not None:
        parts.append(_table_section("limit-trips", "Action-limit trips", report.limit_trips))
    if report.bias is not None:
        parts.append(_table_section("prediction-bias", "Prediction bias", report.bias))
    for i, table in enumerate(report.tables):
        parts.append(_table_section(f"table-{i + 1}", table.title, table))
    parts.append("</body></html>")
    return "\n".join(parts)


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{_e(anchor)}"><h2>{_e(title)}</h2>{body}</section>'


def _drift_table(report: Report) -> str:
    features = sorted(report.features, key=ReportFeature.sort_key)
    if not features:
        return _section("drift", "Drift", '<p class="empty">No features were compared.</p>')
    rows = []
    for f in features:
        flagged = [m for m in f.metrics if m.severity != "ok"] or (
            [f.worst] if f.worst is not None else []
        )
        detail = "; ".join(
            f"{_e(m.name)} = {_e(_fmt(m.value))}"
            + (f" (warn {_e(_fmt(m.warn))}, alert {_e(_fmt(m.alert))})" if m.warn else "")
            + ("" if m.p_value is None else f", {_e(_p(m.p_value))}")
            for m in flagged
        )
        if f.severity == "ok" and f.rows_needed:
            detail = "insufficient data: " + (
                "the reference is too small"
                if f.rows_needed < 0
                else f"about {f.rows_needed:,} serving rows needed"
            )
        metrics = "".join(
            f'<td class="num">{_e(_fmt(_metric(f, name)))}</td>' for name in _metric_names(report)
        )
        rows.append(
            f"<tr><td>{_badge(f.severity)}</td><td>{_e(f.name)}</td><td>{_e(f.kind)}</td>"
            f"{metrics}<td>{detail}</td></tr>"
        )
    head = "".join(f"<th>{_e(n)}</th>" for n in _metric_names(report))
    table = (
        '<div class="scroll"><table class="drift"><thead><tr>'
        "<th>severity</th><th>feature</th><th>kind</th>"
        f"{head}<th>worst</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )
    return _section("drift", "Drift, most severe first", table)


def _p(p_value: float) -> str:
    """The evidence of a metric: its adjusted p-value."""
    return "p < 1e-12" if p_value < 1e-12 else f"p = {p_value:.2g}"


def _metric_names(report: Report) -> list[str]:
    names: list[str] = []
    for f in report.features:
        for m in f.metrics:
            if m.name not in names:
                names.append(m.name)
    return names[:5]


def _metric(feature: ReportFeature, name: str) -> float | None:
    for m in feature.metrics:
        if m.name == name:
            return m.value
    return None


def _histogram_section(report: Report) -> str:
    drawn = [f for f in sorted(report.features, key=ReportFeature.sort_key) if f.histogram]
    if not drawn:
        return ""
    legend = (
        '<p class="legend muted"><span style="background:var(--ref)"></span>reference'
        '<span style="background:var(--cur)"></span>serving</p>'
    )
    cards = []
    for f in drawn:
        assert f.histogram is not None
        cards.append(
            f'<div class="card feature" data-feature="{_e(f.name)}">'
            f"<h3>{_e(f.name)} {_badge(f.severity)}</h3>{_bars(f.name, f.histogram)}</div>"
        )
    return _section(
        "histograms",
        "Reference vs serving, per feature",
        legend + f'<div class="grid">{"".join(cards)}</div>',
    )


def _bars(name: str, histogram: ReportHistogram) -> str:
    width, height, pad_left, pad_bottom = 320, 150, 34, 34
    ref, cur = histogram.shares()
    n = len(ref)
    top = max((*ref, *cur, 0.0)) or 1.0
    inner_w, inner_h = width - pad_left - 6, height - pad_bottom - 8
    slot = inner_w / max(n, 1)
    bar = max(slot / 2 - 1, 0.5)
    out = [
        f'<svg class="histogram" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-label="{_e(name)}: reference vs serving histogram">',
        f"<title>{_e(name)}</title>",
        f'<line x1="{pad_left}" y1="{8 + inner_h}" x2="{width - 6}" y2="{8 + inner_h}" '
        'stroke="#9aa0a6"/>',
        f'<text x="{pad_left - 4}" y="14" text-anchor="end">{top:.0%}</text>',
        f'<text x="{pad_left - 4}" y="{8 + inner_h}" text-anchor="end">0</text>',
    ]
    for i, (r, c) in enumerate(zip(ref, cur, strict=True)):
        x = pad_left + i * slot
        for j, (share, color) in enumerate(((r, "var(--ref)"), (c, "var(--cur)"))):
            h = inner_h * share / top
            out.append(
                f'<rect x="{x + j * bar + 1:.1f}" y="{8 + inner_h - h:.1f}" '
                f'width="{bar:.1f}" height="{h:.1f}" fill="{color}">'
                f"<title>{_e(histogram.labels[i])}: {'serving' if j else 'reference'} "
                f"{share:.1%}</title></rect>"
            )
    step = max(1, math.ceil(n / 4))
    for i in range(0, n, step):
        x = pad_left + (i + 0.5) * slot
        label = histogram.labels[i]
        if label.startswith("[") and "," in label:
            label = label[1 : label.index(",")]  # an interval: its lower edge marks the tick
        label = label if len(label) <= 12 else label[:11] + "\u2026"
        out.append(
            f'<text x="{x:.1f}" y="{height - pad_bottom + 20}" text-anchor="middle">'
            f"{_e(label)}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def _line_chart(series: ReportSeries) -> str:
    width, height, pad_left, pad_bottom = 720, 220, 52, 34
    inner_w, inner_h = width - pad_left - 10, height - pad_bottom - 10
    if not series.x:
        return '<p class="empty">No threshold updates yet.</p>'
    values = list(series.y) + ([series.target] if series.target is not None else [])
    low, high = min(values), max(values)
    if high == low:
        low, high = low - 0.5, high + 0.5
    x0, x1 = series.x[0], series.x[-1]
    span = (x1 - x0) or 1.0

    def px(x: float) -> float:
        return pad_left + inner_w * (x - x0) / span

    def py(y: float) -> float:
        return 10 + inner_h * (1 - (y - low) / (high - low))

    points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(series.x, series.y, strict=True))
    out = [
        f'<svg class="line-chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{_e(series.title)}"><title>{_e(series.title)}</title>',
        f'<line x1="{pad_left}" y1="{10 + inner_h}" x2="{width - 10}" y2="{10 + inner_h}" '
        'stroke="#9aa0a6"/>',
        f'<line x1="{pad_left}" y1="10" x2="{pad_left}" y2="{10 + inner_h}" stroke="#9aa0a6"/>',
        f'<text x="{pad_left - 4}" y="{py(high) + 4:.1f}" text-anchor="end">{high:.4g}</text>',
        f'<text x="{pad_left - 4}" y="{py(low):.1f}" text-anchor="end">{low:.4g}</text>',
        f'<text x="{pad_left}" y="{height - 8}">{_e(_fmt(x0))}</text>',
        f'<text x="{width - 10}" y="{height - 8}" text-anchor="end">{_e(_fmt(x1))} '
        f"{_e(series.x_label)}</text>",
    ]
    if series.target is not None:
        y = py(series.target)
        out.append(
            f'<line x1="{pad_left}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" '
            'stroke="var(--alert)" stroke-dasharray="4 3"/>'
            f'<text x="{width - 12}" y="{y - 3:.1f}" text-anchor="end">target '
            f"{series.target:.4g}</text>"
        )
    out.append(
        f'<polyline points="{points}" fill="none" stroke="var(--ref)" stroke-width="2"/></svg>'
    )
    caption = f'<p class="muted">{_e(series.y_label)} over {_e(series.x_label)}</p>'
    return f"<h3>{_e(series.title)}</h3>" + "".join(out) + caption


def _violations(report: Report) -> str:
    if not report.violations:
        body = '<p class="empty">No schema violations.</p>'
    else:
        rows = "".join(
            f'<tr><td>{_e(f)}</td><td>{_e(p.replace("_", " "))}</td><td class="num">'
            f"{_fmt(c)}</td></tr>"
            for f, p, c in sorted(report.violations, key=lambda v: (-v[2], v[0], v[1]))
        )
        body = (
            "<table><thead><tr><th>feature</th><th>problem</th><th>count</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )
    return _section("schema", "Schema violations", body)


def _underutilized(report: Report) -> str:
    if not report.underutilized:
        body = '<p class="empty">No underutilized features.</p>'
    else:
        rows = "".join(
            f"<tr><td>{_e(f)}</td><td>{_e(r.replace('_', ' '))}</td></tr>"
            for f, r in report.underutilized
        )
        body = (
            "<table><thead><tr><th>feature</th><th>why</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )
    return _section("underutilized", "Underutilized features", body)


def _table_section(anchor: str, title: str, table: ReportTable) -> str:
    return _section(anchor, title, _table(table))


def _table(table: ReportTable) -> str:
    note = f'<p class="muted">{_e(table.note)}</p>' if table.note else ""
    if not table.rows:
        return f'{note}<p class="empty">Nothing to show.</p>'
    head = "".join(f"<th>{_e(c)}</th>" for c in table.columns)
    rows = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{_e(_fmt(c))}</td>'
            if isinstance(c, (int, float)) and not isinstance(c, bool)
            else f"<td>{_e(_fmt(c))}</td>"
            for c in row
        )
        + "</tr>"
        for row in table.rows
    )
    return f"{note}<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
