"""Register: the evaluated candidate becomes the model's next version, with its full lineage.

The number comes from the model's counter under a conditional write, in one transaction with
the version, the run's marker and the audit event: two concurrent registrations get distinct
numbers, a retried Register returns the version it already wrote, and a failure leaves nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from functions.dal import registry as registry_dal
from functions.dal.audit import audit_put
from functions.logic.lifecycle import recorded_step
from functions.models.audit import Actor, AuditEvent, model_target
from functions.models.errors import Conflict, InvalidInput, NotFound
from functions.models.registry import ModelRecord, ModelVersion, VersionStatus, failed_gate_reasons
from functions.models.runs import LifecycleState, ModelSummary, Registered, StepName, VersionSummary
from functions.models.settings import Settings

MAX_ATTEMPTS = 10
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def candidate_version(state: LifecycleState, settings: Settings, number: int, now: datetime) -> ModelVersion:
    """The version record of this run's candidate, as number `number`."""
    if state.train is None or state.evaluation is None or state.run is None:
        raise InvalidInput("register needs the train and evaluate results in the state")
    trained, evaluated = state.train, state.evaluation
    reasons = failed_gate_reasons(evaluated.gates)
    timings = {**trained.timings, **evaluated.timings}
    timings["latency_median_ms"] = evaluated.latency.median_ms
    timings["latency_p99_ms"] = evaluated.latency.p99_ms
    return ModelVersion(
        model=trained.model,
        version=number,
        status=VersionStatus.PENDING_APPROVAL if evaluated.passed and not reasons else VersionStatus.REJECTED,
        created_at=now,
        updated_at=now,
        task=trained.task,
        features=trained.features,
        graph_inputs=trained.graph_inputs,
        pipeline_features=trained.pipeline_features,
        derived=trained.derived,
        feature_views=trained.feature_views,
        event_time=trained.event_time,
        allow_request_overrides=trained.allow_request_overrides,
        target=trained.target,
        class_labels=trained.class_labels,
        artifacts={**trained.artifacts, **({"profile": evaluated.profile} if evaluated.profile else {})},
        metrics=evaluated.metrics,
        primary_metric=evaluated.primary_metric,
        gates=evaluated.gates,
        reasons=reasons,
        spec_name=trained.spec_name,
        spec_version=trained.spec_version,
        dataset=trained.dataset.dataset,
        dataset_version=trained.dataset.version,
        contract_version=trained.dataset.contract_version,
        data_key=trained.dataset.key,
        data_version_id=trained.dataset.version_id,
        data_sha256=trained.dataset.sha256,
        run_id=trained.run_id,
        started_by=state.started_by,
        source="imported" if trained.imported is not None else "trained",
        imported=trained.imported,
        code_version=settings.code_version,
        parameters=trained.parameters,
        seed=trained.seed,
        timings=timings,
    )


def register(settings: Settings, state: LifecycleState, clock: Clock = utcnow) -> Registered:
    with recorded_step(settings, state, StepName.REGISTER, clock):
        return register_candidate(settings, state, clock)


@dataclass
class Plan:
    """A registration as read from the counter: written only if the counter has not moved."""

    version: ModelVersion
    expected_latest: int
    new_model: ModelRecord | None
    event: AuditEvent


def plan(settings: Settings, state: LifecycleState, clock: Clock = utcnow) -> Plan:
    """Read the model's counter and draft the next version (nothing is written)."""
    if state.train is None or state.run is None:
        raise InvalidInput("register needs the train result in the state")
    model, run_id = state.train.model, state.run.run_id
    record = registry_dal.get_model(settings.registry_table, model)
    latest = record.latest_version if record else 0
    now = clock()
    version = candidate_version(state, settings, latest + 1, now)
    new_model = None
    if record is None:
        new_model = ModelRecord(
            name=model, latest_version=version.version, candidate_weight=0.0, revision=0, created_at=now, updated_at=now
        )
    action = "version.register" if version.status == VersionStatus.PENDING_APPROVAL else "version.reject"
    event = AuditEvent.of(
        Actor(identity=f"workflow:{run_id}", correlation_id=run_id),
        action,
        model_target(model),
        version=version.version,
        before=None,
        after={"status": version.status.value, "run_id": run_id, "data_sha256": version.data_sha256},
        reason="; ".join(version.reasons) or "passed every gate",
    )
    return Plan(version=version, expected_latest=latest, new_model=new_model, event=event)


def commit(settings: Settings, drafted: Plan) -> Registered:
    """Write the drafted version in one transaction; Conflict (and nothing written) if the
    counter moved, the number is taken or this run already registered."""
    registry_dal.create_version(
        settings.registry_table,
        drafted.version,
        expected_latest=drafted.expected_latest,
        new_model=drafted.new_model,
        extra_items=[audit_put(settings.metadata_table, drafted.event)],
    )
    v = drafted.version
    return Registered(model=v.model, version=v.version, status=v.status, reasons=v.reasons)


def register_candidate(settings: Settings, state: LifecycleState, clock: Clock = utcnow) -> Registered:
    if state.train is None or state.run is None:
        raise InvalidInput("register needs the train result in the state")
    model, run_id = state.train.model, state.run.run_id
    for _ in range(MAX_ATTEMPTS):
        done = _already_registered(settings.registry_table, model, run_id)
        if done is not None:
            write_card(settings, done)  # the attempt that registered it may have died before its card
            return done
        try:
            registered = commit(settings, plan(settings, state, clock))
        except Conflict:
            continue  # another registration took the number (or this run already registered)
        write_card(settings, registered)
        return registered
    raise Conflict(f"could not register a version of {model}: too many concurrent registrations")


def write_card(settings: Settings, registered: Registered) -> None:
    """The version's model card beside its artifacts (functions/logic/model_card.py). The card is a
    view of the records: a failed write is logged and never fails the registration."""
    from functions.logic import model_card

    model_card.refresh(settings, registered.model, registered.version)


def _already_registered(table: str, model: str, run_id: str) -> Registered | None:
    number = registry_dal.version_for_run(table, model, run_id)
    if number is None:
        return None
    version = registry_dal.get_version(table, model, number)
    if version is None:
        return None
    return Registered(model=model, version=number, status=version.status, reasons=version.reasons)


# -- registry reads ---------------------------------------------------------------------------
def model_summaries(
    settings: Settings, limit: int = registry_dal.MAX_PAGE, next_token: str | None = None
) -> tuple[list[ModelSummary], str | None]:
    """One page of model summaries by name, and the token of the next page (None: no more)."""
    summaries: list[ModelSummary] = []
    records, token = registry_dal.list_models_page(settings.registry_table, limit, next_token)
    for record in records:
        versions = registry_dal.list_versions(settings.registry_table, record.name)
        by_status: dict[str, int] = {}
        for v in versions:
            by_status[v.status.value] = by_status.get(v.status.value, 0) + 1
        summaries.append(
            ModelSummary(
                name=record.name,
                latest_version=record.latest_version,
                production_version=record.production_version,
                candidate_version=record.candidate_version,
                candidate_weight=record.candidate_weight,
                versions=len(versions),
                by_status=by_status,
                updated_at=record.updated_at,
            )
        )
    return sorted(summaries, key=lambda s: s.name), token


def version_summaries(
    settings: Settings, model: str, limit: int = registry_dal.MAX_PAGE, next_token: str | None = None
) -> tuple[list[VersionSummary], str | None]:
    """One page of the model's version summaries, oldest first, and the next page's token."""
    # the page first: a malformed token is a 400 whether or not the model exists
    versions, token = registry_dal.list_versions_page(settings.registry_table, model, limit, next_token)
    if registry_dal.get_model(settings.registry_table, model) is None:
        raise NotFound(f"no model named {model!r}")
    return [
        VersionSummary(
            version=v.version,
            status=v.status,
            primary_metric=v.primary_metric,
            primary_value=v.metrics.get(v.primary_metric),
            dataset=v.dataset,
            dataset_version=v.dataset_version,
            spec_version=v.spec_version,
            created_at=v.created_at,
        )
        for v in versions
    ], token


def version_detail(settings: Settings, model: str, version: int) -> ModelVersion:
    found = registry_dal.get_version(settings.registry_table, model, version)
    if found is None:
        raise NotFound(f"model {model!r} has no version {version}")
    return found
