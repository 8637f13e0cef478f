"""Data contracts and dataset versions on the control API (IAM-authorized).

GET  /v1/datasets                               datasets with their latest contract and version numbers
GET  /v1/datasets/{name}                        one dataset's summary
PUT  /v1/datasets/{name}/contract               store the next contract version (201); a contract that
                                                does not parse: 400 with details [{field, reason}]
GET  /v1/datasets/{name}/contract[?version=N]   a contract version (latest by default)
GET  /v1/datasets/{name}/contracts              every contract version
GET  /v1/datasets/{name}/versions               dataset versions, oldest first
GET  /v1/datasets/{name}/versions/{version}     one dataset version
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, ValidationError

from functions.dal import datasets
from functions.handlers.routes.identity import caller_name
from functions.models.audit import Actor
from functions.models.contracts import DataContract, contract_errors
from functions.models.errors import InvalidInput
from functions.models.registry import NAME_PATTERN
from functions.models.settings import get_settings
from functions.observability import logger

router = APIGatewayRouter()
JSON = "application/json"


def _reply(status: int, body: Any) -> Response[Any]:
    data = json.loads(body.model_dump_json()) if isinstance(body, BaseModel) else body
    return Response(status_code=status, content_type=JSON, body=data)


def _dump(items: Sequence[BaseModel]) -> list[Any]:
    return [json.loads(i.model_dump_json()) for i in items]


def _name(name: str) -> str:
    if not re.match(NAME_PATTERN, name):
        raise InvalidInput(f"dataset name {name!r} must match {NAME_PATTERN}")
    return name


def _number(raw: str, what: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise InvalidInput(f"{what} must be a positive integer, not {raw!r}")
    return int(raw)


def _actor() -> Actor:
    return Actor(identity=caller_name(router.current_event), correlation_id=logger.get_correlation_id() or "")


@router.get("/v1/datasets")
def list_datasets() -> Response[Any]:
    return _reply(200, {"datasets": _dump(datasets.list_datasets(get_settings().metadata_table))})


@router.get("/v1/datasets/<name>")
def get_dataset(name: str) -> Response[Any]:
    return _reply(200, datasets.get_summary(get_settings().metadata_table, _name(name)))


@router.put("/v1/datasets/<name>/contract")
def put_contract(name: str) -> Response[Any]:
    _name(name)
    try:
        doc = json.loads(router.current_event.decoded_body or "")
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidInput("the contract must be a JSON object")
    if doc.get("dataset") not in (None, name):
        raise InvalidInput(f"the contract names dataset {doc['dataset']!r}, the route {name!r}")
    try:
        contract = DataContract.model_validate(doc)
    except ValidationError as exc:
        details = contract_errors(exc)
        body = {"error": "InvalidContract", "message": "the contract does not parse", "details": details}
        return _reply(400, body)
    record = datasets.put_contract(get_settings().metadata_table, name, contract, _actor(), datetime.now(UTC))
    return _reply(201, record)


@router.get("/v1/datasets/<name>/contract")
def get_contract(name: str) -> Response[Any]:
    raw = router.current_event.get_query_string_value("version")
    version = _number(raw, "version") if raw is not None else None
    return _reply(200, datasets.get_contract(get_settings().metadata_table, _name(name), version))


@router.get("/v1/datasets/<name>/contracts")
def list_contracts(name: str) -> Response[Any]:
    records = datasets.list_contracts(get_settings().metadata_table, _name(name))
    return _reply(200, {"dataset": name, "contracts": _dump(records)})


@router.get("/v1/datasets/<name>/versions")
def list_versions(name: str) -> Response[Any]:
    records = datasets.list_versions(get_settings().metadata_table, _name(name))
    return _reply(200, {"dataset": name, "versions": _dump(records)})


@router.get("/v1/datasets/<name>/versions/<version>")
def get_version(name: str, version: str) -> Response[Any]:
    number = _number(version, "version")
    return _reply(200, datasets.get_version(get_settings().metadata_table, _name(name), number))
