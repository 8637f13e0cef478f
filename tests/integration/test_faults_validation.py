"""Fault injection on the validation Lambda: every AWS call of a clean run, made
to fail each way AWS fails, then the same S3 event delivered again.

What is faked and why (see tests/faults.py): AWS cannot be made to throttle, refuse, time out or
kill the process on demand, so one botocore call at a time answers with the error AWS would send
(or raises ReadTimeoutError, or faults.Crash for a process killed mid-run); moto answers the rest.

Powertools idempotency: the failed attempt writes an INPROGRESS record whose in-progress expiry is
"now + the Lambda context's remaining time". An Exception makes Powertools delete it; a killed
process (Crash), or a failed DeleteItem/UpdateItem of the record itself, leaves it INPROGRESS, and a
redelivery before its expiry is refused (Conflict, from IdempotencyAlreadyInProgressError). Lambda redelivers an
asynchronous event a minute or more later; rather than wait, the failed attempt here runs with a
context whose remaining time is a few milliseconds (as if its timeout were that close), and the
redelivery comes after that expiry, in a "new process" (fresh clients, no Powertools local cache).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from functions.dal import audit as audit_dal
from functions.dal import datasets
from functions.handlers import validate
from functions.models.contracts import DataContract
from functions.models.errors import Conflict
from tests import faults
from tests.integration.conftest import Stores, object_bytes
from tests.integration.test_validate_handler import (
    BAD_FILES,
    CONTRACT,
    NOW,
    OPERATOR,
    Context,
    good_columns,
    keys,
    parquet_bytes,
    upload,
)

GOOD_KEY = "raw/wine/batch.parquet"
BAD_KEY = "raw/wine/bad.parquet"
IN_PROGRESS_MS = 5

# The AWS calls of one clean run (faults.recording); test_validate_clean_runs_make_these_calls
# keeps the lists true. Idempotency: PutItem (INPROGRESS) first, UpdateItem (COMPLETED) last.
GOOD_CALLS = [
    "dynamodb.PutItem",  # idempotency record INPROGRESS
    "s3.HeadObject",  # the uploaded object version
    "dynamodb.GetItem",  # dataset HEAD (contract counter)
    "dynamodb.GetItem",  # contract
    "s3.GetObject",  # the bytes
    "s3.PutObject",  # the report
    "s3.CopyObject",  # raw/ -> validated/
    "dynamodb.GetItem",  # UPLOAD guard
    "dynamodb.GetItem",  # dataset HEAD (version counter)
    "dynamodb.TransactWriteItems",  # counter + version + UPLOAD + audit
    "dynamodb.Query",  # feature views over the dataset (none here: no offline layout to build)
    "dynamodb.UpdateItem",  # idempotency record COMPLETED
]
BAD_CALLS = [
    "dynamodb.PutItem",
    "s3.HeadObject",
    "dynamodb.GetItem",
    "dynamodb.GetItem",
    "s3.GetObject",
    "s3.PutObject",  # the report
    "s3.CopyObject",  # raw/ -> quarantine/
    "s3.PutObject",  # the report beside it
    "s3.DeleteObject",  # the raw upload's version
    "dynamodb.UpdateItem",
]


def cases(calls: list[str], every_fault_at: set[str]) -> list[Any]:
    """Every call x every fault it can get. Unmarked (fast): a crash at every call, and every fault
    at the calls named in `every_fault_at`; the rest is marked full (run with --full)."""
    return [
        pytest.param(
            i,
            fault,
            id=f"{i:02d}-{call}-{fault.name}",
            marks=() if fault is faults.CRASH or call in every_fault_at else (pytest.mark.full,),
        )
        for i, call in enumerate(calls)
        for fault in faults.applicable(call)
    ]


class Dying(Context):
    """A context whose invocation has IN_PROGRESS_MS left: the in-progress expiry Powertools
    derives from it passes right after the attempt (standing in for Lambda's wait before it
    redelivers an asynchronous event)."""

    remaining_ms = IN_PROGRESS_MS


def new_process() -> None:
    """What a new execution environment starts with: clients with the fault hook, no cached
    idempotency layer (its local cache dies with the process)."""
    faults.install()  # new clients; the idempotency layer is made per delivery (dal/idempotency.py)


@pytest.fixture
def wine(stores: Stores) -> Iterator[Stores]:
    new_process()
    datasets.put_contract(stores.metadata_table, "wine", DataContract.model_validate(CONTRACT), OPERATOR, NOW)
    yield stores
    new_process()


def attempt(event: dict[str, Any], context: Context) -> dict[str, Any] | BaseException:
    """One delivery: its outcome, or what it raised (a crash included)."""
    try:
        outcomes: list[dict[str, Any]] = validate.lambda_handler(event, context)["outcomes"]
    except BaseException as exc:
        return exc
    return outcomes[0]


def redeliver(event: dict[str, Any]) -> dict[str, Any]:
    """Lambda's retry of the event: later than the failed attempt's in-progress expiry, in a new process."""
    time.sleep(IN_PROGRESS_MS * 2 / 1000)
    new_process()
    result = attempt(event, Context())
    assert isinstance(result, dict), f"the redelivery failed: {result!r}"
    return result


# -- invariants ------------------------------------------------------------------------------------


def metadata_items(stores: Stores, prefix: str) -> list[dict[str, Any]]:
    items = boto3.resource("dynamodb").Table(stores.metadata_table).scan()["Items"]
    return [i for i in items if str(i["sk"]).startswith(prefix) and i["pk"] == "DATASET#wine"]


def check_invariants(stores: Stores) -> None:
    """Nothing half-written: every version has its validated object (sha256 and size as recorded),
    the counter, the UPLOAD items and the audit events name only versions that exist, and no file
    is both quarantined and versioned."""
    versions = datasets.list_versions(stores.metadata_table, "wine")
    numbers = [v.version for v in versions]
    assert numbers == list(range(1, len(versions) + 1)), numbers
    for v in versions:
        body = object_bytes(v.bucket, v.key, v.version_id)
        assert body is not None, f"version {v.version} has no object at {v.key}"
        assert hashlib.sha256(body).hexdigest() == v.sha256 and len(body) == v.size_bytes
    latest = datasets.get_summary(stores.metadata_table, "wine").latest_version
    assert latest == len(versions), f"counter says {latest}, {len(versions)} versions exist"
    assert {int(i["version"]) for i in metadata_items(stores, "UPLOAD#")} <= set(numbers)
    events = audit_dal.list_events(stores.metadata_table, target="dataset/wine")
    created = [e.version for e in events if e.action == "dataset.version.create"]
    assert sorted(created) == numbers, created
    quarantined = {k.removeprefix("quarantine/wine/") for k in keys(stores.data_bucket, "quarantine/wine/")}
    assert not quarantined & {v.key.removeprefix("validated/wine/") for v in versions}


def final_state(stores: Stores) -> dict[str, Any]:
    """What a run leaves that a user sees: versions, objects under raw/validated/quarantine, reports."""
    return {
        "versions": [
            (v.version, v.source_key, v.sha256, v.rows) for v in datasets.list_versions(stores.metadata_table, "wine")
        ],
        "raw": keys(stores.data_bucket, "raw/"),
        "validated": keys(stores.data_bucket, "validated/"),
        "quarantine": keys(stores.data_bucket, "quarantine/"),
        "reports": len(keys(stores.artifacts_bucket, "reports/")),
    }


def clean_state(good: bool, body: bytes) -> dict[str, Any]:
    sha = hashlib.sha256(body).hexdigest()
    if good:
        return {
            "versions": [(1, GOOD_KEY, sha, 4)],
            "raw": [GOOD_KEY],
            "validated": ["validated/wine/batch.parquet"],
            "quarantine": [],
            "reports": 1,
        }
    return {
        "versions": [],
        "raw": [],
        "validated": [],
        "quarantine": ["quarantine/wine/bad.parquet", "quarantine/wine/bad.parquet.report.json"],
        "reports": 1,
    }


# -- the clean runs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("good", "calls"), [(True, GOOD_CALLS), (False, BAD_CALLS)], ids=["good", "bad"])
def test_validate_clean_runs_make_these_calls(wine: Stores, good: bool, calls: list[str]) -> None:
    # Given a good (or bad) upload; When it is validated without faults
    body = parquet_bytes(good_columns() if good else BAD_FILES["unique:id"])
    event = upload(wine, GOOD_KEY if good else BAD_KEY, body)
    with faults.recording() as made:
        outcome = attempt(event, Context())
    # Then it makes the calls the fault matrix walks, and leaves the clean state
    assert isinstance(outcome, dict) and outcome["verdict"] == ("passed" if good else "failed")
    assert made == calls
    assert final_state(wine) == clean_state(good, body)
    check_invariants(wine)


# -- every call x every fault, then the redelivery ------------------------------------------------


def run_fault_case(stores: Stores, good: bool, index: int, fault: faults.Fault) -> None:
    body = parquet_bytes(good_columns() if good else BAD_FILES["unique:id"])
    event = upload(stores, GOOD_KEY if good else BAD_KEY, body)
    # When the index-th AWS call of the run fails with the fault
    with faults.inject_at(index, fault) as rule:
        result = attempt(event, Dying())
    assert rule.fired, "the fault was not injected"
    # Then the caller sees a typed error (or the crash), never a raw botocore error
    faults.assert_typed_outcome(fault, result)
    # and nothing is half-written
    check_invariants(stores)
    if isinstance(result, dict) and result["verdict"] == "skipped":
        # NoSuchKey on the HEAD says the upload is gone: the documented outcome of a late event for
        # a deleted object is "skipped", with nothing written (that answer is the one remembered)
        assert fault is faults.NO_SUCH_KEY and index == GOOD_CALLS.index("s3.HeadObject")
        assert final_state(stores)["versions"] == [] and final_state(stores)["reports"] == 0
        return
    # When the event is delivered again, Then it ends as a clean run would have
    outcome = redeliver(event)
    assert outcome["verdict"] in (("passed",) if good else ("failed", "skipped")), outcome
    if good:
        assert outcome["version"] == 1
    assert final_state(stores) == clean_state(good, body)
    check_invariants(stores)
    # and a third delivery changes nothing
    assert redeliver(event)["verdict"] == outcome["verdict"]
    assert final_state(stores) == clean_state(good, body)


@pytest.mark.parametrize(("index", "fault"), cases(GOOD_CALLS, {"dynamodb.TransactWriteItems"}))
def test_validate_good_upload_survives_each_fault_and_the_redelivery_versions_it_once(
    wine: Stores, index: int, fault: faults.Fault
) -> None:
    run_fault_case(wine, True, index, fault)


@pytest.mark.parametrize(("index", "fault"), cases(BAD_CALLS, {"s3.DeleteObject"}))
def test_validate_bad_upload_survives_each_fault_and_the_redelivery_quarantines_it(
    wine: Stores, index: int, fault: faults.Fault
) -> None:
    run_fault_case(wine, False, index, fault)


# -- the in-progress window --------------------------------------------------------------------------


def test_validate_redelivery_before_the_crashed_attempts_expiry_is_refused_then_succeeds(wine: Stores) -> None:
    """Faked: a crash at the version write (the process dies); the in-progress expiry is the real one
    (the context says 60 s remain), then the clock is moved past it by rewriting the record's expiry
    (what 60 s of waiting would do)."""
    body = parquet_bytes(good_columns())
    event = upload(wine, GOOD_KEY, body)
    with faults.inject("dynamodb.TransactWriteItems", faults.CRASH):
        assert isinstance(attempt(event, Context()), faults.Crash)
    # When the event comes again while the record is in progress
    new_process()
    refused = attempt(event, Context())
    # Then it is refused as in progress (Lambda retries later) and nothing was written
    assert isinstance(refused, Conflict) and "in progress" in refused.message
    assert final_state(wine)["versions"] == []
    check_invariants(wine)
    # When the in-progress expiry has passed, Then the redelivery versions the upload once
    table = boto3.resource("dynamodb").Table(wine.metadata_table)
    for item in table.scan()["Items"]:
        if str(item["pk"]).startswith("idempotency#"):
            assert item["status"] == "INPROGRESS"
            table.update_item(
                Key={"pk": item["pk"], "sk": item["sk"]},
                UpdateExpression="SET in_progress_expiration = :past",
                ExpressionAttributeValues={":past": int(time.time() * 1000) - 1},
            )
    new_process()
    outcome = attempt(event, Context())
    assert isinstance(outcome, dict) and outcome["version"] == 1
    assert final_state(wine) == clean_state(True, body)


class LongContext(Context):
    """An invocation with 15 minutes left (the longest Lambda timeout)."""

    remaining_ms = 15 * 60 * 1000


def test_validate_crashed_delivery_holds_its_record_for_the_lease_not_the_whole_timeout(wine: Stores) -> None:
    """Faked: the process dies at the version write. The in-progress expiry Powertools writes is
    capped by functions/handlers/lease.py, so Lambda's retries (about 1 and 3 minutes later) are
    not refused for the function's whole remaining time."""
    from functions.handlers.lease import IN_PROGRESS_LEASE_MS

    event = upload(wine, GOOD_KEY, parquet_bytes(good_columns()))
    started = int(time.time() * 1000)
    with faults.inject("dynamodb.TransactWriteItems", faults.CRASH):
        assert isinstance(attempt(event, LongContext()), faults.Crash)
    table = boto3.resource("dynamodb").Table(wine.metadata_table)
    records = [i for i in table.scan()["Items"] if str(i["pk"]).startswith("idempotency#")]
    assert [r["status"] for r in records] == ["INPROGRESS"]
    expiry = int(records[0]["in_progress_expiration"])
    assert started < expiry <= int(time.time() * 1000) + IN_PROGRESS_LEASE_MS
