"""Lineage: the chain from a version back to the exact uploaded object, and from a prediction's
request id back to the version that answered it.

Every read is of a record that is never changed after the fact (versions keep their lineage
fields, dataset versions and run records stay, audit events are append-only), so the lineage of a
retired version resolves as well as that of the production one. A link that cannot be resolved is
named in `Lineage.missing` rather than failing the whole query.
"""

from __future__ import annotations

import json
from datetime import datetime

from functions.dal import approvals as approvals_dal
from functions.dal import audit as audit_dal
from functions.dal import batch_jobs as batch_jobs_dal
from functions.dal import datasets as datasets_dal
from functions.dal import lineage as lineage_dal
from functions.dal import registry as registry_dal
from functions.dal import runs as runs_dal
from functions.models.approvals import approval_id
from functions.models.audit import AuditEvent, model_target
from functions.models.errors import InvalidInput, NotFound
from functions.models.lineage import (
    MAX_BATCH_JOBS,
    MAX_LOOKUP_ROWS,
    MAX_OTHER_MATCHES,
    ApprovalLineage,
    BatchJobUse,
    CaptureMatch,
    Comparison,
    DatasetLineage,
    EvaluationLineage,
    Explanation,
    Lineage,
    ProductionPeriod,
    RunLineage,
)
from functions.models.registry import ModelVersion
from functions.models.settings import Settings

MAX_CAPTURE_OBJECTS = 2_000  # objects scanned by explain before giving up


def version_or_404(settings: Settings, model: str, number: int) -> ModelVersion:
    found = registry_dal.get_version(settings.registry_table, model, number)
    if found is None:
        raise NotFound(f"model {model!r} has no version {number}")
    return found


def periods(version: ModelVersion) -> list[ProductionPeriod]:
    return [
        ProductionPeriod(
            started=p.get("from", ""),
            ended=p.get("to", ""),
            promoted_by=p.get("promoted_by", ""),
            ended_by=p.get("ended_by", ""),
            ended_as=p.get("ended_as", ""),
            reason=p.get("reason", ""),
        )
        for p in version.production_periods
    ]


def version_events(settings: Settings, model: str, number: int) -> list[AuditEvent]:
    return [
        e for e in audit_dal.list_events(settings.metadata_table, target=model_target(model)) if e.version == number
    ]


def _run(settings: Settings, v: ModelVersion, missing: list[str]) -> RunLineage:
    run = RunLineage(
        run_id=v.run_id.split("#restore-", 1)[0],
        code_version=v.code_version,
        spec_name=v.spec_name,
        spec_version=v.spec_version,
        parameters=dict(v.parameters),
        seed=v.seed,
        started_by=v.started_by,
        source=v.source,
        imported=v.imported,
    )
    if not v.run_id:
        missing.append("run: the version records no run id")
        return run
    run_id = v.run_id.split("#restore-", 1)[0]  # a restored version keeps its original run
    try:
        record = runs_dal.get_run(settings.metadata_table, v.model, run_id)
    except NotFound as exc:
        missing.append(f"run: {exc.message}")
        return run
    return run.model_copy(
        update={
            "execution_arn": record.execution_arn,
            "status": record.status.value,
            "started_at": record.started_at,
            "ended_at": record.ended_at,
            "started_by": v.started_by or record.started_by,
        }
    )


def _dataset(settings: Settings, v: ModelVersion, missing: list[str]) -> DatasetLineage:
    ds = DatasetLineage(
        dataset=v.dataset,
        version=v.dataset_version,
        key=v.data_key,
        version_id=v.data_version_id,
        sha256=v.data_sha256,
        contract_version=v.contract_version,
    )
    if not v.dataset or v.dataset_version < 1:
        missing.append("dataset: the version records no dataset version")
        return ds
    try:
        record = datasets_dal.get_version(settings.metadata_table, v.dataset, v.dataset_version)
    except NotFound as exc:
        missing.append(f"dataset: {exc.message}")
        return ds
    if record.sha256 != v.data_sha256 or record.key != v.data_key:
        missing.append(
            f"dataset: {v.dataset}@{v.dataset_version} now records {record.key} sha256 {record.sha256}, "
            f"the version trained on {v.data_key} sha256 {v.data_sha256}"
        )
    ds = ds.model_copy(
        update={
            "bucket": record.bucket,
            "version_id": v.data_version_id or record.version_id,
            "size_bytes": record.size_bytes,
            "rows": record.rows,
            "report_uri": record.report_uri,
            "source_key": record.source_key,
            "source_version_id": record.source_version_id,
            "uploaded_by": record.uploaded_by,
            "created_at": record.created_at,
            "contract_version": v.contract_version or record.contract_version,
        }
    )
    if not ds.version_id:
        missing.append("dataset: no S3 version id recorded (an unversioned bucket?)")
    if record.report_uri:
        try:
            ds = ds.model_copy(
                update={"report_verdict": str(lineage_dal.read_json(record.report_uri).get("verdict", ""))}
            )
        except NotFound as exc:
            missing.append(f"validation report: {exc.message}")
    return ds


def _approval(settings: Settings, v: ModelVersion) -> tuple[ApprovalLineage | None, Comparison | None]:
    stored = approvals_dal.get(settings.metadata_table, approval_id(v.model, v.version))
    if stored is None:
        return None, None
    request = stored.request
    decision = request.decision
    approval = ApprovalLineage(
        status=request.status.value,
        who=decision.who if decision else "",
        at=decision.at if decision else None,
        reason=decision.reason if decision else "",
        requested_at=request.requested_at,
    )
    c = request.comparison
    comparison = Comparison(
        production_version=c.production_version,
        production_metrics=dict(c.production_metrics),
        primary_metric=c.primary_metric,
        delta=c.delta,
        source="approval",
    )
    return approval, comparison


def _approval_from_events(events: list[AuditEvent]) -> ApprovalLineage | None:
    """Versions approved without a request (e.g. by the release logic directly): the audit event."""
    for e in reversed(events):
        if e.action == "version.approve":
            return ApprovalLineage(status="APPROVED", who=e.who, at=e.time, reason=e.reason)
    return None


def _comparison_from_gates(v: ModelVersion) -> Comparison:
    for gate in v.gates:
        if gate.gate == "max_regression":
            delta = -gate.value if gate.value is not None else None  # the gate records the worsening
            return Comparison(primary_metric=v.primary_metric, delta=delta, source="gates")
    return Comparison(primary_metric=v.primary_metric)


def batch_jobs(settings: Settings, model: str, number: int) -> list[BatchJobUse]:
    """The model's batch jobs that scored with version `number`, newest first."""
    return [
        BatchJobUse(
            job_id=j.job_id,
            status=j.status.value,
            requested_by=j.requested_by,
            requested_at=j.requested_at,
            finished_at=j.finished_at,
            rows=j.rows,
            scored=j.scored,
            rejected=j.rejected,
            output_prefix=j.output_prefix,
        )
        for j in batch_jobs_dal.list_jobs(settings.metadata_table, model)
        if j.version == number
    ]


def lineage(settings: Settings, model: str, number: int) -> Lineage:
    v = version_or_404(settings, model, number)
    missing: list[str] = []
    events = version_events(settings, model, number)
    approval, comparison = _approval(settings, v)
    if approval is None:
        approval = _approval_from_events(events)
    if approval is None:
        missing.append("approval: no approval request or approve event for this version")
    evaluation = EvaluationLineage(
        metrics=dict(v.metrics),
        primary_metric=v.primary_metric,
        gates=list(v.gates),
        passed=all(g.passed for g in v.gates),
        comparison=comparison or _comparison_from_gates(v),
    )
    jobs = batch_jobs(settings, model, number)
    return Lineage(
        model=v.model,
        version=v.version,
        status=v.status,
        created_at=v.created_at,
        production_periods=periods(v),
        run=_run(settings, v, missing),
        dataset=_dataset(settings, v, missing),
        evaluation=evaluation,
        approval=approval,
        artifacts=dict(v.artifacts),
        features=list(v.features),
        graph_inputs=dict(v.graph_inputs),
        pipeline_features=list(v.pipeline_features),
        derived=list(v.derived),
        feature_views=list(v.feature_views),
        event_time=v.event_time,
        reasons=list(v.reasons),
        events=events,
        missing=missing,
        batch_jobs=jobs[:MAX_BATCH_JOBS],
        batch_jobs_total=len(jobs),
    )


# -- explain -----------------------------------------------------------------------------------
def find_captures(
    settings: Settings, request_id: str, *, model: str, since: datetime | None = None
) -> tuple[list[CaptureMatch], bool]:
    """Every captured request of `model` with `request_id` (newest first; the shadow's copy of a
    request is not another request), and whether every capture object in range was read.

    Request ids are chosen by callers, so one id may name several requests; the search is scoped
    to one model and reports them all rather than answering with the first."""
    if not request_id or len(request_id) > 128 or '"' in request_id or "\\" in request_id:
        raise InvalidInput("a request id is 1..128 characters without quotes or backslashes")
    if not model:
        raise InvalidInput("the model is required: request ids are chosen by callers, unique only within a model")
    if registry_dal.get_model(settings.registry_table, model) is None:
        raise NotFound(f"no model {model!r}")
    needle = f'"request_id":{json.dumps(request_id)}'
    since_day = since.strftime("%Y-%m-%d") if since else ""
    found: dict[tuple[int, str, str], CaptureMatch] = {}
    keys = lineage_dal.capture_keys(settings.data_bucket, model, since_day=since_day)
    for key in keys[:MAX_CAPTURE_OBJECTS]:
        for line in lineage_dal.capture_lines(settings.data_bucket, key):
            if needle not in line:
                continue
            row = json.loads(line)
            version, variant = row.get("version"), str(row.get("variant", ""))
            if row.get("request_id") != request_id or not isinstance(version, int) or variant == "shadow":
                continue
            when = str(row.get("time", ""))
            match = found.setdefault(
                (version, variant, when), CaptureMatch(version=version, variant=variant, time=when, capture_key=key)
            )
            lookups = row.get("lookups")
            if isinstance(lookups, dict) and len(match.lookups) < MAX_LOOKUP_ROWS:
                match.lookups.append(lookups)
    matches = sorted(found.values(), key=lambda m: (m.time, m.capture_key), reverse=True)
    searched_all = len(keys) <= MAX_CAPTURE_OBJECTS
    if not matches:
        if not searched_all:
            raise NotFound(
                f"request {request_id} not found in the newest {MAX_CAPTURE_OBJECTS} capture objects of {model}; "
                "narrow the search with --since"
            )
        raise NotFound(
            f"request {request_id} is in no capture object of {model} (not captured, sampled out, or not flushed yet)"
        )
    return matches, searched_all


def explain(settings: Settings, request_id: str, *, model: str, since: datetime | None = None) -> Explanation:
    matches, searched_all = find_captures(settings, request_id, model=model, since=since)
    newest, others = matches[0], matches[1:]
    return Explanation(
        request_id=request_id,
        model=model,
        version=newest.version,
        variant=newest.variant,
        time=newest.time,
        capture_key=newest.capture_key,
        lookups=newest.lookups,
        lineage=lineage(settings, model, newest.version),
        matches=len(matches),
        other_matches=others[:MAX_OTHER_MATCHES],
        searched_all=searched_all,
    )
