"""One drift check of one model, end to end: load the reference profile (sha256 verified), compact
what is still raw in the window, stream the window's Parquet, write the JSON and HTML reports,
record the summary, and decide on retraining.

Closed hours (their end plus a grace period is past) are compacted once to Parquet in the data
bucket, with the rows that did not fit kept aside next to it (again only if capture objects arrive
later than the grace period); the open hour is compacted in memory
for this check only. Parquet is streamed from local files (the Lambda's /tmp), column chunk by
column chunk, so memory stays at the profile plus one column chunk.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from functions.dal import artifacts
from functions.dal import audit as audit_dal
from functions.dal import datasets as datasets_dal
from functions.dal import monitoring as store
from functions.dal import registry as registry_dal
from functions.dal import runs as runs_dal
from functions.logic.compaction import (
    PREDICTION,
    REQUEST_ID,
    VARIANT,
    compact_objects,
    rejected_to_jsonl_gz,
    to_parquet_bytes,
)
from functions.logic.drift import iter_parquet_row_groups
from functions.logic.drift_performance import evaluate, load_labels, matching_predictions
from functions.logic.drift_report import render_html
from functions.logic.drift_sections import WindowCheck
from functions.logic.retraining import Starter, TrainingTarget, decide_retraining, retrain
from functions.models.audit import AuditEvent, model_target
from functions.models.contracts import DataContract
from functions.models.drift import DriftCheckRequest, DriftCheckResult, DriftReport, RetrainingDecision
from functions.models.errors import Conflict, NotFound
from functions.models.profile import ReferenceProfile
from functions.models.registry import ModelVersion, monitored_derived
from functions.models.settings import Settings
from functions.observability import logger

GRACE = timedelta(minutes=10)  # captures of an hour may land this long after it ends (buffer flush)


def window_hours(end: datetime, hours: float) -> list[datetime]:
    """Start of each hour partition that overlaps (end - hours, end]."""
    start = end - timedelta(hours=hours)
    first = start.replace(minute=0, second=0, microsecond=0)
    count = math.ceil((end - first).total_seconds() / 3600)
    return [first + timedelta(hours=i) for i in range(count)]


def _reference(settings: Settings, req: DriftCheckRequest) -> tuple[ModelVersion, ReferenceProfile]:
    record = registry_dal.get_model(settings.registry_table, req.model)
    if record is None:
        raise NotFound(f"no model {req.model!r}")
    number = req.version or record.production_version
    if not number:
        raise NotFound(f"model {req.model!r} has no production version; name a version to check against")
    version = registry_dal.get_version(settings.registry_table, req.model, number)
    if version is None:
        raise NotFound(f"no version {number} of model {req.model!r}")
    artifact = version.artifacts.get("profile")
    if artifact is None:
        raise NotFound(f"{req.model} v{number} has no reference profile (artifacts['profile'])")
    return version, ReferenceProfile.from_bytes(artifacts.get_artifact(artifact, what="reference profile"))


def _contract(settings: Settings, version: ModelVersion) -> DataContract | None:
    """The data contract the version was trained under (None when it names none, or it is gone)."""
    if not (version.dataset and version.contract_version):
        return None
    try:
        return datasets_dal.get_contract(settings.metadata_table, version.dataset, version.contract_version).contract
    except NotFound:
        logger.warning(
            "the version's data contract is not found; data quality not checked",
            extra={"dataset": version.dataset, "contract_version": version.contract_version},
        )
        return None


def _hour_file(
    settings: Settings, version: ModelVersion, hour: datetime, now: datetime, workdir: Path
) -> tuple[Path | None, int, bool]:
    """A local Parquet file of one hour's captures: (path or None, rejected rows, compacted now)."""
    bucket, model = settings.data_bucket, version.model
    key = store.compacted_key(model, hour)
    local = workdir / f"{hour:%Y%m%d%H}.parquet"
    meta = store.head_metadata(bucket, key)
    raw_keys = store.list_keys(bucket, store.capture_prefix(model, hour))
    # compacted already, and no capture object arrived since (raw ones may have expired: fewer is fine)
    if meta is not None and len(raw_keys) <= int(meta.get("source-objects", "0")):
        return store.download(bucket, key, local), int(meta.get("rejected-rows", "0")), False
    if not raw_keys:
        return None, 0, False
    result = compact_objects(
        store.read_objects(bucket, raw_keys),
        [*version.features, *monitored_derived(version.pipeline_features, version.derived)],
        version.task,
        on_object_error=lambda i, exc: logger.warning("capture object is not gzip", extra={"key": raw_keys[i]}),
        lookup_views=[u.view for u in version.feature_views],
    )
    data = to_parquet_bytes(result.table)
    closed = hour + timedelta(hours=1) + GRACE <= now
    if closed:
        if result.rejected_lines:
            store.put(
                bucket, store.rejected_key(model, hour), rejected_to_jsonl_gz(result.rejected_lines), "application/gzip"
            )
        store.put(
            bucket,
            key,
            data,
            "application/vnd.apache.parquet",
            {
                "rejected-rows": str(result.rejected),
                "input-rows": str(result.input_rows),
                "source-objects": str(len(raw_keys)),
            },
        )
    if result.rejected:
        logger.warning(
            "captured rows kept aside",
            extra={"model": model, "hour": hour.isoformat(), "reasons": result.rejected_reasons},
        )
    local.write_bytes(data)
    return local, result.rejected, closed


_EMPTY_PREDICTIONS = pa.schema([("request_id", pa.string()), ("prediction", pa.string())]).empty_table()


def _labels(settings: Settings, model: str, start: datetime, end: datetime) -> pa.Table:
    """Feedback labels received in the window's days (feedback is partitioned by day)."""
    days = {(start + timedelta(days=i)).date() for i in range((end.date() - start.date()).days + 1)}
    keys = [k for day in sorted(days) for k in store.list_keys(settings.data_bucket, store.feedback_prefix(model, day))]
    return load_labels(store.read_objects(settings.data_bucket, keys))


def lifecycle_starter(settings: Settings) -> Starter:
    """Start the lifecycle workflow through the lifecycle's own entry point."""

    def start(target: TrainingTarget) -> tuple[str, bool]:
        from functions.logic.lifecycle import start_training  # only when a retraining starts

        arn, started, _ = start_training(
            settings,
            target.spec_name,
            target.dataset,
            target.dataset_version,
            started_by="drift-monitor",
            trigger=target.trigger,
        )
        return arn, started

    return start


def _training_target(settings: Settings, version: ModelVersion) -> TrainingTarget | None:
    """The current version's spec on the newest validated version of its dataset."""
    if not (version.spec_name and version.dataset):
        return None
    try:
        latest = datasets_dal.get_summary(settings.metadata_table, version.dataset).latest_version
    except NotFound:
        return None
    return TrainingTarget(version.spec_name, version.dataset, latest) if latest else None


def _retraining(
    settings: Settings,
    req: DriftCheckRequest,
    version: ModelVersion,
    trigger: str,
    check_id: str,
    now: datetime,
    starter: Callable[[Settings], Starter],
) -> RetrainingDecision:
    """Decide, start, record the decision, then its audit event. A decision this check already
    recorded (an earlier delivery that failed later) stands: no second start, no second record."""
    history = store.recent_decisions(settings.metadata_table, req.model)
    decision = next((d for d in history if d.check_id == check_id), None)
    if decision is None:
        decision = decide_retraining(
            model=req.model,
            verdict=trigger,
            check_id=check_id,
            now=now,
            policy=req.policy,
            runs=runs_dal.list_runs(settings.metadata_table, req.model),
            history=history,
            target=_training_target(settings, version),
        )
        decision = retrain(decision, starter(settings))  # named after the check: started at most once
        store.put_decision(settings.metadata_table, decision)
    event = AuditEvent(
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"stepwise:retraining:{req.model}:{check_id}").hex,
        time=decision.decided_at,
        who=req.requested_by or "drift-monitor",
        correlation_id=check_id,
        action=f"retraining.{decision.action}",
        target=model_target(req.model),
        after={"check_id": check_id, "started": decision.started, "execution": decision.execution_arn},
        reason=decision.reason,
    )
    try:
        audit_dal.record(settings.metadata_table, event)
    except Conflict:  # recorded by an earlier delivery of this check (same id and time)? else it stands
        recorded = audit_dal.list_events(settings.metadata_table, target=event.target, since=event.time, limit=1_000)
        if not any(e.event_id == event.event_id for e in recorded):
            raise
    return decision


def run_drift_check(
    req: DriftCheckRequest,
    settings: Settings,
    *,
    workdir: Path,
    now: datetime | None = None,
    starter: Callable[[Settings], Starter] = lifecycle_starter,
) -> tuple[DriftCheckResult, DriftReport]:
    """Check one model's window; write reports and the summary; decide on retraining."""
    now = now or datetime.now(UTC)
    end = req.end or now
    check_id = req.check_id or uuid.uuid4().hex[:16]
    version, profile = _reference(settings, req)
    acc = WindowCheck(
        profile,
        version=version.version,
        contract=_contract(settings, version),
        dataset=version.dataset,
        contract_version=version.contract_version,
        lookup_views=[u.view for u in version.feature_views],
    )
    rejected = 0
    compacted = 0
    start = end - timedelta(hours=req.window_hours)
    labels = _labels(settings, req.model, start, end)
    label_ids = labels.column("request_id").combine_chunks()
    predictions: list[pa.Table] = []
    for hour in window_hours(end, req.window_hours):  # one hour's file on local disk at a time
        path, bad, fresh = _hour_file(settings, version, hour, now, workdir)
        rejected += bad
        compacted += int(fresh)
        if path is not None:
            for row_group in iter_parquet_row_groups([str(path)]):
                acc.add(row_group)
                if len(label_ids) and {REQUEST_ID, PREDICTION} <= row_group.names:
                    wanted = [c for c in (REQUEST_ID, PREDICTION, VARIANT) if c in row_group.names]
                    part = pa.table({c: row_group.column(c) for c in wanted})
                    predictions.append(matching_predictions(part, label_ids))
            path.unlink(missing_ok=True)
    report = acc.finish(
        req.config,
        model=req.model,
        version=version.version,
        window_start=end - timedelta(hours=req.window_hours),
        window_end=end,
        rejected_rows=rejected,
        check_id=check_id,
        now=now,
    )
    if len(label_ids):
        joined = pa.concat_tables(predictions) if predictions else _EMPTY_PREDICTIONS
        performance = evaluate(
            joined,
            labels,
            version.task,
            version.metrics,
            min_labels=req.config.min_labels,
            max_drop=req.config.max_performance_drop,
        )
        report = report.model_copy(update={"performance": performance})
    # the HTML first: the JSON report is what readers wait for (stepwise drift --wait), so the pair
    # is complete once it is there; every key below is a function of (model, end, check id), so a
    # retry of a failed check writes the same objects and items again, never a second set
    html_uri = store.put(
        settings.artifacts_bucket,
        store.report_key(req.model, end, check_id, "html"),
        render_html(report).encode(),
        "text/html; charset=utf-8",
    )
    json_uri = store.put(
        settings.artifacts_bucket,
        store.report_key(req.model, end, check_id, "json"),
        report.model_dump_json().encode(),
        "application/json",
    )
    decision = None
    trigger = report.verdict.value
    if report.performance is not None and report.performance.verdict == "drop" and trigger != "drift":
        trigger = "performance_drop"
    elif trigger != "drift" and report.outputs is not None and report.outputs.verdict == "drift":
        trigger = "output_drift"  # starts retraining only where the policy lists it (not by default)
    if req.retrain and trigger in req.policy.on_verdicts:
        decision = _retraining(settings, req, version, trigger, check_id, now, starter)
    store.put_check_summary(settings.metadata_table, report, json_uri, html_uri)  # the check's record, last
    result = DriftCheckResult(
        check_id=check_id,
        model=req.model,
        version=version.version,
        verdict=report.verdict,
        reason=report.reason,
        row_count=report.row_count,
        rejected_rows=rejected,
        drift_share=report.drift_share,
        drifted_features=report.drifted_features,
        window_start=end - timedelta(hours=req.window_hours),
        window_end=end,
        report_json=json_uri,
        report_html=html_uri,
        hours_compacted=compacted,
        retraining=decision,
        output_verdict=report.outputs.verdict if report.outputs else "",
        data_quality_verdict=report.data_quality.verdict if report.data_quality else "",
        overall_verdict=report.overall.verdict if report.overall else "",
    )
    return result, report
