"""Plotly figure builders for the app: audits (agreement, calibration, label counts),
judge validation against gold labels (reliability), training curves and before/after evaluation.

Every builder takes plain data (a report object or its ``to_dict()``, rows, metric dicts),
returns a ``plotly.graph_objects.Figure`` and never raises on empty input: it returns an
empty figure whose title says what is missing, so a tab renders before there is data.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Iterable, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = [
    "empty_figure",
    "agreement_figure",
    "judge_agreement_figure",
    "calibration_figure",
    "reliability_figure",
    "label_counts_figure",
    "training_curves_figure",
    "win_rate_figure",
    "response_rates_figure",
]

# One colour per meaning, the same in every chart.
_COLORS = {
    "overall": "#4c78a8",
    "row": "#72b7b2",
    "A": "#4c78a8",
    "B": "#f58518",
    "tie": "#9d755d",
    "accept": "#54a24b",
    "unparsed": "#bab0ac",
    "comply": "#e45756",
    "objection": "#54a24b",
    "evasive": "#f2a93b",
    "incoherent": "#bab0ac",
}
_PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d")
_RESPONSE_CLASSES = ("comply", "objection", "evasive", "incoherent")
# Legends above the plot area: below it they collide with rotated category labels.
_LEGEND = {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1}


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """A field of a report given either as its dataclass or as its ``to_dict()``."""
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _num(v: Any) -> float | None:
    """A finite float, or None (JSON nulls, NaN, strings)."""
    if isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _fmt(v: Any, spec: str = ".2f") -> str:
    f = _num(v)
    return "—" if f is None else format(f, spec)


def empty_figure(title: str, hint: str = "") -> go.Figure:
    """A figure without traces whose title explains why (and an optional hint in the middle)."""
    fig = go.Figure()
    fig.update_layout(title={"text": title}, xaxis={"visible": False}, yaxis={"visible": False},
                      template="plotly_white", height=320)
    if hint:
        fig.add_annotation(text=hint, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                           font={"size": 14, "color": "#666"})
    return fig


def _rate_layout(fig: go.Figure, title: str, xtitle: str, ytitle: str) -> go.Figure:
    fig.update_layout(title={"text": title}, xaxis_title=xtitle, yaxis_title=ytitle, template="plotly_white",
                      yaxis={"range": [0, 1.08], "tickformat": ".0%"}, legend=_LEGEND)
    return fig


def _agreement_bar(rows: list[Any], name: str, color: str, scope: str) -> go.Bar:
    keys = [str(_get(r, "key")) for r in rows]
    return go.Bar(
        x=keys,
        y=[_num(_get(r, "agreement")) for r in rows],
        name=name,
        marker_color=color,
        text=[f"κ {_fmt(_get(r, 'kappa'))}" for r in rows],
        textposition="outside",
        customdata=[[_get(r, "n", 0), _get(r, "agree", 0), _fmt(_get(r, "kappa"))] for r in rows],
        hovertemplate="%{x}<br>agreement %{y:.0%}<br>%{customdata[1]} of %{customdata[0]} " + scope
                      + "<br>Cohen's κ %{customdata[2]}<extra></extra>",
    )


def _rows_with_data(rows: Iterable[Any] | None) -> list[Any]:
    return [r for r in (rows or []) if (_get(r, "n") or 0) > 0 and _num(_get(r, "agreement")) is not None]


def agreement_figure(report: Any) -> go.Figure:
    """Bars: overall AI-vs-human agreement (per comparison) and per principle (per verdict),
    κ as bar text and in the hover. Two traces when both exist."""
    n = _get(report, "n") or 0
    rows = _rows_with_data(_get(report, "by_principle"))
    if not n and not rows:
        return empty_figure("AI vs human agreement: no audited comparisons yet",
                            "Audit some comparisons to see how often people agree with the AI judge.")
    fig = go.Figure()
    if n:
        overall = {"key": "all comparisons", "n": n, "agree": _get(report, "agree", 0),
                   "agreement": _get(report, "agreement"), "kappa": _get(report, "kappa")}
        fig.add_trace(_agreement_bar([overall], "overall (AI label per comparison)", _COLORS["overall"], "comparisons"))
    if rows:
        fig.add_trace(_agreement_bar(rows, "by principle (single verdicts)", _COLORS["row"], "verdicts"))
    return _rate_layout(fig, f"AI vs human agreement (n = {n} audited comparisons)", "principle", "agreement")


def judge_agreement_figure(report: Any) -> go.Figure:
    """Bars: per-judge agreement with the human labels (single verdicts), κ as text; the
    title carries the flip rate and position bias over all verdicts."""
    rows = _rows_with_data(_get(report, "by_judge"))
    flip, bias = _num(_get(report, "flip_rate")), _num(_get(report, "position_bias"))
    extra = f"flip rate {_fmt(flip, '.0%')}, first-shown wins {_fmt(bias, '.0%')}"
    if not rows:
        return empty_figure(f"Judges vs humans: no audited verdicts yet ({extra})",
                            "Per-judge agreement appears once audited comparisons have parsed verdicts.")
    fig = go.Figure(_agreement_bar(rows, "by judge (single verdicts)", _COLORS["overall"], "verdicts"))
    return _rate_layout(fig, f"Judges vs humans ({extra})", "judge", "agreement")


def calibration_figure(report: Any) -> go.Figure:
    """Observed share of human "A" against the AI's mean predicted p_a per bin (marker size
    ~ count), with the diagonal of perfect calibration. Two traces."""
    bins = [b for b in (_get(report, "calibration") or []) if (_get(b, "n") or 0) > 0
            and _num(_get(b, "mean_predicted")) is not None and _num(_get(b, "observed")) is not None]
    if not bins:
        return empty_figure("Calibration: no audited A/B decisions yet",
                            "Needs human A/B decisions on comparisons the AI gave a probability.")
    counts = [int(_get(b, "n")) for b in bins]
    biggest = max(counts)
    fig = go.Figure([
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                   line={"dash": "dash", "color": "#999"}, hoverinfo="skip"),
        go.Scatter(
            x=[_num(_get(b, "mean_predicted")) for b in bins],
            y=[_num(_get(b, "observed")) for b in bins],
            mode="lines+markers+text", name="AI judge",
            marker={"size": [10 + 20 * c / biggest for c in counts], "color": _COLORS["overall"]},
            text=[f"n={c}" for c in counts], textposition="top center",
            customdata=[[_fmt(_get(b, "lo")), _fmt(_get(b, "hi")), c] for b, c in zip(bins, counts)],
            hovertemplate="bin %{customdata[0]}–%{customdata[1]}<br>predicted %{x:.2f}<br>"
                          "observed %{y:.2f}<br>n = %{customdata[2]}<extra></extra>",
        ),
    ])
    fig.update_layout(title={"text": f"Calibration of the AI's P(A better) ({sum(counts)} audited A/B decisions)"},
                      xaxis={"title": {"text": "mean predicted P(A better)"}, "range": [-0.02, 1.02]},
                      yaxis={"title": {"text": "observed share of human 'A'"}, "range": [-0.02, 1.08]},
                      template="plotly_white", legend=_LEGEND)
    return fig


def _reliability_bins(validation: Any) -> list[Any]:
    """A validation's reliability bins that hold pairs with a probability."""
    metrics = _get(validation, "metrics") or {}
    return [b for b in (_get(metrics, "reliability") or []) if (_num(_get(b, "n")) or 0) > 0
            and _num(_get(b, "mean_p_a")) is not None and _num(_get(b, "freq_a")) is not None]


def _validation_name(v: Any) -> str:
    return (f"{_get(v, 'judge', '?')} · {_get(v, 'mode', '?')} · {_get(v, 'gold', '?')}/{_get(v, 'split', '?')}"
            f" ({_get(v, 'run_id', '?')})")


def reliability_figure(validations: Sequence[Any] | None, newest: int = 4) -> go.Figure:
    """Reliability diagram of judge validations against gold labels: per bin of P(A better),
    the observed share of pairs whose better answer was A against the mean predicted P(A)
    (marker size ~ pairs in the bin, the count as text), with the diagonal of perfect
    calibration. One line per validation among the ``newest`` (the input is newest first;
    validations without probabilities, e.g. all unparsed, are left out)."""
    if not validations:
        return empty_figure("Reliability: no validations yet",
                            "Validate a judge against a gold set to see how far its P(A) can be trusted.")
    shown = [(v, bins) for v in list(validations)[:newest] if (bins := _reliability_bins(v))]
    if not shown:
        return empty_figure("Reliability: the newest validations have no probabilities",
                            "Their verdicts carried no P(A) (unparsed, or a mode without one).")
    biggest = max(int(_num(_get(b, "n")) or 0) for _, bins in shown for b in bins)
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                               line={"dash": "dash", "color": "#999"}, hoverinfo="skip"))
    for i, (v, bins) in enumerate(shown):
        counts = [int(_num(_get(b, "n")) or 0) for b in bins]
        fig.add_trace(go.Scatter(
            x=[_num(_get(b, "mean_p_a")) for b in bins], y=[_num(_get(b, "freq_a")) for b in bins],
            mode="lines+markers+text", name=_validation_name(v),
            marker={"size": [8 + 16 * c / biggest for c in counts], "color": _PALETTE[i % len(_PALETTE)]},
            line={"color": _PALETTE[i % len(_PALETTE)]},
            text=[f"n={c}" for c in counts], textposition="top center",
            customdata=[[_fmt(_get(b, "lo"), ".1f"), _fmt(_get(b, "hi"), ".1f"), c] for b, c in zip(bins, counts)],
            hovertemplate="bin %{customdata[0]}–%{customdata[1]}<br>mean P(A) %{x:.2f}<br>"
                          "A was better %{y:.0%}<br>n = %{customdata[2]} pairs<extra></extra>",
        ))
    fig.update_layout(title={"text": f"Reliability against gold labels (newest {len(shown)} validation"
                                     f"{'s' if len(shown) > 1 else ''})"},
                      xaxis={"title": {"text": "mean predicted P(A better)"}, "range": [-0.02, 1.02]},
                      yaxis={"title": {"text": "observed share where A was better"}, "range": [-0.02, 1.08],
                             "tickformat": ".0%"},
                      template="plotly_white", legend=_LEGEND)
    return fig


BUCKET_SECONDS = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}
"""Length of each time bucket :func:`cai_core.labels.agreement.label_counts_over_time` groups by."""


def label_counts_figure(rows: Sequence[Mapping[str, Any]] | None, bucket: str = "hour") -> go.Figure:
    """Stacked bars of labels per time bucket, AI verdicts on top and human audits below
    (shared time axis), from :func:`cai_core.labels.agreement.label_counts_over_time` rows grouped
    by ``bucket``. One trace per (source, label). Each bar covers its bucket (less a gap) and
    the axis spans at least three buckets: plotly would size a lone bar from its own trace
    (a millisecond: invisible) and zoom a single bucket down to sub-millisecond ticks."""
    series: dict[tuple[str, str], dict[Any, int]] = {}
    for r in rows or []:
        if not isinstance(r, Mapping) or r.get("time") is None:
            continue
        key = (str(r.get("source", "?")), str(r.get("label", "?")))
        points = series.setdefault(key, {})
        points[r["time"]] = points.get(r["time"], 0) + int(_num(r.get("count")) or 0)
    if not series:
        return empty_figure("Labels over time: nothing labelled yet", "Judge or audit comparisons to fill this chart.")
    sources = sorted({src for src, _ in series}, key=lambda x: (x != "ai", x))  # AI first
    titles = {"ai": "AI verdicts", "human": "human audits (standing)"}
    fig = make_subplots(rows=len(sources), cols=1, shared_xaxes=True, vertical_spacing=0.12,
                        subplot_titles=[titles.get(src, src) for src in sources])
    seconds = BUCKET_SECONDS.get(bucket, 3600)
    for (source, label), points in sorted(series.items(), key=lambda kv: (sources.index(kv[0][0]), kv[0][1])):
        xs = sorted(points)
        row = sources.index(source) + 1
        fig.add_trace(go.Bar(
            x=xs, y=[points[x] for x in xs], name=f"{source}: {label}", legendgroup=source,
            # each bar over its bucket (date_trunc gives the bucket's start), one bucket wide less a gap
            xperiod=seconds * 1000, xperiodalignment="middle", width=[seconds * 1000 * 0.8] * len(xs),
            marker_color=_COLORS.get(label),
            hovertemplate=f"{source} {label}<br>%{{x}} (one {bucket})<br>%{{y}} labels<extra></extra>",
        ), row=row, col=1)
        fig.update_yaxes(title_text="labels", row=row, col=1)
    times = sorted({t for points in series.values() for t in points})
    if all(hasattr(t, "timestamp") for t in times):
        from datetime import timedelta

        lo, hi = times[0], times[-1] + timedelta(seconds=seconds)  # the buckets' starts to the last one's end
        if hi - lo < timedelta(seconds=3 * seconds):  # at least three buckets wide
            pad = (timedelta(seconds=3 * seconds) - (hi - lo)) / 2
            lo, hi = lo - pad, hi + pad
        fig.update_xaxes(range=[lo, hi])
    fig.update_xaxes(title_text=f"time (one bar per {bucket})", row=len(sources), col=1)
    fig.update_layout(title={"text": "Labels over time"}, barmode="stack", template="plotly_white",
                      height=max(320, 240 * len(sources)))
    return fig


def training_curves_figure(metrics: Sequence[Mapping[str, Any]] | None,
                           keys: Sequence[str] = ("loss", "reward", "kl")) -> go.Figure:
    """One subplot and line per key that was logged (x = step), stacked with a shared x axis
    because loss, reward and KL live on unrelated scales."""
    if not metrics:
        return empty_figure("no metrics yet", "Curves appear as the training job logs steps.")
    present: list[tuple[str, list[float], list[float]]] = []
    for key in keys:
        pts = []
        for i, m in enumerate(metrics):
            y = _num(m.get(key)) if isinstance(m, Mapping) else None
            if y is None:
                continue
            x = _num(m.get("step"))
            pts.append((x if x is not None else float(i), y))
        if pts:
            pts.sort(key=lambda p: p[0])
            present.append((key, [p[0] for p in pts], [p[1] for p in pts]))
    if not present:
        return empty_figure(f"no metrics yet (none of {', '.join(keys)} logged)")
    fig = make_subplots(rows=len(present), cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=[k for k, _, _ in present])
    for i, (key, xs, ys) in enumerate(present, start=1):
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers" if len(xs) < 50 else "lines", name=key,
                                 line={"color": _PALETTE[(i - 1) % len(_PALETTE)]}), row=i, col=1)
        fig.update_yaxes(title_text=key, row=i, col=1)
    fig.update_xaxes(title_text="step", row=len(present), col=1)
    fig.update_layout(title={"text": "Training curves"}, template="plotly_white", showlegend=False,
                      height=max(320, 220 * len(present)))
    return fig


def _spread(upper: Any, lower: Any) -> float:
    """upper - lower for an error bar; 0 when either end is missing."""
    u, lo = _num(upper), _num(lower)
    return 0.0 if u is None or lo is None else max(0.0, u - lo)


def _report_dict(report: Any) -> Mapping[str, Any]:
    if report is None:
        return {}
    if not isinstance(report, Mapping) and callable(getattr(report, "to_dict", None)):
        return report.to_dict()
    return report if isinstance(report, Mapping) else {}


def win_rate_figure(report_dict: Any) -> go.Figure:
    """Grouped bars: each model's win rate against each opponent (ties count half), with
    Wilson 95 % error bars and a dotted line at 50 %. One trace per opponent."""
    report = _report_dict(report_dict)
    rows = [w for w in (report.get("win_rates") or []) if _num(w.get("rate")) is not None]
    if not rows:
        return empty_figure("Win rates: no judged comparisons yet", "Run an evaluation to compare models.")
    order = list(report.get("model_names") or [m.get("name") if isinstance(m, dict) else m for m in report.get("models") or []])
    for w in rows:  # models missing from the list still get a place, after the listed ones
        for m in (w.get("model"), w.get("opponent")):
            if m not in order:
                order.append(m)
    fig = go.Figure()
    for i, opp in enumerate(o for o in order if any(w.get("opponent") == o for w in rows)):
        mine = sorted((w for w in rows if w.get("opponent") == opp), key=lambda w: order.index(w.get("model")))
        rates = [_num(w["rate"]) for w in mine]
        fig.add_trace(go.Bar(
            x=[str(w.get("model")) for w in mine], y=rates, name=f"vs {opp}",
            marker_color=_PALETTE[i % len(_PALETTE)],
            error_y={"type": "data", "symmetric": False,
                     "array": [_spread(w.get("hi"), r) for w, r in zip(mine, rates)],
                     "arrayminus": [_spread(r, w.get("lo")) for w, r in zip(mine, rates)]},
            customdata=[[w.get("wins", 0), w.get("losses", 0), w.get("ties", 0), w.get("unparsed", 0),
                         _fmt(w.get("lo"), ".0%"), _fmt(w.get("hi"), ".0%")] for w in mine],
            hovertemplate="%{x} " + f"vs {opp}" + "<br>win rate %{y:.0%} [%{customdata[4]}–%{customdata[5]}]"
                          "<br>%{customdata[0]} W / %{customdata[1]} L / %{customdata[2]} T"
                          "<br>%{customdata[3]} unparsed<extra></extra>",
        ))
    fig.add_hline(y=0.5, line_dash="dot", line_color="#999")
    fig.update_layout(barmode="group")
    return _rate_layout(fig, f"Head-to-head win rates ({report.get('prompts', '?')} prompts; ties count half; "
                             "95 % Wilson interval)", "model", "win rate")


def response_rates_figure(report_dict: Any) -> go.Figure:
    """Stacked bars per model: share of comply / objection / evasive / incoherent answers
    (counts in the hover). Four traces."""
    report = _report_dict(report_dict)
    rows = [r for r in (report.get("response_rates") or []) if (r.get("n") or 0) > 0]
    if not rows:
        return empty_figure("Responses: no classified answers yet", "Run an evaluation to classify model answers.")
    models = [str(r.get("model")) for r in rows]
    fig = go.Figure()
    for cls in _RESPONSE_CLASSES:
        # Reports stored before the incoherent class counted empty answers instead.
        counts = [int(r.get(cls) or (r.get("empty") if cls == "incoherent" else 0) or 0) for r in rows]
        fig.add_trace(go.Bar(
            x=models, y=[c / r["n"] for c, r in zip(counts, rows)], name=cls, marker_color=_COLORS[cls],
            customdata=[[c, r["n"]] for c, r in zip(counts, rows)],
            hovertemplate=f"%{{x}}<br>{cls} %{{y:.0%}} (%{{customdata[0]}} of %{{customdata[1]}})<extra></extra>",
        ))
    fig.update_layout(barmode="stack")
    return _rate_layout(fig, "Responses to red-team prompts (harmless and non-evasive = objection)",
                        "model", "share of answers")
