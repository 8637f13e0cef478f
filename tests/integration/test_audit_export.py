"""The audit export on moto: one day's events as Parquet in an Object Lock (governance) bucket."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import boto3
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError

from functions.dal import audit as audit_dal
from functions.handlers import audit_export
from functions.models.audit import AuditEvent, model_target
from functions.models.settings import get_settings
from infra import constants as c
from tests.integration.approval_support import Context, call, lambdas_in_process
from tests.integration.conftest import Stores

DAY = date(2026, 4, 2)


def _event(action: str, hour: int, day: int = 2) -> AuditEvent:
    return AuditEvent(
        who="alice", action=action, target=model_target("m"), version=1, time=datetime(2026, 4, day, hour, tzinfo=UTC)
    )


def test_audit_export_writes_the_day_as_parquet_under_object_lock(stores: Stores, archive: str) -> None:
    # Given events on the day, the day before and the day after
    for e in (
        _event("version.register", 1),
        _event("version.approve", 23),
        _event("x.before", 23, 1),
        _event("x.after", 0, 3),
    ):
        audit_dal.record(stores.metadata_table, e)
    # When the export Lambda runs for that day
    result = audit_export.lambda_handler({"day": DAY.isoformat()}, Context())
    # Then the day's events (only) are in one Parquet object under audit/dt=<day>/, in time order
    assert result["events"] == 2 and result["key"].startswith(f"audit/dt={DAY.isoformat()}/")
    s3 = boto3.client("s3")
    body = s3.get_object(Bucket=archive, Key=result["key"])["Body"].read()
    table = pq.read_table(io.BytesIO(body))
    assert table.column("action").to_pylist() == ["version.register", "version.approve"]
    assert table.column("who").to_pylist() == ["alice", "alice"] and table.column("version").to_pylist() == [1, 1]
    # And the object is locked in governance mode: deleting its version without bypass fails
    head = s3.head_object(Bucket=archive, Key=result["key"], VersionId=result["version_id"])
    assert head["ObjectLockMode"] == "GOVERNANCE" and head["ObjectLockRetainUntilDate"] > datetime.now(UTC)
    with pytest.raises(ClientError):
        s3.delete_object(Bucket=archive, Key=result["key"], VersionId=result["version_id"])


def test_audit_export_on_schedule_exports_yesterday(stores: Stores, archive: str) -> None:
    result = audit_export.lambda_handler({}, Context())
    assert result["events"] == 0 and result["day"] < datetime.now(UTC).date().isoformat()


def test_audit_export_route_runs_the_export_now(stores: Stores, archive: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the API knows the export function (routed to its handler in this process)
    monkeypatch.setenv(c.ENV_AUDIT_EXPORT_FUNCTION, "audit-export")
    get_settings.cache_clear()
    audit_dal.record(stores.metadata_table, _event("version.register", 5))
    with lambdas_in_process(monkeypatch, {"audit-export": audit_export.lambda_handler}):
        # When POST /v1/audit/export names the day
        status, body = call("POST", "/v1/audit/export", {"day": DAY.isoformat()})
    # Then the day is in the archive now
    assert status == 200, body
    assert body["events"] == 1 and body["key"].startswith(f"audit/dt={DAY.isoformat()}/")
    assert boto3.client("s3").head_object(Bucket=archive, Key=body["key"])["ObjectLockMode"] == "GOVERNANCE"
