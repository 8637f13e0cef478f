"""Training specs and the runs they start, as the control API serves them."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import NoReturn

from functions.dal import datasets as datasets_dal
from functions.dal import feature_views as views_dal
from functions.dal import runs as runs_dal
from functions.dal import specs as specs_dal
from functions.logic import derived, lifecycle
from functions.models.api import RunList, SpecBody
from functions.models.errors import InvalidInput, NotFound
from functions.models.features import FeatureViewRecord
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
    view_columns: list[Feature] = []
    if derived.view_references(spec) or spec.views:
        spec, view_columns = resolve_views(settings, spec)
    if spec.derived:
        check_derived(settings, spec, view_columns)
    return specs_dal.put_spec(settings.metadata_table, spec, created_by, datetime.now(UTC))


def _refuse(field: str, reason: str) -> NoReturn:
    raise InvalidInput(f"{field}: {reason}", [{"field": field, "reason": reason}])


_KEY_FAMILY = {"int": "int", "string": "string", "category": "string", "timestamp": "timestamp"}


def resolve_views(settings: Settings, spec: TrainingSpec) -> tuple[TrainingSpec, list[Feature]]:
    """The spec with every view it reads pinned to a version (the one `views` names, else the
    latest), and the `view:feature` columns those views offer, typed. Refused (InvalidInput naming
    it) when a view or a view feature does not exist, or when the label dataset's contract lacks the
    event-time column (a timestamp) or a view's entity key column (of the view source's key type)."""
    table = settings.metadata_table
    referenced = derived.view_references(spec)
    pins: dict[str, int] = {}
    columns: list[Feature] = []
    records: list[FeatureViewRecord] = []
    for view in [*referenced, *(v for v in spec.views if v not in referenced)]:
        try:
            record = views_dal.get_view(table, view, spec.views.get(view))
        except NotFound:
            pinned = f" version {spec.views[view]}" if view in spec.views else ""
            _refuse("features", f"feature view {view!r}{pinned} does not exist")
        offered = {f.name: f for f in record.view.features}
        unknown = [f for f in referenced.get(view, []) if f not in offered]
        if unknown:
            names = ", ".join(f"{view}:{f}" for f in unknown)
            _refuse(
                "features",
                f"feature view {view!r} v{record.version} offers no feature {names} (it offers {', '.join(offered)})",
            )
        pins[view] = record.version
        records.append(record)
        columns += [Feature(name=f"{view}:{f.name}", type=f.type, nullable=True) for f in record.view.features]
    try:
        contract = datasets_dal.get_contract(table, spec.dataset).contract
    except NotFound:
        _refuse("dataset", f"dataset {spec.dataset!r} has no contract to check the event time and entity keys against")
    declared = {c.name: c for c in contract.columns}
    where = f"the contract of dataset {spec.dataset!r}"
    if spec.event_time is None:
        _refuse("event_time", f"the spec reads feature views {sorted(pins)}: set event_time to a timestamp column")
    event = declared.get(spec.event_time)
    if event is None or event.type != "timestamp":
        found = "is not declared" if event is None else f"is a {event.type} column"
        _refuse("event_time", f"event_time {spec.event_time!r} {found} in {where}; it must be a timestamp column")
    for record in records:
        source_types: dict[str, str] = {}
        # the view's own checks cover its source; without its contract the label side is still checked
        with contextlib.suppress(NotFound):
            source = datasets_dal.get_contract(table, record.view.source).contract
            source_types = {c.name: c.type for c in source.columns}
        for key in record.view.entity_keys:
            column = declared.get(key)
            if column is None:
                _refuse(
                    "dataset",
                    f"feature view {record.name!r} is keyed by {key!r}, which is not declared in {where}: "
                    "the labels must carry the view's entity key column(s)",
                )
            want = source_types.get(key)
            if want is not None and _KEY_FAMILY.get(want) != _KEY_FAMILY.get(column.type):
                _refuse(
                    "dataset",
                    f"entity key {key!r} is a {column.type} column in {where} but a {want} column in the "
                    f"source {record.view.source!r} of feature view {record.name!r}",
                )
    return spec.model_copy(update={"views": pins}), columns


def check_derived(settings: Settings, spec: TrainingSpec, view_columns: list[Feature] | None = None) -> None:
    """Type-check the spec's derived features against its dataset's latest contract and the
    `view:feature` columns of its views (InvalidInput naming the problem); a spec without derived
    features is not checked against the contract."""
    try:
        contract = datasets_dal.get_contract(settings.metadata_table, spec.dataset)
    except NotFound as exc:
        reason = f"derived features read the columns of dataset {spec.dataset!r}, which has no contract to type them"
        raise InvalidInput(f"derived: {reason}", [{"field": "derived", "reason": reason}]) from exc
    columns = [Feature(name=c.name, type=c.type, nullable=c.nullable) for c in contract.contract.columns]
    columns += view_columns or []
    try:
        derived.check_spec(spec, columns)
    except InvalidInput as exc:
        raise InvalidInput(f"derived: {exc}", [{"field": "derived", "reason": str(exc)}]) from exc


def get_spec(settings: Settings, name: str, version: int | None = None) -> SpecRecord:
    """One spec version, the latest when `version` is None."""
    return specs_dal.get_spec(settings.metadata_table, name, version)


def runs(settings: Settings, model: str, limit: int = runs_dal.MAX_PAGE, next_token: str | None = None) -> RunList:
    """One page of the model's runs, newest start first."""
    found, token = runs_dal.list_runs_page(settings.metadata_table, model, limit, next_token)
    return RunList(model=model, runs=found, next_token=token)


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
