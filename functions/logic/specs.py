"""Training specs and the runs they start, as the control API serves them."""

from __future__ import annotations

from datetime import UTC, datetime

from functions.dal import datasets as datasets_dal
from functions.dal import runs as runs_dal
from functions.dal import specs as specs_dal
from functions.logic import derived, lifecycle
from functions.models.api import RunList, SpecBody
from functions.models.errors import InvalidInput, NotFound
from functions.models.registry import Feature
from functions.models.runs import TrainRequest, TrainStarted
from functions.models.settings import Settings
from functions.models.specs import SpecRecord, TrainingSpec


def put_spec(settings: Settings, name: str, body: SpecBody, created_by: str) -> SpecRecord:
    """Store the next version of spec `name`. A body that names another spec is refused."""
    if body.name not in (None, name):
        reason = f"the spec is named {body.name!r}, the route {name!r}"
        raise InvalidInput(f"name: {reason}", [{"field": "name", "reason": reason}])
    spec = TrainingSpec.model_validate({**body.model_dump(), "name": name})
    if spec.derived:
        check_derived(settings, spec)
    return specs_dal.put_spec(settings.metadata_table, spec, created_by, datetime.now(UTC))


def check_derived(settings: Settings, spec: TrainingSpec) -> None:
    """Type-check the spec's derived features against its dataset's latest contract (InvalidInput
    naming the problem); a spec without derived features is not checked against the contract."""
    try:
        contract = datasets_dal.get_contract(settings.metadata_table, spec.dataset)
    except NotFound as exc:
        reason = f"derived features read the columns of dataset {spec.dataset!r}, which has no contract to type them"
        raise InvalidInput(f"derived: {reason}", [{"field": "derived", "reason": reason}]) from exc
    columns = [Feature(name=c.name, type=c.type, nullable=c.nullable) for c in contract.contract.columns]
    try:
        derived.check_spec(spec, columns)
    except InvalidInput as exc:
        raise InvalidInput(f"derived: {exc}", [{"field": "derived", "reason": str(exc)}]) from exc


def get_spec(settings: Settings, name: str, version: int | None = None) -> SpecRecord:
    """One spec version, the latest when `version` is None."""
    return specs_dal.get_spec(settings.metadata_table, name, version)


def runs(settings: Settings, model: str) -> RunList:
    return RunList(model=model, runs=runs_dal.list_runs(settings.metadata_table, model))


def start_training(settings: Settings, model: str, request: TrainRequest, started_by: str) -> TrainStarted:
    """Start the workflow for the latest version of the request's spec, which must train `model`."""
    spec = specs_dal.get_spec(settings.metadata_table, request.spec)
    if spec.spec.model != model:
        reason = f"spec {request.spec!r} trains model {spec.spec.model!r}, not {model!r}"
        raise InvalidInput(f"spec: {reason}", [{"field": "spec", "reason": reason}])
    arn, started, execution = lifecycle.start_training(
        settings, request.spec, spec.spec.dataset, request.dataset_version, started_by
    )
    return TrainStarted(execution_arn=arn, execution_name=execution, started=started)
