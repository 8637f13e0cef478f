"""A model's stored drift checks and one check's report with its verdict per section (the console's
Model and Drift pages). Imports no numpy/pyarrow: it runs in the API function."""

from __future__ import annotations

from functions.dal import monitoring as store
from functions.dal import registry as registry_dal
from functions.dal import reports as reports_dal
from functions.models.drift import (
    DriftCheckDetail,
    DriftCheckList,
    DriftCheckSummary,
    DriftReport,
    SectionVerdict,
)
from functions.models.errors import NotFound
from functions.models.settings import Settings

MAX_CHECKS = 100


def list_checks(model: str, settings: Settings, limit: int = MAX_CHECKS) -> DriftCheckList:
    """The model's latest checks, newest first; NotFound for an unknown model."""
    if registry_dal.get_model(settings.registry_table, model) is None:
        raise NotFound(f"no model {model!r}")
    found = store.recent_checks(settings.metadata_table, model, min(limit, MAX_CHECKS))
    return DriftCheckList(model=model, checks=[DriftCheckSummary.model_validate(c) for c in found])


def check_detail(model: str, check_id: str, settings: Settings) -> DriftCheckDetail:
    """One of the model's latest checks with its report's section verdicts and HTML text."""
    listed = list_checks(model, settings)
    check = next((c for c in listed.checks if c.check_id == check_id), None)
    if check is None:
        raise NotFound(f"no drift check {check_id!r} among the latest {MAX_CHECKS} of model {model!r}")
    report = DriftReport.model_validate_json(reports_dal.read_bytes(check.report_json))
    html = reports_dal.read_bytes(check.report_html).decode("utf-8", errors="replace")
    return DriftCheckDetail(check=check, sections=sections(report), html=html)


def sections(report: DriftReport) -> list[SectionVerdict]:
    """Each section's verdict, the overall one last (sections a report does not have are left out)."""
    found = [SectionVerdict(section="inputs", verdict=report.verdict.value, reason=report.reason)]
    if report.outputs is not None:
        found.append(SectionVerdict(section="outputs", verdict=report.outputs.verdict, reason=report.outputs.reason))
    if report.data_quality is not None:
        dq = report.data_quality
        found.append(SectionVerdict(section="data_quality", verdict=dq.verdict, reason=dq.reason))
    if report.performance is not None:
        perf = report.performance
        found.append(SectionVerdict(section="performance", verdict=perf.verdict, reason=perf.reason))
    if report.overall is not None:
        found.append(SectionVerdict(section="overall", verdict=report.overall.verdict, reason=report.overall.reason))
    return found
