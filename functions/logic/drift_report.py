"""Render a drift report as one self-contained HTML page: inline CSS and SVG, no script, no
network. Every value taken from the report is escaped."""

from __future__ import annotations

from html import escape

from functions.models.drift import DriftReport, FeatureDrift, FeatureVerdict, Histogram, ModelVerdict

_VERDICT_COLOURS: dict[str, str] = {
    FeatureVerdict.DRIFT: "#c0392b",  # also ModelVerdict.DRIFT / NO_DRIFT: same strings
    FeatureVerdict.NO_DRIFT: "#1e8449",
    FeatureVerdict.INSUFFICIENT_DATA: "#7f8c8d",
    FeatureVerdict.MISSING_COLUMN: "#d68910",
    FeatureVerdict.WRONG_TYPE: "#d68910",
    ModelVerdict.NO_DATA: "#7f8c8d",
    ModelVerdict.SCHEMA_MISMATCH: "#d68910",
    "ok": "#1e8449",
    "insufficient_labels": "#7f8c8d",
    "pass": "#1e8449",  # the data-quality and overall verdicts
    "fail": "#c0392b",
    "inconclusive": "#7f8c8d",
    "no_reference": "#7f8c8d",
    "no_contract": "#7f8c8d",
}
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff;font-weight:600;font-size:13px}
table{border-collapse:collapse;font-size:13px} td,th{padding:4px 8px;border-bottom:1px solid #e5e5e5;text-align:left}
th{background:#f7f7f7} td.n{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:14px}
.card{border:1px solid #e2e2e2;border-radius:6px;padding:10px}
.card h3{font-size:14px;margin:0 0 6px} .muted{color:#777;font-size:12px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px;vertical-align:middle}
"""
_REF, _CUR = "#9aa5b1", "#2e86de"


def _fmt(value: float | int | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    if value != 0 and (abs(value) < 10 ** -(digits - 1) or abs(value) >= 10**6):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


def _badge(verdict: str) -> str:
    colour = _VERDICT_COLOURS.get(verdict, "#c0392b")
    return f'<span class="badge" style="background:{colour}">{escape(verdict.replace("_", " "))}</span>'


def histogram_svg(hist: Histogram, width: int = 360, height: int = 110) -> str:
    """Reference (grey) and current (blue) shares side by side per bucket, with first/last labels."""
    n = len(hist.labels)
    if n == 0:
        return ""
    top = max([*hist.reference, *hist.current, 1e-12])
    plot_h = height - 18
    slot = width / n
    bar = max(slot / 2 - 0.3, 0.4)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">'
    ]
    for i, (r, c) in enumerate(zip(hist.reference, hist.current, strict=True)):
        x = i * slot
        for offset, share, colour in ((0.0, r, _REF), (bar, c, _CUR)):
            h = share / top * plot_h
            if h > 0:
                parts.append(
                    f'<rect x="{x + offset:.2f}" y="{plot_h - h:.2f}" width="{bar:.2f}" height="{h:.2f}" '
                    f'fill="{colour}"><title>{escape(hist.labels[i])}: {"reference" if offset == 0 else "current"} '
                    f"{share:.2%}</title></rect>"
                )
    parts.append(f'<line x1="0" y1="{plot_h}" x2="{width}" y2="{plot_h}" stroke="#999" stroke-width="0.5"/>')
    ticks = [0, n // 2, n - 1] if n > 2 else list(range(n))
    for i in ticks:
        anchor = "start" if i == 0 else "end" if i == n - 1 else "middle"
        x = 0 if i == 0 else width if i == n - 1 else (i + 0.5) * slot
        parts.append(
            f'<text x="{x:.1f}" y="{height - 4}" font-size="10" text-anchor="{anchor}" fill="#555">'
            f"{escape(hist.labels[i][:18])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _stats_rows(f: FeatureDrift) -> list[tuple[str, str]]:
    rows = [
        ("p (test)", _fmt(f.p_value)),
        ("p adjusted", _fmt(f.p_value_adjusted)),
        ("values ref / cur", f"{_fmt(f.reference_count)} / {_fmt(f.current_count)}"),
        ("null fraction ref / cur", f"{_fmt(f.reference_null_fraction)} / {_fmt(f.current_null_fraction)}"),
        ("p null fraction / adjusted", f"{_fmt(f.null_p_value)} / {_fmt(f.null_p_value_adjusted)}"),
    ]
    if f.distribution_skipped:
        rows.append(("distribution test", f"not run: {f.distribution_skipped}"))
    if f.numeric:
        s = f.numeric
        rows += [
            ("KS D", _fmt(s.ks_d)),
            ("PSI", _fmt(s.psi)),
            ("Wasserstein (in std)", f"{_fmt(s.wasserstein)} ({_fmt(s.wasserstein_std)})"),
            ("mean ref / cur", f"{_fmt(s.reference_mean)} / {_fmt(s.current_mean)}"),
            ("below / above range", f"{s.below_range_fraction:.2%} / {s.above_range_fraction:.2%}"),
        ]
    if f.categorical:
        c = f.categorical
        rows += [
            ("chi-square (dof)", f"{_fmt(c.chi2)} ({c.chi2_dof})"),
            ("Jensen-Shannon distance", _fmt(c.js_distance)),
            ("PSI", _fmt(c.psi)),
            ("unseen ref / cur", f"{c.reference_unseen_fraction:.2%} / {c.unseen_fraction:.2%}"),
        ]
    return rows


def _card(f: FeatureDrift) -> str:
    stats = "".join(f'<tr><td>{escape(k)}</td><td class="n">{escape(v)}</td></tr>' for k, v in _stats_rows(f))
    critical = " &middot; critical" if f.critical else ""
    return (
        f'<div class="card"><h3>{escape(f.name)} {_badge(f.verdict)}</h3>'
        f'<div class="muted">{escape(f.kind)} &middot; {escape(f.type)}{critical} &middot; {escape(f.reason)}</div>'
        f"{histogram_svg(f.histogram) if f.histogram else ''}"
        f"<table>{stats}</table></div>"
    )


def _effects(f: FeatureDrift) -> tuple[float | None, float | None]:
    """(KS D or JS distance, PSI)."""
    if f.numeric:
        return f.numeric.ks_d, f.numeric.psi
    if f.categorical:
        return f.categorical.js_distance, f.categorical.psi
    return None, None


def _overview_row(f: FeatureDrift) -> str:
    only_nulls = ' <span class="muted">null fraction only</span>' if f.distribution_skipped else ""
    return (
        f"<tr><td>{escape(f.name)}</td><td>{escape(f.kind)}</td><td>{_badge(f.verdict)}{only_nulls}</td>"
        f'<td class="n">{_fmt(f.p_value_adjusted)}</td>'
        f'<td class="n">{_fmt(_effects(f)[0])}</td><td class="n">{_fmt(_effects(f)[1])}</td>'
        f'<td class="n">{_fmt(f.reference_null_fraction)} &rarr; {_fmt(f.current_null_fraction)}</td>'
        f'<td class="n">{_fmt(f.null_p_value_adjusted)}</td></tr>'
    )


def render_html(report: DriftReport) -> str:
    """The whole report as one HTML document."""
    window = (
        f"{report.window_start.isoformat() if report.window_start else '?'} &rarr; "
        f"{report.window_end.isoformat() if report.window_end else '?'}"
    )
    summary = [
        ("model", escape(report.model)),
        ("reference version", str(report.version)),
        ("versions seen in the window", escape(", ".join(map(str, report.versions_seen)) or "-")),
        ("window", window),
        ("rows", _fmt(report.row_count)),
        ("rows kept aside by compaction", _fmt(report.rejected_rows)),
        ("shadow rows (not counted twice)", _fmt(report.shadow_rows)),
        ("features checked / drifted", f"{report.checked_features} / {len(report.drifted_features)}"),
        ("drift share", f"{report.drift_share:.1%} (threshold {report.config.drift_share:.0%})"),
        ("check", escape(report.check_id)),
        ("created", escape(report.created_at.isoformat())),
    ]
    config = escape(report.config.model_dump_json(indent=None))
    overview = "".join(_overview_row(f) for f in report.features)
    perf = report.performance
    performance = (
        f"<h2>Performance {_badge(perf.verdict)}</h2><p>{escape(perf.reason)}</p>"
        f'<p class="muted">{perf.matched} labelled predictions of {perf.labels} labels '
        f"({perf.ambiguous_requests_rows} rows of multi-row requests not joined)</p>"
        "<table><tr><th>metric</th><th>window</th><th>at registration</th><th>worse by</th></tr>"
        + "".join(
            f'<tr><td>{escape(m.name)}</td><td class="n">{_fmt(m.value)}</td><td class="n">{_fmt(m.reference)}</td>'
            f'<td class="n">{_fmt(m.drop)}{" (drop)" if m.dropped else ""}</td></tr>'
            for m in perf.metrics
        )
        + "</table>"
        if perf is not None
        else ""
    )
    problems = (
        "<h2>Problems</h2><ul>" + "".join(f"<li>{escape(p)}</li>" for p in report.problems) + "</ul>"
        if report.problems
        else ""
    )
    overall = report.overall
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Drift report: {escape(report.model)} v{report.version}</title><style>{_CSS}</style></head><body>"
        f"<h1>Drift report: {escape(report.model)} {_badge(overall.verdict if overall else report.verdict)}</h1>"
        f"<p>{escape(overall.reason if overall else report.reason)}</p>"
        f"{_verdicts_html(report)}"
        "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in summary) + "</table>"
        f"{problems}{performance}"
        f"<h2>Inputs {_badge(report.verdict)}</h2><p>{escape(report.reason)}</p>"
        "<table><tr><th>feature</th><th>kind</th><th>verdict</th><th>distribution p adjusted</th>"
        "<th>KS D / JS</th><th>PSI</th><th>null fraction ref &rarr; cur</th><th>null p adjusted</th></tr>"
        f"{overview}</table>"
        f'<h2>Distributions</h2><p class="legend"><span style="background:{_REF}"></span>reference (training)'
        f'<span style="background:{_CUR}"></span>current window</p>'
        f'<div class="grid">{"".join(_card(f) for f in report.features)}</div>'
        f"{_outputs_html(report)}{_quality_html(report)}"
        f'<h2>Configuration</h2><p class="muted">{config}</p>'
        "</body></html>"
    )


# ---------------------------------------------------------------- outputs, data quality, verdicts


def _verdicts_html(report: DriftReport) -> str:
    """One verdict per section and the overall one (reports without the sections: inputs only)."""
    rows = [("inputs", report.verdict.value, report.reason)]
    if report.outputs is not None:
        rows.append(("outputs", report.outputs.verdict, report.outputs.reason))
    if report.data_quality is not None:
        rows.append(("data quality", report.data_quality.verdict, report.data_quality.reason))
    if report.overall is not None:
        rows.append(("overall", report.overall.verdict, report.overall.reason))
    return (
        "<table><tr><th>section</th><th>verdict</th><th>why</th></tr>"
        + "".join(f"<tr><td>{k}</td><td>{_badge(v)}</td><td>{escape(r)}</td></tr>" for k, v, r in rows)
        + "</table>"
    )


def _outputs_html(report: DriftReport) -> str:
    out = report.outputs
    if out is None:
        return ""
    head = (
        f"<h2>Outputs (prediction drift) {_badge(out.verdict)}</h2><p>{escape(out.reason)}</p>"
        f'<p class="muted">{_fmt(out.rows)} outputs of v{report.version} in the window (shadow scorings and other '
        f"versions' answers not counted) against {_fmt(out.reference_rows)} holdout outputs at evaluation</p>"
    )
    if not out.outputs:
        return head
    overview = "".join(_overview_row(f) for f in out.outputs)
    return (
        f"{head}<table><tr><th>output</th><th>kind</th><th>verdict</th><th>distribution p adjusted</th>"
        "<th>KS D / JS</th><th>PSI</th><th>null fraction ref &rarr; cur</th><th>null p adjusted</th></tr>"
        f'{overview}</table><div class="grid">{"".join(_card(f) for f in out.outputs)}</div>'
    )


def _quality_html(report: DriftReport) -> str:
    dq = report.data_quality
    if dq is None:
        return ""
    contract = f"contract {escape(dq.dataset)} v{dq.contract_version}, " if dq.dataset else ""
    head = (
        f"<h2>Data quality {_badge(dq.verdict)}</h2><p>{escape(dq.reason)}</p>"
        f'<p class="muted">{contract}{_fmt(dq.rows)} captured rows; a rule fails above '
        f"{dq.max_violation_rate:.2%} of them</p>"
    )
    if not dq.rules:
        return head
    rows = "".join(
        f"<tr><td>{escape(r.rule)}</td><td>{_badge('fail' if r.failed else 'pass')}</td>"
        f'<td class="n">{_fmt(r.violations)}</td><td class="n">{r.rate:.3%}</td>'
        f"<td>{escape(', '.join(r.request_ids))}</td>"
        f"<td>{escape(', '.join('null' if v is None else v for v in r.values))}</td></tr>"
        for r in dq.rules
    )
    return (
        f"{head}<table><tr><th>rule</th><th>verdict</th><th>violations</th><th>rate</th>"
        f"<th>example request ids</th><th>their values</th></tr>{rows}</table>"
    )
