"""Data contracts and dataset versions, as the control API serves them: contracts are versioned
(every put is a new version, older ones stay), dataset versions are what validation recorded."""

from __future__ import annotations

from datetime import UTC, datetime

from functions.dal import datasets as datasets_dal
from functions.dal import reports as reports_dal
from functions.models.api import ContractList, DatasetList, DatasetVersionList
from functions.models.audit import Actor
from functions.models.contracts import DataContract
from functions.models.datasets import (
    REPORTS_PREFIX,
    ContractRecord,
    DatasetSummary,
    DatasetVersion,
    ReportList,
    StoredReport,
    ValidationReport,
)
from functions.models.errors import InvalidInput
from functions.models.settings import Settings


def list_datasets(settings: Settings, limit: int = datasets_dal.MAX_PAGE, next_token: str | None = None) -> DatasetList:
    """One page of datasets by name, and the next page's token (None: no more)."""
    found, token = datasets_dal.list_datasets_page(settings.metadata_table, limit, next_token)
    return DatasetList(datasets=found, next_token=token)


def summary(settings: Settings, name: str) -> DatasetSummary:
    return datasets_dal.get_summary(settings.metadata_table, name)


def put_contract(settings: Settings, name: str, contract: DataContract, actor: Actor) -> ContractRecord:
    """Store the next contract version of dataset `name`. A contract that names another dataset
    is refused: the route names the dataset it belongs to."""
    if contract.dataset not in (None, name):
        reason = f"the contract names dataset {contract.dataset!r}, the route {name!r}"
        raise InvalidInput(f"dataset: {reason}", [{"field": "dataset", "reason": reason}])
    return datasets_dal.put_contract(settings.metadata_table, name, contract, actor, datetime.now(UTC))


def contract(settings: Settings, name: str, version: int | None = None) -> ContractRecord:
    """One contract version, the latest when `version` is None."""
    return datasets_dal.get_contract(settings.metadata_table, name, version)


def contracts(settings: Settings, name: str) -> ContractList:
    return ContractList(dataset=name, contracts=datasets_dal.list_contracts(settings.metadata_table, name))


def versions(settings: Settings, name: str) -> DatasetVersionList:
    return DatasetVersionList(dataset=name, versions=datasets_dal.list_versions(settings.metadata_table, name))


def version(settings: Settings, name: str, number: int) -> DatasetVersion:
    return datasets_dal.get_version(settings.metadata_table, name, number)


def reports(settings: Settings, name: str, limit: int) -> ReportList:
    """The dataset's newest validation reports (passed and quarantined uploads), newest first;
    NotFound for a dataset with neither a contract nor a version."""
    datasets_dal.get_summary(settings.metadata_table, name)
    prefix = f"{REPORTS_PREFIX}{name}/"
    stored = []
    for key, modified in reports_dal.newest_keys(settings.artifacts_bucket, prefix, limit):
        uri = f"s3://{settings.artifacts_bucket}/{key}"
        report = ValidationReport.model_validate_json(reports_dal.read_bytes(uri))
        stored.append(StoredReport(uri=uri, stored_at=modified, quarantined=not report.passed, report=report))
    return ReportList(dataset=name, reports=stored)
