"""Fault injection for the drift check and the audit export: each AWS call a clean run makes fails
in turn (throttling, AccessDenied, ConditionalCheckFailed, a timeout, S3 NoSuchKey, a crash), and
- the caller sees a typed error (never botocore's, never Powertools'),
- nothing half-written is visible: no HTML report without its JSON or JSON without HTML, no check
  summary or retraining decision without both reports,
- the retry (the same event, no fault) ends in the same state as a clean run.

What is faked and why: AWS errors come from tests/faults.py (a botocore before-call hook; AWS
cannot be made to fail on demand). After a crash (the process killed mid-run) the Powertools
INPROGRESS record stays until its lease (the function's remaining time) ends; the test ages the
record's `in_progress_expiration` to the past, as the passing of that time would, before the
redelivery. Everything else is the real handler on moto.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.handlers import audit_export
from functions.handlers import drift as drift_handler
from functions.models.errors import StepwiseError
from functions.models.settings import get_settings
from infra import constants as c
from tests import faults
from tests.integration.conftest import MOTO_CONFIG, Stores, provision
from tests.integration.test_drift_check import Context as _Context
from tests.integration.test_drift_check import _capture, _register, _rows
from tests.integration.test_drift_idempotency import api_event

FAULTS = (
    faults.THROTTLING,
    faults.ACCESS_DENIED,
    faults.CONDITIONAL_CHECK_FAILED,
    faults.TIMEOUT,
    faults.REPLY_LOST,
    faults.NO_SUCH_KEY,
    faults.CRASH,
)
EVENT = api_event("c1", retrain=True)


class Context(_Context):
    """The drift function with 15 minutes left (its in-progress lease outlives the attempt)."""

    remaining_ms = 900_000


def _given(stores: Stores) -> None:
    """A production model with drifted traffic in a closed hour: the check compacts, reports, and
    records a retraining decision (skip: the model has no validated dataset to train on)."""
    _register(stores)
    _capture(stores, datetime(2026, 11, 26, 10, tzinfo=UTC), _rows(2_000, 2, shift=0.5))


def snapshot(stores: Stores) -> dict[str, Any]:
    s3 = boto3.client("s3")
    keys = {
        b: sorted(o["Key"] for o in s3.list_objects_v2(Bucket=b).get("Contents", []))
        for b in (stores.data_bucket, stores.artifacts_bucket)
    }
    items = boto3.client("dynamodb").scan(TableName=stores.metadata_table)["Items"]
    kept = sorted(
        (json.dumps(i, sort_keys=True) for i in items if not i["pk"]["S"].startswith("idempotency#")),
    )
    return {"keys": keys, "items": kept}


def half_written(stores: Stores) -> list[str]:
    """What a reader could see that is not whole."""
    state = snapshot(stores)
    reports = [k for k in state["keys"][stores.artifacts_bucket] if k.startswith("reports/drift/")]
    stems = {k.rsplit(".", 1)[0] for k in reports}
    # the HTML is written first and the JSON (what readers wait for) second: a JSON without its HTML
    # would be half-written; an HTML alone is not yet a report, and the retry writes the same keys
    problems = [f"{s}.json without its HTML" for s in stems if f"{s}.json" in reports and f"{s}.html" not in reports]
    records = [i for i in state["items"] if '"CHECK#' in i or '"RETRAIN#' in i]
    if records and not any(k.endswith(".json") for k in reports):
        problems.append("a check summary or decision without both reports")
    return problems


def age_in_progress(stores: Stores) -> None:
    table = boto3.resource("dynamodb").Table(stores.metadata_table)
    for item in table.scan()["Items"]:
        if str(item["pk"]).startswith("idempotency#") and item.get("status") == "INPROGRESS":
            table.update_item(
                Key={"pk": item["pk"], "sk": item["sk"]},
                UpdateExpression="SET in_progress_expiration = :past",
                ExpressionAttributeValues={":past": 1},
            )


def _clean_run() -> tuple[list[str], dict[str, Any], dict[str, Any]]:
    """A clean run in its own moto: the AWS calls it makes, its final state and its result."""
    s = Stores()
    with pytest.MonkeyPatch.context() as mp, mock_aws(config=MOTO_CONFIG):  # type: ignore[arg-type]
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            mp.setenv(name, "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("POWERTOOLS_TRACE_DISABLED", "1")
        provision(s, mp.setenv)
        _given(s)
        with faults.recording() as calls:
            result = drift_handler.lambda_handler(EVENT, Context())
        final = snapshot(s)
    get_settings.cache_clear()
    return calls, final, result


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The exhaustive matrix has one case per AWS call a clean run makes (recorded at collection,
    only with --full), times each fault."""
    if "call_index" not in metafunc.fixturenames:
        return
    calls = _clean_run()[0] if metafunc.config.getoption("--full") else ["(recorded with --full)"]
    metafunc.parametrize("call_index", range(len(calls)), ids=[f"{i}-{call}" for i, call in enumerate(calls)])


@pytest.fixture(scope="module")
def clean() -> Iterator[tuple[list[str], dict[str, Any], dict[str, Any]]]:
    yield _clean_run()


def _case(stores: Stores, clean: tuple[list[str], dict[str, Any], dict[str, Any]], index: int, fault: Any) -> None:
    calls, final, result = clean
    assert index < len(calls), f"the clean run made {len(calls)} calls, not the {index + 1} the matrix was built for"
    _given(stores)
    # When the index-th AWS call of the check fails
    try:
        with faults.inject_at(index, fault):
            first: dict[str, Any] | None = drift_handler.lambda_handler(EVENT, Context())
    except faults.Crash:
        first = None
        age_in_progress(stores)
    except StepwiseError:
        first = None  # typed: what the asynchronous retry and the DLQ see
        age_in_progress(stores)  # a failed success record stays INPROGRESS until its lease ends
    # (anything else, botocore's or Powertools' errors, fails the test here)
    # Then nothing half-written is visible
    assert half_written(stores) == [], f"{calls[index]} x {fault.name}"
    # and the retry ends where a clean run ends, with its result
    again = drift_handler.lambda_handler(EVENT, Context())
    if first is None or first == result:  # hours_compacted counts this attempt's work: the first may have done it
        assert {**again, "hours_compacted": 0} == {**result, "hours_compacted": 0}
        assert snapshot(stores) == final, f"{calls[index]} x {fault.name}"
    else:  # the fault did not fail the check (e.g. a capture object gone between list and get)
        assert again == first and half_written(stores) == []


FAST = [(i, f) for i in (0, 3, 8, 14, 20, 23) for f in (faults.THROTTLING, faults.CRASH)] + [
    (5, faults.ACCESS_DENIED),
    (10, faults.TIMEOUT),
    (12, faults.NO_SUCH_KEY),
    (16, faults.CONDITIONAL_CHECK_FAILED),
]


@pytest.mark.parametrize(("index", "fault"), FAST, ids=lambda v: getattr(v, "name", str(v)))
def test_faults_drift_check_fails_typed_writes_nothing_half_and_retries_clean(
    stores: Stores, clean: Any, index: int, fault: Any
) -> None:
    _case(stores, clean, index, fault)


@pytest.mark.full
@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.name)
def test_faults_drift_check_every_call_and_fault(stores: Stores, clean: Any, call_index: int, fault: Any) -> None:
    _case(stores, clean, call_index, fault)


def test_faults_drift_route_throttled_store_is_429_with_retry_after(stores: Stores, monkeypatch: Any) -> None:
    # Given a model and the drift function's name; When the metadata table throttles the route's read
    from functions.handlers import api
    from tests.conftest import load_event

    _register(stores)
    monkeypatch.setenv("STEPWISE_DRIFT_FUNCTION", "stepwise-drift")
    get_settings.cache_clear()
    with faults.inject("dynamodb.GetItem", faults.DYNAMODB_THROTTLING):
        reply = api.lambda_handler(load_event("apigw/drift.json"), Context())
    # Then the caller is told to retry shortly
    assert reply["statusCode"] == 429, reply["body"]
    assert reply["multiValueHeaders"].get("Retry-After", reply.get("headers", {}).get("Retry-After")) is not None


@pytest.mark.parametrize("fault", [faults.THROTTLING, faults.TIMEOUT, faults.ACCESS_DENIED, faults.CRASH])
@pytest.mark.parametrize("call", ["dynamodb.Query", "dynamodb.PutItem", "s3.PutObject", "dynamodb.UpdateItem"])
def test_faults_audit_export_fails_typed_and_retries_to_one_export(
    stores: Stores, monkeypatch: Any, call: str, fault: Any
) -> None:
    from tests.integration.conftest import ARCHIVE
    from tests.integration.test_audit_export import DAY, _event

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=ARCHIVE, ObjectLockEnabledForBucket=True)
    monkeypatch.setenv(c.ENV_AUDIT_ARCHIVE_BUCKET, ARCHIVE)
    get_settings.cache_clear()
    from functions.dal import audit as audit_dal

    audit_dal.record(stores.metadata_table, _event("version.register", 5))
    event = {"day": DAY.isoformat()}
    # When one call of the export fails
    try:
        with faults.inject(call, fault):
            audit_export.lambda_handler(event, Context())
    except faults.Crash:
        age_in_progress(stores)
    except StepwiseError:
        if call == "dynamodb.UpdateItem":  # Powertools' success record failed: INPROGRESS until its lease
            age_in_progress(stores)
    # Then the retry exports the day, and the day has one complete export (two when the failure hit
    # after the object was written, at the success record: Object Lock keeps both, same events)
    result = audit_export.lambda_handler(event, Context())
    objects = s3.list_objects_v2(Bucket=ARCHIVE, Prefix=f"audit/dt={DAY.isoformat()}/").get("Contents", [])
    assert result["events"] == 1 and result["key"] in [o["Key"] for o in objects]
    assert len(objects) == 1 or call == "dynamodb.UpdateItem"
    assert audit_export.lambda_handler(event, Context()) == result
