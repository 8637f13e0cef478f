"""Model cards: Markdown and HTML beside the version's artifacts, from the records alone.

    cards/<model>/versions/<%08d>/card.md   and   card.html   (artifacts bucket; a prefix of their own,
    so the roles that write cards cannot overwrite model artifacts under models/)

Written at registration and rewritten whenever the version's story changes (approval, release,
retirement, `stepwise card`); every rewrite renders from the current records, so a card is never
edited in place by hand. Intended use and limitations come from the spec's fields.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

from functions.dal import lineage as lineage_dal
from functions.dal import specs as specs_dal
from functions.logic import lineage as lineage_logic
from functions.models.errors import NotFound, StepwiseError
from functions.models.lineage import Lineage, ModelCard, RunLineage
from functions.models.registry import graph_input_names
from functions.models.settings import Settings
from functions.models.specs import TrainingSpec


def card_key(model: str, version: int, ext: str) -> str:
    return f"cards/{model}/versions/{version:08d}/card.{ext}"


def _spec(settings: Settings, name: str, version: int) -> TrainingSpec | None:
    if not name or version < 1:
        return None
    try:
        return specs_dal.get_spec(settings.metadata_table, name, version).spec
    except NotFound:
        return None


def _imported_lines(run: RunLineage) -> list[str]:
    """An imported version's origin; its ONNX graph is its own parity reference."""
    imp = run.imported
    if imp is None:
        return []
    return [
        f"- imported (trained elsewhere): import `{imp.import_id}` requested by `{imp.requested_by or '-'}`, "
        f"source `{imp.source_url or '-'}` at commit `{imp.source_commit or '-'}`, ONNX sha256 `{imp.sha256}`",
        "- ONNX parity: not applicable (no scikit-learn pipeline; ONNX Runtime on the graph is the reference)",
    ]


def _rows(rows: Iterable[tuple[object, ...]]) -> list[str]:
    return ["| " + " | ".join("" if v is None else str(v).replace("|", "\\|") for v in row) + " |" for row in rows]


def render_markdown(lin: Lineage, spec: TrainingSpec | None) -> str:
    """The card as Markdown (pure: records in, text out)."""
    ds, run, ev = lin.dataset, lin.run, lin.evaluation
    lines = [
        f"# Model card: {lin.model} version {lin.version}",
        "",
        f"**Status:** {lin.status.value}  ",
        f"**Registered:** {lin.created_at.isoformat()}",
        "",
        "## Intended use",
        "",
        (spec.intended_use or spec.description) if spec else "",
        "",
        "## Limitations",
        "",
        (spec.limitations if spec and spec.limitations else "Not stated in the training spec."),
        "",
        "## Data",
        "",
        f"- dataset `{ds.dataset}` version {ds.version} (contract version {ds.contract_version})",
        f"- object `s3://{ds.bucket}/{ds.key}` (S3 version id `{ds.version_id or '-'}`)",
        f"- sha256 `{ds.sha256}`, {ds.rows if ds.rows is not None else '?'} rows",
        f"- validation report `{ds.report_uri or '-'}` ({ds.report_verdict or 'verdict unknown'})",
        "",
        "## Training",
        "",
        f"- run `{run.run_id}` ({run.execution_arn or 'no execution arn'}), started by `{run.started_by or '-'}`",
        f"- spec `{run.spec_name}` version {run.spec_version}, code version `{run.code_version}`, seed {run.seed}",
        *_imported_lines(run),
        "",
        "## Features",
        "",
        "Requests name the features; each feeds the ONNX graph input beside it.",
        "",
        "| feature | type | graph input |",
        "| --- | --- | --- |",
        *_rows(
            (f.name, f.type, name)
            for f, name in zip(lin.features, graph_input_names(lin.features, lin.graph_inputs), strict=True)
        ),
        *_derived_section(lin),
        *_views_section(lin),
        "",
        "## Metrics",
        "",
        "| metric | value |",
        "| --- | --- |",
        *_rows((k, f"{v:.6g}" + (" (primary)" if k == ev.primary_metric else "")) for k, v in ev.metrics.items()),
        "",
        "## Gates",
        "",
        "| gate | verdict | value | threshold | reason |",
        "| --- | --- | --- | --- | --- |",
        *_rows((g.gate, "pass" if g.passed else "FAIL", g.value, g.threshold, g.reason) for g in ev.gates),
        "",
        "## Comparison with production",
        "",
    ]
    c = ev.comparison
    if c.production_version is None and c.delta is None:
        lines.append("No production version to compare with at evaluation.")
    else:
        lines.append(
            f"Against production version {c.production_version or '?'}: {c.primary_metric} delta "
            f"{'-' if c.delta is None else f'{c.delta:+.6g}'}"
        )
    lines += ["", "## Approval", ""]
    if lin.approval is None:
        lines.append("Not approved.")
    else:
        a = lin.approval
        lines.append(f"{a.status} by `{a.who or '-'}` at {a.at.isoformat() if a.at else '-'}: {a.reason or '-'}")
    if lin.production_periods:
        lines += ["", "## In production", ""]
        lines += [
            f"- from {p.started} to {p.ended or 'now'} (promoted by `{p.promoted_by or '-'}`"
            + (f", ended as {p.ended_as} by `{p.ended_by}`" if p.ended else "")
            + ")"
            for p in lin.production_periods
        ]
    if lin.reasons:
        lines += ["", "## Status history notes", "", *(f"- {r}" for r in lin.reasons)]
    lines += ["", "## Artifacts", "", "| name | uri | sha256 |", "| --- | --- | --- |"]
    lines += _rows((name, a.uri, a.sha256) for name, a in sorted(lin.artifacts.items()))
    return "\n".join(lines) + "\n"


def render_html(markdown: str, title: str) -> str:
    """A small, dependency-free rendering of the card's Markdown (headings, lists, tables, text)."""
    out = [
        "<!doctype html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title></head><body>',
    ]
    in_table = in_list = False
    for raw in markdown.splitlines():
        line = raw.rstrip()
        if in_list and not line.startswith("- "):
            out.append("</ul>")
            in_list = False
        if in_table and not line.startswith("|"):
            out.append("</table>")
            in_table = False
        if line.startswith("# "):
            out.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            out.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("- "):
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{html.escape(line[2:])}</li>")
        elif line.startswith("|"):
            cells = [c.strip().replace("\\|", "|") for c in line.strip("|").split(" | ")]
            if all(set(c) <= {"-", " "} for c in cells):
                continue
            tag = "th" if not in_table else "td"
            if not in_table:
                out.append("<table>")
                in_table = True
            out.append("<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>")
        elif line:
            out.append(f"<p>{html.escape(line)}</p>")
    if in_list:
        out.append("</ul>")
    if in_table:
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_card(settings: Settings, model: str, version: int) -> ModelCard:
    """Render the card from the current records and store it (Markdown and HTML)."""
    lin = lineage_logic.lineage(settings, model, version)
    spec = _spec(settings, lin.run.spec_name, lin.run.spec_version)
    markdown = render_markdown(lin, spec)
    bucket = settings.artifacts_bucket
    md_uri = lineage_dal.put_text(bucket, card_key(model, version, "md"), markdown, "text/markdown; charset=utf-8")
    html_uri = lineage_dal.put_text(
        bucket,
        card_key(model, version, "html"),
        render_html(markdown, f"{model} v{version}"),
        "text/html; charset=utf-8",
    )
    return ModelCard(model=model, version=version, markdown=markdown, markdown_uri=md_uri, html_uri=html_uri)


def refresh(settings: Settings, model: str, version: int) -> None:
    """Rewrite the card after its version's story changed (approval, retirement). The card is a view
    of the records: a failed write is logged and never fails the change that prompted it."""
    from functions.observability import logger

    if not settings.artifacts_bucket:
        return
    try:
        write_card(settings, model, version)
    except StepwiseError:
        logger.exception("model card of %s v%s not written", model, version)


def _derived_section(lin: Lineage) -> list[str]:
    """The derived features computed inside the ONNX graph, as the version was trained with them."""
    if not lin.derived:
        return []
    return [
        "",
        "### Derived features",
        "",
        "Computed inside the ONNX graph from the fields above; the pipeline takes "
        + ", ".join(f"`{f.name}`" for f in lin.pipeline_features)
        + ".",
        "",
        "| derived feature | type | expression |",
        "| --- | --- | --- |",
        *_rows((d.name, d.type, f"`{d.expression}`") for d in lin.derived),
    ]


def _views_section(lin: Lineage) -> list[str]:
    """The feature views the training set was joined from, point in time, and their sources."""
    if not lin.feature_views:
        return []
    return [
        "",
        "### Feature views",
        "",
        f"Joined point in time at each label's `{lin.event_time}` (the latest row at or before it, "
        "within the TTL; missing or expired values imputed by the pipeline).",
        "",
        "| view | version | features | source dataset | TTL (s) | matched | missing | expired |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *_rows(
            (
                u.view,
                u.version,
                ", ".join(f"`{f.name}`" for f in u.features),
                f"{u.source}@{u.source_version}",
                u.ttl_seconds,
                u.matched,
                u.missing,
                u.expired,
            )
            for u in lin.feature_views
        ),
    ]
