"""Fault injection on the reproduce function: each AWS call of a clean reproduction made to fail
each way AWS fails, then the event delivered again when the function failed (what Lambda's
asynchronous retry does). Whatever the fault, the reproduction ends SUCCEEDED (identical) or FAILED
naming a typed error, with exactly one result audit event, and a new request afterwards reproduces
cleanly: nothing is left RUNNING, nothing half-written.

What is faked and why: see tests/faults.py (one botocore call at a time answers with the error AWS
would send, or a lost reply, or a killed process); the function's real handler runs, started by the
real API route, its asynchronous event queued as Lambda queues it (tests/integration/
test_governance_reproduce.py `deliveries`).
"""

from __future__ import annotations

from typing import Any

import pytest

from functions.dal import audit as audit_dal
from functions.models.audit import model_target
from tests import faults
from tests.integration.approval_support import call
from tests.integration.conftest import Stores
from tests.integration.test_governance_reproduce import PATH, _rejected_version, deliver

# The reproduce function's AWS calls in a clean run (test_reproduce_clean_run_makes_these_calls keeps it true)
CALLS = [
    "dynamodb.GetItem",  # the version's reproduction record
    "dynamodb.GetItem",  # the registry version
    "dynamodb.GetItem",  # spec
    "dynamodb.GetItem",  # dataset version
    "dynamodb.GetItem",  # contract
    "s3.GetObject",  # the dataset object (its recorded version)
    "s3.GetObject",  # the recorded skops artifact
    "dynamodb.TransactWriteItems",  # outcome + audit version.reproduce.result
]
TYPED = {"StoreUnavailable", "Throttled", "NotFound", "Conflict", "IntegrityError"}


def cases() -> list[Any]:
    """Every call x fault. Unmarked (fast): every fault at the outcome's write, and a crash at each
    call; the rest is marked full (run with --full)."""
    params = []
    for i, call_ in enumerate(CALLS):
        for fault in faults.applicable(call_):
            fast = call_ == "dynamodb.TransactWriteItems" or fault is faults.CRASH
            marks = [] if fast else [pytest.mark.full]
            params.append(pytest.param(i, fault, id=f"{i:02d}-{call_}-{fault.name}", marks=marks))
    return params


def _results(stores: Stores) -> list[Any]:
    events = audit_dal.list_events(stores.metadata_table, target=model_target("toy-model"))
    return [e for e in events if e.action == "version.reproduce.result"]


def test_reproduce_clean_run_makes_these_calls(stores: Stores, deliveries: list[dict[str, Any]]) -> None:
    _rejected_version(stores)
    call("POST", PATH, {})
    with faults.recording() as made:
        assert deliver(deliveries[0])["status"] == "SUCCEEDED"
    assert made == CALLS


@pytest.mark.parametrize(("index", "fault"), cases())
def test_reproduce_survives_each_fault_and_ends_with_one_typed_outcome(
    stores: Stores,
    deliveries: list[dict[str, Any]],
    index: int,
    fault: faults.Fault,
) -> None:
    # Given a reproduction requested through the API
    _rejected_version(stores)
    call("POST", PATH, {})
    # When the index-th AWS call of the function fails with the fault
    with faults.inject_at(index, fault) as rule:
        try:
            outcome: dict[str, Any] | BaseException = deliver(deliveries[0])
        except BaseException as exc:
            outcome = exc
    assert rule.fired, "the fault was not injected"
    # Then the function failed with a typed error (or the crash), never a raw botocore one, and
    # Lambda's retry of the same event ends it
    faults.assert_typed_outcome(fault, outcome)
    if isinstance(outcome, BaseException):
        faults.install()  # a new execution environment: fresh clients
        deliver(deliveries[0])
    # And the reproduction has ended, once: SUCCEEDED identical, or FAILED naming a typed error
    _, done = call("GET", PATH)
    assert done["status"] in ("SUCCEEDED", "FAILED"), done
    if done["status"] == "SUCCEEDED":
        assert done["result"]["identical"], done
    else:
        assert done["error"] in TYPED and done["message"] and "arn:aws" not in done["message"], done
    (result,) = _results(stores)
    assert result.after is not None and result.after["status"] == done["status"]
    # And a new request afterwards reproduces cleanly
    status, again = call("POST", PATH, {})
    assert status == 202 and again["reproduction_id"] != done["reproduction_id"]
    assert deliver(deliveries[-1])["status"] == "SUCCEEDED"
    assert call("GET", PATH)[1]["result"]["identical"]


def test_reproduce_request_whose_start_reply_is_lost_still_invokes_the_function(
    stores: Stores,
    deliveries: list[dict[str, Any]],
) -> None:
    # Given a version; When the start's write takes effect but its reply is lost
    _rejected_version(stores)
    with faults.inject("dynamodb.TransactWriteItems", faults.REPLY_LOST) as rule:
        status, started = call("POST", PATH, {})
    assert rule.fired
    # Then the request still owns the stored reproduction and the function was invoked for it
    assert status == 202 and len(deliveries) == 1, started
    assert deliveries[0]["reproduction_id"] == started["reproduction_id"]
    assert deliver(deliveries[0])["status"] == "SUCCEEDED"
