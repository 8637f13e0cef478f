"""Data contracts and dataset versions on the control API (IAM-authorized).

GET  /v1/datasets[?limit=N&next_token=T]       datasets with their latest contract and version numbers, by page
GET  /v1/datasets/{name}                        one dataset's summary
PUT  /v1/datasets/{name}/contract               store the next contract version (201); a contract that
                                                does not parse: 400 with details [{field, reason}]
GET  /v1/datasets/{name}/contract[?version=N]   a contract version (latest by default)
GET  /v1/datasets/{name}/contracts              every contract version
GET  /v1/datasets/{name}/versions               dataset versions, oldest first
GET  /v1/datasets/{name}/versions/{version}     one dataset version
GET  /v1/datasets/{name}/reports[?limit=N]      the newest validation reports of its uploads (passed and
                                                quarantined: failed rules with example rows), newest first
"""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.handlers.routes.identity import caller_name
from functions.handlers.routes.params import (
    DEFAULT_PAGE,
    LimitQuery,
    Name,
    NextTokenQuery,
    Version,
    VersionQuery,
    reply,
)
from functions.logic import datasets
from functions.models.api import ContractList, DatasetList, DatasetVersionList
from functions.models.audit import Actor
from functions.models.contracts import DataContract
from functions.models.datasets import ContractRecord, DatasetSummary, DatasetVersion, ReportList
from functions.models.settings import get_settings
from functions.observability import logger

router = APIGatewayRouter()
MAX_REPORTS = 100


def _actor() -> Actor:
    return Actor(identity=caller_name(router.current_event), correlation_id=logger.get_correlation_id() or "")


@router.get("/v1/datasets")
def list_datasets(limit: LimitQuery = DEFAULT_PAGE, next_token: NextTokenQuery = None) -> Response[DatasetList]:
    return reply(datasets.list_datasets(get_settings(), limit, next_token))


@router.get("/v1/datasets/<name>")
def get_dataset(name: Name) -> Response[DatasetSummary]:
    return reply(datasets.summary(get_settings(), name))


@router.put("/v1/datasets/<name>/contract", responses={201: {"description": "the stored contract version"}})
def put_contract(name: Name, contract: Annotated[DataContract, Body()]) -> Response[ContractRecord]:
    return reply(datasets.put_contract(get_settings(), name, contract, _actor()), 201)


@router.get("/v1/datasets/<name>/contract")
def get_contract(name: Name, version: VersionQuery = None) -> Response[ContractRecord]:
    return reply(datasets.contract(get_settings(), name, version))


@router.get("/v1/datasets/<name>/contracts")
def list_contracts(name: Name) -> Response[ContractList]:
    return reply(datasets.contracts(get_settings(), name))


@router.get("/v1/datasets/<name>/versions")
def list_versions(name: Name) -> Response[DatasetVersionList]:
    return reply(datasets.versions(get_settings(), name))


@router.get("/v1/datasets/<name>/versions/<version>")
def get_version(name: Name, version: Version) -> Response[DatasetVersion]:
    return reply(datasets.version(get_settings(), name, version))


@router.get("/v1/datasets/<name>/reports")
def list_reports(
    name: Name,
    limit: Annotated[int, Query(ge=1, le=MAX_REPORTS, description="the most reports to return, newest first")] = 20,
) -> Response[ReportList]:
    return reply(datasets.reports(get_settings(), name, limit))
