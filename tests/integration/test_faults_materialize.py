"""Fault injection on a materialization run through its workflow's task handler: every AWS call of
a clean run, made to fail each way AWS fails (tests/faults.py), with the workflow's Retry and Catch
played as the template declares them (infra/constructs/materialize.py: typed transient errors
retried, a step that still fails recorded on the run by the `fail` step). Whatever the fault, the
run either succeeds with the clean run's online items or is FAILED with the error recorded, and
asking again converges to the clean run's items: nothing is lost, nothing older wins."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from functions.handlers import materialize as handler
from functions.logic import materialize_jobs
from functions.models.errors import StepwiseError
from functions.models.materialize import MaterializeRequest
from functions.models.settings import Settings
from infra.constructs.materialize import TRANSIENT_ERRORS
from tests import faults
from tests.integration.conftest import Stores
from tests.integration.materialize_support import (
    ACTOR,
    ONLINE_TABLE,
    VIEW_NAME,
    online,
    online_snapshot,
    put_view,
    seed_version,
    stats,
)
from tests.integration.test_validate_handler import Context

__all__ = ["online"]  # the fixture, used by name

ATTEMPTS = 3  # the template's max_attempts for the typed transient errors
CUSTOMERS = 8


def _step(event: dict[str, Any]) -> tuple[Any, BaseException | None]:
    """One task as the state machine runs it: retried on the transient errors, up to ATTEMPTS."""
    error: BaseException | None = None
    for _ in range(ATTEMPTS):
        try:
            return handler.lambda_handler(event, Context()), None
        except StepwiseError as exc:
            error = exc
            if type(exc).__name__ not in TRANSIENT_ERRORS and "StoreUnavailable" not in {
                c.__name__ for c in type(exc).__mro__
            }:
                break
        except (Exception, faults.Crash) as exc:  # a crashed or unhandled invocation: not retried
            error = exc
            break
    return None, error


def _fail(run: dict[str, str], error: BaseException) -> None:
    """The Catch: RecordFailure<Step> sends the error to the `fail` step (itself retried)."""
    _step({"step": "fail", **run, "error": {"Error": type(error).__name__, "Cause": str(error)[:500]}})


def run_workflow(run: dict[str, str]) -> None:
    """Plan -> every chunk (a chunk that fails ends as an item; Finish then names it) -> Finish."""
    planned, error = _step({"step": "plan", **run})
    if error is not None:
        return _fail(run, error)
    for task in planned["chunks"]:
        _step({"step": "chunk", "task": task})
    _, error = _step({"step": "finish", **run})
    if error is not None:
        _fail(run, error)
    return None


def _request(settings: Settings) -> dict[str, str]:
    original = materialize_jobs._hand_over
    try:
        materialize_jobs._hand_over = lambda _s, record: record  # type: ignore[assignment]
        record = materialize_jobs.request_materialization(settings, VIEW_NAME, MaterializeRequest(), ACTOR)
    finally:
        materialize_jobs._hand_over = original  # type: ignore[assignment]
    return {"view": VIEW_NAME, "materialization_id": record.materialization_id}


def _clean(stores: Stores, settings: Settings) -> tuple[list[str], dict[str, Any]]:
    put_view(stores)
    seed_version(stores, stats(CUSTOMERS, day=10, spend=100.0))
    run = _request(settings)
    with faults.recording() as calls:
        run_workflow(run)
    return list(calls), online_snapshot()


def _values(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The entries without who wrote them and when (a rerun writes as another run of the view's next
    version, at another time)."""
    who = ("materialization", "written_at", "view_version")
    return {k: {a: v for a, v in i.items() if a not in who} for k, i in snapshot.items()}


# the calls of one clean run (8 customers, 2 rows each, 16-row row groups: one chunk), in order
CLEAN_CALLS = [
    "dynamodb.GetItem",  # plan: the run
    "dynamodb.GetItem",  # the dataset version
    "dynamodb.GetItem",  # its contract
    "s3.HeadObject",  # the source object version
    "s3.GetObject",  # its footer (planner)
    "dynamodb.TransactWriteItems",  # the run RUNNING
    "dynamodb.GetItem",  # chunk: the run
    "dynamodb.GetItem",  # its done marker (none)
    "dynamodb.GetItem",  # the view version
    "dynamodb.GetItem",  # the dataset version
    "dynamodb.GetItem",  # its contract
    "s3.HeadObject",
    "s3.GetObject",  # the footer, then the chunk's row groups
    "s3.GetObject",
    *["dynamodb.UpdateItem"] * CUSTOMERS,  # one conditional write of the view's entry per entity
    "dynamodb.PutItem",  # the done marker
    "dynamodb.GetItem",  # finish: the run
    "dynamodb.Query",  # the markers
    "dynamodb.TransactWriteItems",  # SUCCEEDED + audit
    "dynamodb.GetItem",  # freshness: the view's head
    "dynamodb.GetItem",  # its latest version
    "dynamodb.Query",  # its runs
]
# A failed condition on an online write means "the store holds a newer row" and is counted as
# skipped by design (functions/dal/online_store.py): injecting one where the store holds nothing is
# not a fault AWS can give, so those cases are left out.
_FIRST_WRITE = CLEAN_CALLS.index("dynamodb.UpdateItem")
ONLINE_WRITES = range(_FIRST_WRITE, _FIRST_WRITE + CUSTOMERS)
# The fixed sample run by default (the whole matrix with --full): every fault at the first online
# write and at the done marker, a crash at the first call of each step.
EVERY_FAULT_AT = {_FIRST_WRITE, _FIRST_WRITE + CUSTOMERS}
CRASH_AT = {0, CLEAN_CALLS.index("dynamodb.TransactWriteItems") + 1, _FIRST_WRITE + CUSTOMERS + 1}


def cases() -> list[Any]:
    return [
        pytest.param(
            i,
            fault,
            id=f"{i:02d}-{call}-{fault.name}",
            marks=() if i in EVERY_FAULT_AT or (fault is faults.CRASH and i in CRASH_AT) else (pytest.mark.full,),
        )
        for i, call in enumerate(CLEAN_CALLS)
        for fault in faults.applicable(call)
        if not (i in ONLINE_WRITES and fault is faults.CONDITIONAL_CHECK_FAILED)
    ]


def test_faults_materialize_clean_run_makes_these_calls(stores: Stores, online: Settings) -> None:
    calls, snapshot = _clean(stores, online)
    assert calls == CLEAN_CALLS
    assert len(snapshot) == CUSTOMERS


@pytest.mark.parametrize(("index", "fault"), cases())
def test_faults_materialize_run_fails_recorded_or_converges(
    stores: Stores, online: Settings, index: int, fault: faults.Fault
) -> None:
    # Given the clean run's online items (then the store emptied of them)
    _calls, clean = _clean(stores, online)

    for pk in clean:
        boto3.client("dynamodb").delete_item(TableName=ONLINE_TABLE, Key={"pk": {"S": pk}})
    # When the same source version is materialized again (a new view version, so no done markers)
    # with call `index` failing with `fault`
    put_view(stores)
    run = _request(online)
    with faults.inject_at(index, fault):
        run_workflow(run)
    record = materialize_jobs.get_materialization(online, VIEW_NAME, run["materialization_id"])
    # Then the run succeeded with the clean items, or failed with the error recorded
    if record.status.value == "SUCCEEDED":
        assert _values(online_snapshot()) == _values(clean)
    else:
        assert record.status.value in ("FAILED", "RUNNING", "PENDING"), record
        if record.status.value == "FAILED":
            assert record.error and "arn:aws" not in record.message
        # and asking again (the failed run is run again) converges to the clean items
        again = materialize_jobs.request_materialization(online, VIEW_NAME, MaterializeRequest(), ACTOR)
        if again.status.value != "SUCCEEDED":  # a run left RUNNING by a crash: its workflow goes on
            run_workflow({"view": VIEW_NAME, "materialization_id": again.materialization_id})
        assert _values(online_snapshot()) == _values(clean)
