"""The lifecycle workflow's steps as use cases: start a run, train, evaluate, record failures.

Each step records its start and end (with outcome and error) on the run record; typed errors
propagate so the state machine's Retry/Catch match them by name.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from functions.dal import artifacts as store
from functions.dal import registry as registry_dal
from functions.dal import runs as runs_dal
from functions.dal import specs as specs_dal
from functions.logic.derived import view_references
from functions.models.errors import InvalidInput, StepwiseError
from functions.models.registry import Artifact, Feature, FeatureViewUse, ModelVersion, monitored_derived
from functions.models.runs import (
    GATE_FAILED_ERROR,
    DatasetRef,
    EvaluationResult,
    LifecycleInput,
    LifecycleState,
    RunRecord,
    RunRecordRequest,
    RunStarted,
    RunStatus,
    StepName,
    StepRecord,
    TrainResult,
    execution_name,
)
from functions.models.settings import Settings
from functions.models.specs import SpecRecord
from functions.observability import logger

if TYPE_CHECKING:  # numpy, pyarrow and scikit-learn load only where a step trains or evaluates:
    # run records and registry reads also import this module from functions without them.
    import pyarrow as pa

    from functions.logic import training as tr

MAX_CAUSE = 4_000
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


# -- datasets (the validation stage's records) -----------------------------------------------
def dataset_ref(settings: Settings, dataset: str, version: int) -> DatasetRef:
    """The exact validated object of `dataset` version `version`, with its contract's column types."""
    from functions.dal import datasets as datasets_dal  # the validation stage's records

    record = datasets_dal.get_version(settings.metadata_table, dataset, version)
    columns: list[Feature] = []
    contract = datasets_dal.get_contract(settings.metadata_table, dataset, record.contract_version)
    for col in contract.contract.columns:
        columns.append(Feature(name=col.name, type=col.type, nullable=col.nullable, categories=col.categories))
    return DatasetRef(
        dataset=record.dataset,
        version=record.version,
        bucket=record.bucket,
        key=record.key,
        version_id=record.version_id,
        sha256=record.sha256,
        contract_version=record.contract_version,
        format=record.format,
        columns=columns,
    )


def load_dataset(ref: DatasetRef) -> pa.Table:
    from functions.logic import training as tr

    data = store.get_verified(
        ref.bucket, ref.key, ref.sha256, ref.version_id, what=f"dataset {ref.dataset}@{ref.version}"
    )
    return tr.read_table(data, ref.key, ref.format)


def spec_of(settings: Settings, state: LifecycleState) -> SpecRecord:
    record = specs_dal.get_spec(settings.metadata_table, state.spec, state.spec_version)
    if record.spec.dataset != state.dataset:
        raise InvalidInput(
            f"spec {record.name} v{record.version} trains on {record.spec.dataset!r}, not {state.dataset!r}"
        )
    return record


# -- run record -------------------------------------------------------------------------------
def _run_id(state: LifecycleState) -> str:
    if state.run is None:
        raise InvalidInput("the workflow state has no run; the start step did not run")
    return state.run.run_id


def _model(state: LifecycleState) -> str:
    assert state.run is not None
    return state.run.model


def _begin(step: str, now: datetime) -> Callable[[RunRecord], RunRecord]:
    def change(run: RunRecord) -> RunRecord:
        previous = [s for s in run.steps if s.name == step]
        attempt = previous[-1].attempt + 1 if previous else 1
        run.steps = [s for s in run.steps if not (s.name == step and s.outcome == "running")]
        run.steps.append(StepRecord(name=step, started_at=now, attempt=attempt))
        return run

    return change


def _end(step: str, now: datetime, outcome: str, error: str = "", cause: str = "") -> Callable[[RunRecord], RunRecord]:
    def change(run: RunRecord) -> RunRecord:
        for record in reversed(run.steps):
            if record.name == step and record.outcome == "running":
                record.ended_at = now
                record.outcome = outcome  # type: ignore[assignment]
                record.error = error
                record.cause = cause[:MAX_CAUSE]
                break
        else:
            if outcome == "failed":  # the step never got to record its start (e.g. a Lambda timeout)
                run.steps.append(
                    StepRecord(
                        name=step, started_at=now, ended_at=now, outcome="failed", error=error, cause=cause[:MAX_CAUSE]
                    )
                )
        return run

    return change


@contextmanager
def recorded_step(settings: Settings, state: LifecycleState, step: str, clock: Clock = utcnow) -> Iterator[None]:
    """Record the step's start; its end with outcome, or its failure with the error's name."""
    table, model, run_id = settings.metadata_table, _model(state), _run_id(state)
    runs_dal.update_run(table, model, run_id, _begin(step, clock()))
    try:
        yield
    except Exception as exc:
        try:
            runs_dal.update_run(table, model, run_id, _end(step, clock(), "failed", type(exc).__name__, str(exc)))
        except StepwiseError:
            logger.exception("could not record the failure of step %s on run %s", step, run_id)
        raise
    runs_dal.update_run(table, model, run_id, _end(step, clock(), "succeeded"))


def start_run(settings: Settings, req: RunRecordRequest, clock: Clock = utcnow) -> RunStarted:
    state = req.state
    if state.import_id is not None:  # an import run: its `spec` names the model, there is no spec record
        from functions.logic.import_run import import_of

        model, spec_name, spec_version = import_of(settings, state).model, state.spec, state.spec_version
        compute: Literal["lambda", "sagemaker"] = "lambda"
    else:
        spec = spec_of(settings, state)
        model, spec_name, spec_version, compute = spec.spec.model, spec.name, spec.version, spec.spec.compute
    ref = dataset_ref(settings, state.dataset, state.dataset_version)  # fails early when it is missing
    now = clock()
    run_id = req.execution_name or execution_name(model, state.dataset_version, spec_version)
    record = runs_dal.create_run(
        settings.metadata_table,
        RunRecord(
            run_id=run_id,
            model=model,
            spec_name=spec_name,
            spec_version=spec_version,
            dataset=state.dataset,
            dataset_version=state.dataset_version,
            execution_arn=req.execution_arn,
            started_by=state.started_by,
            started_at=now,
            steps=[StepRecord(name=StepName.START, started_at=now, ended_at=now, outcome="succeeded")],
        ),
    )
    after = {"dataset": f"{ref.dataset}@{state.dataset_version}"}
    _audit_run(settings, record.model, record.run_id, "run.start", after, record.started_at)
    return RunStarted(
        run_id=record.run_id,
        model=record.model,
        compute=compute,
        started_at=record.started_at,
        data_uri=store.s3_uri(ref.bucket, ref.key),
    )


def fail_run(settings: Settings, req: RunRecordRequest, clock: Clock = utcnow) -> RunRecord | None:
    """From a Catch: the step failed with `req.state.error`; the run is FAILED (also after
    registration: a release step failed, or the approval was rejected or expired; `version` still
    names the registered version). None when the run record was never created (StartRun itself
    failed, e.g. an unknown spec or dataset version)."""
    state = req.state
    if state.run is None:
        logger.warning("no run record to mark failed", extra={"step": req.step, "error": state.error})
        return None
    error = state.error.error if state.error else "UnknownError"
    cause = state.error.cause if state.error else ""
    now = clock()
    step_end = _end(req.step or "unknown", now, "failed", error, cause)

    def change(run: RunRecord) -> RunRecord:
        run = step_end(run)
        if run.status in (RunStatus.RUNNING, RunStatus.REGISTERED):
            run.status = RunStatus.FAILED
        run.ended_at = run.ended_at or now
        run.error = run.error or error
        run.cause = run.cause or cause[:MAX_CAUSE]
        return run

    failed = runs_dal.update_run(settings.metadata_table, _model(state), _run_id(state), change)
    after = {"step": req.step, "error": error}
    _audit_run(settings, _model(state), _run_id(state), "run.fail", after, failed.ended_at or now)
    return failed


def finish_run(settings: Settings, req: RunRecordRequest, clock: Clock = utcnow) -> RunRecord:
    """After Register: the run produced a version (REGISTERED, or REJECTED by a gate)."""
    state = req.state
    if state.registered is None:
        raise InvalidInput("finish needs the registered version in the state")
    registered = state.registered
    rejected = registered.status.value == "REJECTED"
    now = clock()

    def change(run: RunRecord) -> RunRecord:
        status = RunStatus.REJECTED if rejected else RunStatus.REGISTERED
        if run.ended_at is None or (run.version, run.status) != (registered.version, status):
            run.ended_at = now  # a retried finish keeps the first one's end
        run.version = registered.version
        run.status = status
        if rejected:
            run.error = GATE_FAILED_ERROR
            run.cause = "; ".join(registered.reasons)[:MAX_CAUSE]
        return run

    finished = runs_dal.update_run(settings.metadata_table, _model(state), _run_id(state), change)
    outcome = {"version": registered.version, "status": registered.status.value}
    _audit_run(settings, _model(state), _run_id(state), "run.finish", outcome, finished.ended_at or now)
    return finished


def _audit_run(settings: Settings, model: str, run_id: str, action: str, after: dict[str, Any], at: datetime) -> None:
    """Run start/end in the audit trail (the workflow acts; its run id names it). The event's id
    and time come from the run (`at` is the stored start or end), so a retried task writes the
    same event again, which the store refuses as already there: one event per run and action."""
    import hashlib

    from functions.dal import audit as audit_dal
    from functions.models.audit import AuditEvent, model_target
    from functions.models.errors import Conflict

    event = AuditEvent(
        event_id=hashlib.sha256(f"{model}#{run_id}#{action}".encode()).hexdigest()[:32],
        time=at,
        who=f"workflow:{run_id}",
        action=action,
        target=model_target(model),
        after=after,
        reason="",
        correlation_id="",
    )
    try:
        audit_dal.record(settings.metadata_table, event)
    except Conflict:
        logger.info("audit event already recorded", extra={"run_id": run_id, "action": action})


# -- train -----------------------------------------------------------------------------------
def artifact_prefix(model: str, run_id: str) -> str:
    return f"models/{model}/runs/{run_id}/"


def train(settings: Settings, state: LifecycleState, clock: Clock = utcnow) -> TrainResult:
    with recorded_step(settings, state, StepName.TRAIN, clock):
        return _train(settings, state, clock)


def _train(settings: Settings, state: LifecycleState, clock: Clock) -> TrainResult:
    from functions.logic import training as tr
    from functions.logic.derived import null_empty_strings

    timings: dict[str, float] = {}
    started = time.perf_counter()
    record = spec_of(settings, state)
    spec = record.spec
    ref = dataset_ref(settings, state.dataset, state.dataset_version)
    table = load_dataset(ref)
    timings["read_seconds"] = time.perf_counter() - started
    columns, training_set = ref.columns, b""
    uses: list[FeatureViewUse] = []
    if view_references(spec):
        from functions.logic import feature_training as ft

        planned = ft.plan_views(settings, spec)
        assert spec.event_time is not None  # plan_views refuses a spec without one
        if planned.layouts_built:  # the one-time cost of laying out a new source version
            timings["layout_seconds"] = planned.layout_seconds
        started = time.perf_counter()
        table, uses = ft.build_training_set(settings, table, planned.uses, event_time=spec.event_time)
        training_set = ft.training_set_bytes(table)
        timings["join_seconds"] = time.perf_counter() - started
        columns = [*ref.columns, *ft.view_columns(uses)]
        runs_dal.update_run(settings.metadata_table, _model(state), _run_id(state), _with_views(uses))
    prepared = tr.prepare(spec, table, columns)
    fitted = tr.fit(spec, prepared)
    timings["fit_seconds"] = fitted.fit_seconds
    started = time.perf_counter()
    graph_inputs = tr.graph_inputs_for(prepared.features)
    derivation = prepared.derivation
    onnx_bytes = tr.export_onnx(fitted, prepared.features, graph_inputs, derivation)
    skops_bytes = tr.dump_skops(fitted)
    timings["export_seconds"] = time.perf_counter() - started
    # the served graph's inputs: the pipeline's features, or the raw fields derived features read
    served = prepared.features if derivation is None else derivation.raw_features
    monitored, reference = served, prepared.table.take(prepared.train_idx)
    if derivation is not None:  # the derived values the pipeline took are monitored like inputs
        derived = monitored_derived(prepared.features, spec.derived)
        monitored, reference = [*served, *derived], null_empty_strings(reference, derived)
    profile_bytes = tr.reference_profile(reference, monitored, clock())
    run_id, bucket = _run_id(state), settings.artifacts_bucket
    prefix = artifact_prefix(spec.model, run_id)
    artifacts = {
        "skops": store.put_artifact(bucket, prefix + "model.skops", skops_bytes),
        "onnx": store.put_artifact(bucket, prefix + "model.onnx", onnx_bytes),
        "profile": store.put_artifact(bucket, prefix + "profile.json", profile_bytes, "application/json"),
    }
    if uses:  # the joined training set, next to the run's artifacts, with its sha256
        artifacts["training_set"] = store.put_artifact(
            bucket, prefix + TRAINING_SET_FILE, training_set, "application/vnd.apache.parquet"
        )
    return TrainResult(
        run_id=run_id,
        model=spec.model,
        spec_name=record.name,
        spec_version=record.version,
        dataset=ref,
        task=spec.task,
        features=served,
        graph_inputs=graph_inputs if derivation is None else derivation.raw_inputs,
        pipeline_features=[] if derivation is None else prepared.features,
        derived=list(spec.derived) if derivation is not None else [],
        feature_views=uses,
        event_time=spec.event_time or "" if uses else "",
        allow_request_overrides=spec.allow_request_overrides and bool(uses),
        target=spec.target,
        class_labels=fitted.class_labels,
        artifacts=artifacts,
        parameters=tr.pipeline_parameters(spec, fitted),
        seed=spec.split.seed,
        train_rows=len(prepared.train_idx),
        holdout_rows=len(prepared.holdout_idx),
        timings=timings,
    )


TRAIN_RESULT_FILE = "train-result.json"
TRAINING_SET_FILE = "training-set.parquet"


def _with_views(uses: list[FeatureViewUse]) -> Callable[[RunRecord], RunRecord]:
    def change(run: RunRecord) -> RunRecord:
        run.feature_views = uses
        return run

    return change


def training_table(trained: TrainResult) -> tuple[pa.Table, list[Feature]]:
    """The rows a run trained on and their typed columns: its joined training set (sha256-verified)
    when it read feature views, else its dataset version."""
    if "training_set" not in trained.artifacts:
        return load_dataset(trained.dataset), trained.dataset.columns
    from functions.logic import feature_training as ft

    data = store.get_artifact(trained.artifacts["training_set"], f"training set of run {trained.run_id}")
    return ft.read_training_set(data), [*trained.dataset.columns, *ft.view_columns(trained.feature_views)]


def train_and_publish(settings: Settings, state: LifecycleState, clock: Clock = utcnow) -> TrainResult:
    """The SageMaker path: train, then leave the TrainResult next to the artifacts."""
    result = _train(settings, state, clock)
    key = artifact_prefix(result.model, result.run_id) + TRAIN_RESULT_FILE
    store.put_artifact(settings.artifacts_bucket, key, result.model_dump_json().encode(), "application/json")
    return result


def collect_training(settings: Settings, state: LifecycleState, clock: Clock = utcnow) -> TrainResult:
    """After a SageMaker training job: the TrainResult it left, with every artifact verified."""
    with recorded_step(settings, state, StepName.TRAIN, clock):
        key = artifact_prefix(_model(state), _run_id(state)) + TRAIN_RESULT_FILE
        result = TrainResult.model_validate_json(store.get_object(settings.artifacts_bucket, key))
        for name, artifact in result.artifacts.items():
            store.get_artifact(artifact, f"{name} artifact of {result.run_id}")
        return result


# -- evaluate --------------------------------------------------------------------------------
def evaluate(settings: Settings, state: LifecycleState, clock: Clock = utcnow) -> EvaluationResult:
    with recorded_step(settings, state, StepName.EVALUATE, clock):
        return _evaluate(settings, state)


def _evaluate(settings: Settings, state: LifecycleState) -> EvaluationResult:
    from functions.logic import evaluation as ev
    from functions.logic import training as tr

    if state.train is None:
        raise InvalidInput("evaluate needs the train step's result in the state")
    trained = state.train
    started = time.perf_counter()
    imported = state.import_id is not None
    if imported:  # no spec record: the import's default evaluation spec
        from functions.logic.import_run import import_spec

        spec = import_spec(trained.model, trained.dataset.dataset, trained.task, trained.target, trained.features)
    else:
        spec = spec_of(settings, state).spec
    table, columns = training_table(trained)
    prepared = tr.prepare(spec, table, columns)
    holdout = prepared.frame.iloc[prepared.holdout_idx]
    y_holdout = prepared.y[prepared.holdout_idx]
    candidate = None if imported else store.get_artifact(trained.artifacts["skops"], "candidate skops artifact")
    session = ev.onnx_session(store.get_artifact(trained.artifacts["onnx"], "candidate ONNX artifact"))
    what = f"candidate ONNX artifact of run {trained.run_id}"
    if trained.derived:  # the whole graph, transformations included, on the raw holdout rows
        raw_holdout = prepared.table.take(prepared.holdout_idx)
        feeds = ev.raw_graph_feeds(session, raw_holdout, trained.features, trained.graph_inputs, what)
    else:
        feeds = ev.graph_feeds(session, holdout, trained.features, trained.graph_inputs, what)
    if imported:  # a graph built elsewhere may declare double, integer or bool inputs
        feeds = ev.declared_feeds(session, feeds)
    served = ev.onnx_predictions(session, feeds, spec.task)
    profile = _profile_with_outputs(settings, trained, spec.task, served)
    if candidate is None:  # imported: ONNX Runtime is its own reference, no parity to check
        from functions.logic.import_run import PARITY_NOT_APPLICABLE

        reference, parity = served, ev.Parity(0, 0.0, True, PARITY_NOT_APPLICABLE)
    else:
        reference = ev.sklearn_predictions(tr.load_skops(candidate), holdout, spec.task)
        parity = ev.parity(reference, served, spec.gates.parity_tolerance)
    metrics = ev.compute_metrics(spec.metrics, y_holdout, reference, trained.class_labels)
    latency = ev.single_row_latency(session, feeds, spec.latency_calls)
    production_version, production_metrics, note = _production_metrics(settings, trained, spec, prepared)
    sizes = {name: a.size_bytes for name, a in trained.artifacts.items() if name in ("onnx", "skops")}
    verdicts = ev.judge(spec, metrics, production_metrics, note, parity, latency, sizes)
    return EvaluationResult(
        metrics=metrics,
        primary_metric=spec.primary.value,
        production_version=production_version,
        production_metrics=production_metrics or {},
        parity_max_abs_diff=parity.max_abs_diff if parity.max_abs_diff < float("inf") else 1e308,
        parity_label_mismatches=parity.label_mismatches,
        latency=latency,
        gates=verdicts,
        passed=all(v.passed for v in verdicts),
        timings={"evaluate_seconds": time.perf_counter() - started},
        profile=profile,
    )


PROFILE_WITH_OUTPUTS_FILE = "profile-outputs.json"


def _profile_with_outputs(settings: Settings, trained: TrainResult, task: str, served: Any) -> Artifact:
    """The training profile plus the candidate's served (ONNX) outputs on the holdout, the
    reference of prediction drift, written beside it (the same bytes on a retry)."""
    from functions.logic.drift_outputs import output_profile
    from functions.models.profile import ReferenceProfile

    base = ReferenceProfile.from_bytes(store.get_artifact(trained.artifacts["profile"], "reference profile"))
    try:
        outputs = output_profile(
            task,
            trained.class_labels,
            labels=served.labels,
            probabilities=served.probabilities,
            values=served.values,
        )
    except ValueError as exc:
        raise InvalidInput(f"the candidate's holdout outputs cannot be profiled: {exc}") from exc
    data = base.model_copy(update={"outputs": outputs}).to_bytes()
    key = artifact_prefix(trained.model, trained.run_id) + PROFILE_WITH_OUTPUTS_FILE
    return store.put_artifact(settings.artifacts_bucket, key, data, "application/json")


def _production_metrics(
    settings: Settings, trained: TrainResult, spec: tr.TrainingSpec, prepared: tr.Prepared
) -> tuple[int | None, dict[str, float] | None, str]:
    """The production version's metrics on this holdout; its skops artifact (an imported version's
    ONNX artifact, in ONNX Runtime) is loaded only after its bytes verify against the registry's
    sha256 (IntegrityError otherwise)."""
    from functions.logic import evaluation as ev
    from functions.logic import training as tr

    record = registry_dal.get_model(settings.registry_table, trained.model)
    if record is None or record.production_version is None:
        return None, None, "no production version to compare with"
    version = registry_dal.get_version(settings.registry_table, trained.model, record.production_version)
    imported = version is not None and version.source == "imported" and "onnx" in version.artifacts
    if version is None or ("skops" not in version.artifacts and not imported):
        return record.production_version, None, f"production v{record.production_version} has no skops artifact"
    if version.task != spec.task:
        return record.production_version, None, f"production v{version.version} is a {version.task} model"
    missing = ev.features_available(version.features, prepared.table.column_names)
    if missing:
        note = f"production v{version.version} needs columns {missing} that this dataset lacks"
        return version.version, None, note
    if imported:
        return version.version, *_imported_production_metrics(version, spec, prepared)
    pipeline = tr.load_skops(
        store.get_artifact(version.artifacts["skops"], f"production {trained.model} v{version.version} skops artifact")
    )
    if version.derived:  # its own derived definitions over this dataset's raw rows
        try:
            table = tr.production_table(prepared.table, version)
        except InvalidInput as exc:
            return version.version, None, f"production v{version.version}'s derived features: {exc}"
        frame = tr.to_frame(table, version.pipeline_features).iloc[prepared.holdout_idx]
    else:
        frame = tr.to_frame(prepared.table, version.features).iloc[prepared.holdout_idx]
    predictions = ev.sklearn_predictions(pipeline, frame, spec.task)
    labels = version.class_labels if spec.task == "classification" else None
    try:
        metrics = ev.compute_metrics(spec.metrics, prepared.y[prepared.holdout_idx], predictions, labels)
    except ValueError as exc:  # e.g. the holdout has a class production never saw
        return version.version, None, f"production v{version.version} not comparable: {exc}"
    return version.version, metrics, ""


def _imported_production_metrics(
    version: ModelVersion, spec: tr.TrainingSpec, prepared: tr.Prepared
) -> tuple[dict[str, float] | None, str]:
    """An imported production version's metrics on this holdout: its ONNX graph in ONNX Runtime."""
    from functions.logic import evaluation as ev
    from functions.logic import training as tr

    what = f"production {version.model} v{version.version} ONNX artifact"
    session = ev.onnx_session(store.get_artifact(version.artifacts["onnx"], what))
    frame = tr.to_frame(prepared.table, version.features).iloc[prepared.holdout_idx]
    feeds = ev.declared_feeds(session, ev.graph_feeds(session, frame, version.features, version.graph_inputs, what))
    predictions = ev.onnx_predictions(session, feeds, spec.task)
    labels = version.class_labels if spec.task == "classification" else None
    try:
        return ev.compute_metrics(spec.metrics, prepared.y[prepared.holdout_idx], predictions, labels), ""
    except ValueError as exc:
        return None, f"production v{version.version} not comparable: {exc}"


# -- starting the workflow -------------------------------------------------------------------
def start_training(
    settings: Settings, spec_name: str, dataset: str, dataset_version: int, started_by: str, trigger: str = ""
) -> tuple[str, bool, str]:
    """Start the workflow for the latest version of `spec_name` on `dataset`@`dataset_version`.

    Returns (execution arn, started, execution name); a second start of the same
    model/dataset version/spec version is a no-op (started False)."""
    from functions.dal import workflow

    if not settings.lifecycle_state_machine_arn:
        raise InvalidInput("the lifecycle workflow is not deployed (STEPWISE_LIFECYCLE_SM_ARN is unset)")
    spec = specs_dal.get_spec(settings.metadata_table, spec_name)
    if spec.spec.dataset != dataset:
        raise InvalidInput(f"spec {spec_name!r} trains on dataset {spec.spec.dataset!r}, not {dataset!r}")
    name = execution_name(spec.spec.model, dataset_version, spec.version, trigger)
    payload = LifecycleInput(
        spec=spec.name,
        spec_version=spec.version,
        dataset=dataset,
        dataset_version=dataset_version,
        started_by=started_by,
        release=spec.spec.release.model_dump(mode="json"),
    )
    arn, started = workflow.start_execution(
        settings.lifecycle_state_machine_arn, name, payload.model_dump(exclude={"import_id"})
    )
    return arn, started, name
