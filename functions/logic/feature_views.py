"""Feature views as the control API serves them: checked against their source's contract when stored.

A view is stored only when its source dataset has a validated version (an upload that passed its
contract) and the contract that version was validated with declares every column the view
names, with the view's types: the entity keys, the event-timestamp column (a timestamp column)
and each feature; and when the contract declares the entity key unique per timestamp (the key
column itself, or a `unique` column set within the entity keys and the timestamp column), so a
point-in-time join never has to pick one of two rows. The stored version records that validated
source version (dataset, version, sha256) and its contract version. Every refusal is InvalidInput naming the
field and the reason; nothing is stored then.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import NoReturn

from functions.dal import datasets as datasets_dal
from functions.dal import feature_views as views_dal
from functions.models.contracts import DataContract
from functions.models.errors import InvalidInput, NotFound
from functions.models.features import FeatureView, FeatureViewBody, FeatureViewList, FeatureViewRecord
from functions.models.features_offline import SourceVersionRef
from functions.models.settings import Settings


def put_view(settings: Settings, name: str, body: FeatureViewBody, created_by: str) -> FeatureViewRecord:
    """Store the next version of view `name` after checking it against its source's contract."""
    if body.name not in (None, name):
        _refuse("name", f"the view is named {body.name!r}, the route {name!r}")
    view = FeatureView.model_validate({**body.model_dump(), "name": name})
    table = settings.metadata_table
    try:
        datasets_dal.get_contract(table, view.source)
        latest = datasets_dal.get_summary(table, view.source).latest_version
    except NotFound:
        _refuse("source", f"source dataset {view.source!r} does not exist or has no data contract")
    if latest < 1:
        _refuse(
            "source",
            f"source dataset {view.source!r} has no validated version: a view is defined over validated data, "
            "so upload a file that passes its contract first",
        )
    validated = datasets_dal.get_version(table, view.source, latest)
    contract = datasets_dal.get_contract(table, view.source, validated.contract_version)
    check_against_contract(view, contract.contract, validated=f"{view.source}@{latest}")
    pinned = SourceVersionRef(dataset=view.source, version=validated.version, sha256=validated.sha256)
    return views_dal.put_view(
        table,
        view,
        created_by,
        datetime.now(UTC),
        source_version=pinned,
        source_contract_version=validated.contract_version,
    )


def check_against_contract(view: FeatureView, contract: DataContract, *, validated: str = "") -> None:
    """InvalidInput naming every column of `view` its source's contract does not offer as declared
    (`validated` names the dataset version that contract validated, for the reasons)."""
    problems: list[dict[str, str]] = []
    declared = {c.name: c for c in contract.columns}
    where = f"the contract of dataset {view.source!r}" + (f" that validated {validated}" if validated else "")

    def column(field: str, name: str) -> str | None:
        spec = declared.get(name)
        if spec is None:
            problems.append({"field": field, "reason": f"column {name!r} is not declared in {where}"})
            return None
        return spec.type

    for i, key in enumerate(view.entity_keys):
        kind = column(f"entity_keys.{i}", key)
        if kind in ("float", "bool"):
            reason = f"entity key {key!r} is a {kind} column in {where}; keys are int, string, category or timestamp"
            problems.append({"field": f"entity_keys.{i}", "reason": reason})
    kind = column("timestamp_column", view.timestamp_column)
    if kind is not None and kind != "timestamp":
        reason = f"timestamp column {view.timestamp_column!r} is a {kind} column in {where}, not a timestamp"
        problems.append({"field": "timestamp_column", "reason": reason})
    for i, feature in enumerate(view.features):
        kind = column(f"features.{i}.name", feature.name)
        if kind is not None and kind != feature.type:
            reason = f"feature {feature.name!r} is declared {feature.type} here but {kind} in {where}"
            problems.append({"field": f"features.{i}.type", "reason": reason})
    if not problems and not contract.declares_unique([*view.entity_keys, view.timestamp_column]):
        together = json.dumps([[*view.entity_keys, view.timestamp_column]])
        reason = f'{where} does not declare the entity key unique per timestamp: declare "unique": {together} in it'
        problems.append({"field": "entity_keys", "reason": reason})
    if problems:
        first = problems[0]
        raise InvalidInput(f"{first['field']}: {first['reason']}", problems)


def get_view(settings: Settings, name: str, version: int | None = None) -> FeatureViewRecord:
    """One view version, the latest when `version` is None."""
    return views_dal.get_view(settings.metadata_table, name, version)


def list_views(settings: Settings, limit: int = 1000, next_token: str | None = None) -> FeatureViewList:
    """One page of views by name, the latest version of each."""
    views, token = views_dal.list_latest_views_page(settings.metadata_table, limit, next_token)
    return FeatureViewList(views=views, next_token=token)


def _refuse(field: str, reason: str) -> NoReturn:
    raise InvalidInput(f"{field}: {reason}", [{"field": field, "reason": reason}])
