"""An import run's VerifyImport step, in place of Train: the uploaded ONNX artifact is verified
(functions/logic/import_verify.py) and becomes the run's candidate, with a TrainResult shaped like
a trained one so evaluation, registration and release read it the same way.

The step reads the import's record and its bytes once (bounded by the import size limit), verifies
them against the dataset version's contract, copies the verified bytes to the run's models/ prefix
(the registry never points into imports/, where an uploader could write) and builds the reference
profile of the graph's inputs from the dataset version. No skops artifact: an imported model has
no scikit-learn pipeline; its graph inputs are named after the features they take.
"""

from __future__ import annotations

import time

from functions.dal import artifacts as store
from functions.dal import datasets as datasets_dal
from functions.dal import imports as imports_dal
from functions.logic import imports as imports_logic
from functions.logic import lifecycle
from functions.logic.import_verify import refusal, verify_import
from functions.models.audit import Actor
from functions.models.errors import ImportRefused, IntegrityError, InvalidInput, NotFound
from functions.models.imports import ImportRecord
from functions.models.registry import Feature, ImportedFrom
from functions.models.runs import LifecycleState, StepName, TrainResult
from functions.models.settings import Settings
from functions.models.specs import GateSpec, TrainingSpec

PARITY_NOT_APPLICABLE = (
    "not applicable: an imported model has no scikit-learn pipeline; ONNX Runtime on its own graph is the reference"
)
# TrainingSpec requires an estimator; an import's evaluation spec never fits one
_PLACEHOLDER_ESTIMATOR = {"classification": "LogisticRegression", "regression": "Ridge"}


def import_spec(model: str, dataset: str, task: str, target: str, features: list[Feature]) -> TrainingSpec:
    """How an import is evaluated: the task's default metrics and seeded holdout split, as a trained
    model's spec would default them, and a max_regression gate of 0 (no worse than production on
    the primary metric, where production can be compared)."""
    return TrainingSpec.model_validate(
        {
            "name": model,
            "model": model,
            "dataset": dataset,
            "target": target,
            "features": [f.name for f in features],
            "task": task,
            "estimator": {"name": _PLACEHOLDER_ESTIMATOR[task]},
            "gates": GateSpec(max_regression=0.0).model_dump(),
        }
    )


def import_of(settings: Settings, state: LifecycleState) -> ImportRecord:
    """The import the run verifies: it must exist and be for this run's model and dataset version."""
    if state.import_id is None:
        raise InvalidInput("the workflow state names no import_id: this is not an import run")
    model = state.run.model if state.run is not None else state.spec
    record = imports_dal.get(settings.metadata_table, model, state.import_id)
    if record is None:
        raise NotFound(f"model {model!r} has no import {state.import_id}")
    request = record.request
    if (request.dataset, request.dataset_version) != (state.dataset, state.dataset_version):
        raise InvalidInput(
            f"import {record.import_id} is evaluated on {request.dataset}@{request.dataset_version}, "
            f"not {state.dataset}@{state.dataset_version}"
        )
    return record


def verify_imported(
    settings: Settings, state: LifecycleState, clock: lifecycle.Clock = lifecycle.utcnow
) -> TrainResult:
    """The VerifyImport step, recorded on the run (a refusal fails the step with every reason)."""
    with lifecycle.recorded_step(settings, state, StepName.VERIFY_IMPORT, clock):
        try:
            return _verify_imported(settings, state, clock)
        except ImportRefused as refused:
            _audit_refused(settings, state, refused)
            raise


def _audit_refused(settings: Settings, state: LifecycleState, refused: ImportRefused) -> None:
    """The refusal as the import's `model.import.refused` audit event, by the workflow's run."""
    assert state.run is not None  # recorded_step refuses a state without a run
    run_id = state.run.run_id
    attempted: dict[str, object] = {
        "import_id": state.import_id,
        "run_id": run_id,
        "dataset": state.dataset,
        "dataset_version": state.dataset_version,
    }
    actor = Actor(identity=f"workflow:{run_id}", correlation_id=run_id)
    imports_logic.audit_refusal(settings, state.run.model, actor, refused, attempted)


def _verify_imported(settings: Settings, state: LifecycleState, clock: lifecycle.Clock) -> TrainResult:
    import pyarrow.compute as pc

    from functions.logic import training as tr

    started = time.perf_counter()
    record = import_of(settings, state)
    what = f"the imported model {record.model} (import {record.import_id})"
    try:
        content = store.read_bounded(record.artifact_uri, max_bytes=settings.import_max_bytes)
    except IntegrityError as exc:  # the object was replaced by a larger one after the import was accepted
        limit = settings.import_max_bytes
        raise refusal(what, [("size", f"the stored object is over the import size limit of {limit} bytes")]) from exc
    if content is None:
        raise NotFound(f"{what} has no uploaded object at {record.artifact_uri}")
    ref = lifecycle.dataset_ref(settings, state.dataset, state.dataset_version)
    contract = datasets_dal.get_contract(settings.metadata_table, ref.dataset, ref.contract_version).contract
    table = lifecycle.load_dataset(ref)
    class_labels = None
    if record.request.task == "classification":
        # the target's classes as a scikit-learn classifier orders them (sorted values, as text)
        labels = pc.unique(table.column(record.target).drop_null())
        class_labels = [str(v) for v in sorted(labels.to_pylist())]
    verified = verify_import(
        content,
        expected_sha256=record.request.sha256,
        max_bytes=settings.import_max_bytes,
        contract=contract,
        target=record.target,
        task=record.request.task,
        classes=class_labels,
        what=what,
    )
    timings = {"verify_seconds": time.perf_counter() - started}
    spec = import_spec(record.model, ref.dataset, record.request.task, record.target, verified.features)
    prepared = tr.prepare(spec, table, ref.columns)
    profile_bytes = tr.reference_profile(table, verified.features, clock())
    assert state.run is not None  # recorded_step refuses a state without a run
    run_id, bucket = state.run.run_id, settings.artifacts_bucket
    prefix = lifecycle.artifact_prefix(record.model, run_id)
    artifacts = {
        "onnx": store.put_artifact(bucket, prefix + "model.onnx", content),
        "profile": store.put_artifact(bucket, prefix + "profile.json", profile_bytes, "application/json"),
    }
    timings["import_seconds"] = time.perf_counter() - started
    return TrainResult(
        run_id=run_id,
        model=record.model,
        spec_name="",  # no training spec
        spec_version=0,
        dataset=ref,
        task=record.request.task,
        features=verified.features,
        graph_inputs={f.name: f.name for f in verified.features},
        target=record.target,
        class_labels=class_labels,
        artifacts=artifacts,
        parameters={"source": "imported", **{f"opset.{d}": v for d, v in verified.opsets.items()}},
        seed=spec.split.seed,
        train_rows=0,  # trained elsewhere
        holdout_rows=len(prepared.holdout_idx),
        timings=timings,
        imported=ImportedFrom(
            import_id=record.import_id,
            requested_by=record.requested_by,
            requested_at=record.requested_at,
            source_url=record.request.source_url,
            source_commit=record.request.source_commit,
            sha256=verified.sha256,
            description=record.request.description,
        ),
    )
