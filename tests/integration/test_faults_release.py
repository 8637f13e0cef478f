"""Fault injection for approval and promotion: every AWS call of each step fails in turn, the way
AWS fails it (throttling, AccessDenied, ConditionalCheckFailed, a timeout, S3 NoSuchKey, or the
process killed mid-run), and the step is then retried without the fault.

What is faked and why: AWS does not throttle, refuse or time out on demand and moto always answers,
so tests/faults.py answers the i-th AWS call of the step with AWS's error (or raises the timeout or
the crash) before the request is made. Our code runs unchanged on moto.

For each (step, call, fault):
(a) the caller sees the documented error: a workflow task raises a typed error the state machine
    retries (TRANSIENT_ERRORS) or catches (a Conflict for a failed condition), never a raw
    ClientError; a crash propagates as the crash; the API answers 429/503 with Retry-After (409 for
    a failed condition) and a JSON body naming the error, with no ARN, AccessDenied or traceback;
(b) nothing half-written: aliases point at versions with that status whose artifact exists, the
    approval record agrees with the version's status, and the audit trail replays to the statuses
    (an event exists iff the state changed);
(c) the retry succeeds and leaves what a clean run leaves (compared against a clean run of the same
    step on another model in the same stores).

Each step's calls are recorded from a clean run; every index x fault is a case. The unmarked tests
are a representative subset; the `full` ones (run with --full) put every step through every fault.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from functions.dal import approvals as approvals_dal
from functions.dal import audit
from functions.handlers import approval, release
from functions.logic import approvals, releases
from functions.models.approvals import ApprovalExpired, ApprovalStatus, ApprovalTaskEvent, CanaryCheckFailed
from functions.models.audit import Actor, model_target
from functions.models.errors import Conflict, StepwiseError, StoreUnavailable, Throttled
from functions.models.registry import TRANSITIONS
from functions.models.registry import VersionStatus as S
from functions.models.settings import get_settings
from functions.observability import NAMESPACE, SERVICE
from infra.constructs.lifecycle import TRANSIENT_ERRORS
from tests import faults
from tests.integration.approval_support import (
    ACCOUNT,
    REGION,
    Context,
    api_event,
    execution_done,
    lambdas_in_process,
    wait_for,
)
from tests.integration.conftest import Stores
from tests.integration.release_support import register

OPS = Actor(identity="ops")
LEAKS = ("arn:", "AccessDenied", "Traceback", "stepwise-", 'File "')


# -- the documented error for a fault --------------------------------------------------------
def expected_error(fault: faults.Fault, call: str) -> tuple[type[StepwiseError], ...]:
    """The typed error(s) a fault on `call` must leave as.

    Known gap (functions/dal/registry.py, not owned here): its reads wrap every ClientError as
    StoreUnavailable, so a throttled registry GetItem is a 503 where it should be a 429."""
    if fault is faults.THROTTLING:
        return (Throttled, StoreUnavailable) if call == "dynamodb.GetItem" else (Throttled,)
    if fault is faults.CONDITIONAL_CHECK_FAILED:
        return (Conflict,)
    return (StoreUnavailable,)


def api_status(fault: faults.Fault, call: str) -> set[int]:
    return {e.status_code for e in expected_error(fault, call) if e is not StoreUnavailable} | (
        {503} if StoreUnavailable in expected_error(fault, call) else set()
    )


def faults_for(call: str, chosen: tuple[faults.Fault, ...]) -> list[faults.Fault]:
    return [f for f in chosen if f is not faults.NO_SUCH_KEY or call.startswith("s3.")]


def assert_clean_body(reply: dict[str, Any]) -> dict[str, Any]:
    raw = reply.get("body") or ""
    for leak in LEAKS:
        assert leak not in raw, f"error body leaks {leak!r}: {raw}"
    body = json.loads(raw)
    assert set(body) >= {"error", "message"}
    return dict(body)


# -- (b) and (c): what the stores hold --------------------------------------------------------
def snapshot(stores: Stores, model: str) -> dict[str, Any]:
    """The model's release state, with the model name left out (clean and faulty runs compare)."""
    s = get_settings()
    state = releases.read_state(s, model)
    requests = {}
    for n in state.versions:
        stored = approvals_dal.get(s.metadata_table, f"{model}-{n}")
        if stored is not None:
            requests[n] = stored.request.status.value  # a leftover token is harmless by design
    trail = audit.list_events(s.metadata_table, target=model_target(model))
    r = state.record
    return {
        "aliases": (r.production_version, r.candidate_version, r.candidate_weight, r.revision),
        "versions": {n: v.status.value for n, v in state.versions.items()},
        "approvals": requests,
        "audit": Counter((e.action, e.version) for e in trail),
    }


def assert_consistent(stores: Stores, model: str) -> None:
    """Nothing half-written: aliases, statuses, approval records and the audit trail agree."""
    s = get_settings()
    state = releases.read_state(s, model)
    r = state.record
    s3 = boto3.client("s3")
    for number, status in ((r.production_version, S.PRODUCTION), (r.candidate_version, S.CANARY)):
        if number is None:
            continue
        v = state.versions.get(number)
        assert v is not None and v.status == status, f"alias -> v{number} is {v.status if v else 'missing'}"
        bucket, key = v.artifacts["onnx"].uri[5:].split("/", 1)
        s3.head_object(Bucket=bucket, Key=key)  # the aliased version's artifact exists
    assert [n for n, v in state.versions.items() if v.status == S.PRODUCTION] == (
        [r.production_version] if r.production_version else []
    )
    assert [n for n, v in state.versions.items() if v.status == S.CANARY] == (
        [r.candidate_version] if r.candidate_version else []
    )
    for n, v in state.versions.items():
        stored = approvals_dal.get(s.metadata_table, f"{model}-{n}")
        if stored is None:
            continue
        decided = stored.request.status
        if decided == ApprovalStatus.PENDING:
            assert v.status == S.PENDING_APPROVAL, (n, decided, v.status)
        elif decided == ApprovalStatus.APPROVED:
            assert v.status not in (S.PENDING_APPROVAL, S.REJECTED), (n, decided, v.status)
        else:
            assert v.status == S.REJECTED, (n, decided, v.status)
    replayed: dict[int, S] = {}
    events = audit.list_events(s.metadata_table, target=model_target(model))
    for e in events:
        if e.version is None or not e.action.startswith("version.") or not e.after:
            continue
        after = S(e.after["status"])
        if e.action != "version.register":
            before = S(e.before["status"])  # type: ignore[index]
            assert replayed[e.version] == before and after in TRANSITIONS[before], (e.action, e.version)
        replayed[e.version] = after
    assert replayed == {n: v.status for n, v in state.versions.items()}
    assert sum(1 for e in events if e.action == "model.aliases") == r.revision


# -- the steps ------------------------------------------------------------------------------
@dataclass
class Step:
    """`given(stores, model)` prepares a model; `when(model)` runs the step once and returns what
    the caller got: a result, or the typed error it raised (an expected outcome, e.g. a failed
    canary check); `tolerated`: calls whose failure the step absorbs by design."""

    name: str
    given: Callable[[Stores, str], None]
    when: Callable[[str], Any]
    tolerated: tuple[str, ...] = ()


def approved(stores: Stores, model: str, count: int = 1) -> None:
    for _ in range(count):
        v = register(stores, model)
        releases.approve(get_settings(), model, v.version, OPS, "ok")


def in_production(stores: Stores, model: str) -> None:
    approved(stores, model, 2)
    releases.promote(get_settings(), model, 1, OPS)


def in_canary(stores: Stores, model: str) -> None:
    in_production(stores, model)
    releases.start_canary(get_settings(), model, 2, 0.1, OPS, "try")


def failing_canary(stores: Stores, model: str) -> None:
    in_canary(stores, model)
    put_serving_metrics_for(model, 2, ok=45, errors=5)


def put_serving_metrics_for(model: str, version: int, *, ok: int, errors: int) -> None:
    """What serving publishes for the candidate (functions/dal/releases.py canary_metrics reads it)."""
    dims = [
        {"Name": "service", "Value": SERVICE},
        {"Name": "model", "Value": model},
        {"Name": "version", "Value": str(version)},
    ]
    data: list[dict[str, Any]] = [
        {"MetricName": "Latency", "Dimensions": dims, "Value": 12.0, "Unit": "Milliseconds"} for _ in range(ok)
    ]
    data.append({"MetricName": "ServerErrors", "Dimensions": dims, "Value": errors, "Unit": "Count"})
    for i in range(0, len(data), 20):
        boto3.client("cloudwatch").put_metric_data(Namespace=NAMESPACE, MetricData=data[i : i + 20])


def pending(stores: Stores, model: str) -> None:
    register(stores, model)


def pending_request(stores: Stores, model: str) -> None:
    register(stores, model)
    approvals.request_approval(get_settings(), task_event(model, "token-0"))


def task_event(model: str, token: str) -> ApprovalTaskEvent:
    return ApprovalTaskEvent.model_validate(
        {"token": token, "model": model, "version": 1, "execution": f"exec-{model}", "timeout_seconds": 3600}
    )


def release_task(action: str, version: int, **extra: Any) -> Callable[[str], Any]:
    strategy = {"kind": "canary", "weight": 0.1, "bake_seconds": 60, "check": {"latency_stat": "Maximum"}}

    def run(model: str) -> Any:
        event = {"action": action, "model": model, "version": version, "execution": f"exec-{model}"}
        return release.lambda_handler({**event, "strategy": strategy, **extra}, Context())

    return run


def approval_task(model: str) -> Any:
    event = task_event(model, f"token-{model}").model_dump(mode="json")
    return approval.lambda_handler(event, Context())


STEPS = {
    s.name: s
    for s in (
        Step("request_approval", pending, approval_task),
        Step("promote", lambda st, m: approved(st, m), release_task("promote", 1), tolerated=("s3.PutObject",)),
        Step("start_canary", in_production, release_task("start_canary", 2)),
        Step("complete_canary", in_canary, release_task("complete_canary", 2)),
        Step("rollback_canary", in_canary, release_task("rollback_canary", 2, reason="bad")),
        Step("check_canary", failing_canary, release_task("check_canary", 2)),
        Step("expire", pending_request, release_task("expire", 1)),
    )
}
# a failed canary check and an expiry end in a typed error by design (the state machine catches it)
OUTCOME_ERRORS = (CanaryCheckFailed, ApprovalExpired)


def outcome(step: Step, model: str) -> Any:
    try:
        result = step.when(model)
    except OUTCOME_ERRORS as exc:
        return type(exc).__name__
    if isinstance(result, dict):
        varying = ("model", "id", "requested_at", "expires_at", "execution", "artifact_sha256", "run_id", "detail")
        return {k: v for k, v in result.items() if k not in varying}
    return result


def recorded_calls(stores: Stores, step: Step) -> tuple[list[str], dict[str, Any], Any]:
    """A clean run: its AWS calls, the state it leaves, its result."""
    step.given(stores, "clean")
    with faults.recording() as calls:
        result = outcome(step, "clean")
    return list(calls), snapshot(stores, "clean"), result


def run_matrix(stores: Stores, step: Step, chosen: tuple[faults.Fault, ...]) -> int:
    """Every call of the step x every chosen fault; returns the number of cases."""
    calls, clean, clean_result = recorded_calls(stores, step)
    assert calls, f"{step.name} made no AWS call"
    cases = 0
    for index, call in enumerate(calls):
        for fault in faults_for(call, chosen):
            model = f"m{cases}"
            case = f"{step.name}: call {index} ({call}) {fault.name}"
            step.given(stores, model)
            before = snapshot(stores, model)
            failed: BaseException | None = None
            with faults.inject_at(index, fault) as rule:
                try:
                    outcome(step, model)
                except BaseException as exc:  # the crash too: that is the point
                    failed = exc
            assert rule.fired == [call], f"{case}: the run's calls changed: fired {rule.fired}"
            if fault is faults.CRASH:
                assert isinstance(failed, faults.Crash), f"{case}: the crash did not propagate: {failed!r}"
            elif failed is None:
                assert call in step.tolerated, f"{case}: the fault was swallowed"
            else:
                assert isinstance(failed, expected_error(fault, call)), f"{case}: raised {failed!r}"
                assert type(failed).__name__ in TRANSIENT_ERRORS or isinstance(failed, Conflict), case
            # (b) nothing half-written
            assert_consistent(stores, model)
            refused = failed is not None and not isinstance(failed, faults.Crash) and fault is not faults.REPLY_LOST
            if refused and call.startswith("dynamodb.Transact"):  # a lost reply: it was written, the retry copes
                assert snapshot(stores, model) == before, f"{case}: a refused transaction wrote something"
            # (c) the retry succeeds and leaves what a clean run leaves
            assert outcome(step, model) == clean_result, case
            assert snapshot(stores, model) == clean, case
            assert_consistent(stores, model)
            cases += 1
    return cases


FAST = (faults.THROTTLING, faults.CRASH)


@pytest.mark.parametrize("step", ["request_approval", "promote", "check_canary"])
def test_faults_release_step_fails_typed_writes_nothing_half_and_retries_clean(stores: Stores, step: str) -> None:
    # Given the step's clean run recorded; When each of its AWS calls throttles or the
    # process dies there; Then typed error, consistent stores, and the retry ends as the clean run
    assert run_matrix(stores, STEPS[step], FAST) >= 3


@pytest.mark.full
@pytest.mark.parametrize("step", sorted(STEPS))
def test_faults_release_step_every_call_every_fault(stores: Stores, step: str) -> None:
    assert run_matrix(stores, STEPS[step], faults.EVERY_FAULT) >= 3


# -- the API: decisions (a waiting workflow) and rollback ------------------------------------
WAIT_ONLY = {
    "StartAt": "RequestApproval",
    "States": {
        "RequestApproval": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {
                "FunctionName": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:approval",
                "Payload": {
                    "token.$": "$$.Task.Token",
                    "model.$": "$.model",
                    "version.$": "$.version",
                    "execution.$": "$$.Execution.Id",
                    "timeout_seconds": 3600,
                },
            },
            "End": True,
        }
    },
}


@dataclass
class Workflows:
    machine: str

    def waiting(self, stores: Stores, model: str) -> str:
        """Version 1 of `model` registered and its (one-state) workflow waiting for the decision."""
        register(stores, model)
        sf = boto3.client("stepfunctions")
        arn = sf.start_execution(
            stateMachineArn=self.machine, name=model, input=json.dumps({"model": model, "version": 1})
        )["executionArn"]
        wait_for(lambda: approvals_dal.get(get_settings().metadata_table, f"{model}-1"), "the approval request")
        return str(arn)


@pytest.fixture
def workflows(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> Workflows:
    ctx = lambdas_in_process(monkeypatch, {"approval": approval.lambda_handler})
    ctx.__enter__()
    machine = boto3.client("stepfunctions").create_state_machine(
        name="wait", definition=json.dumps(WAIT_ONLY), roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn"
    )["stateMachineArn"]
    return Workflows(str(machine))


def call_api(method: str, path: str, body: Any, who: str) -> dict[str, Any]:
    from functions.handlers import api

    return dict(api.lambda_handler(api_event(method, path, body, who=who), Context()))


def decide_matrix(stores: Stores, workflows: Workflows, verb: str, chosen: tuple[faults.Fault, ...]) -> int:
    def decide(model: str) -> dict[str, Any]:
        return call_api("POST", f"/v1/approvals/{model}-1/{verb}", {"reason": "looks right"}, "alice")

    arn = workflows.waiting(stores, "clean")
    with faults.recording() as recorded:
        assert decide("clean")["statusCode"] == 200
    calls = list(recorded)
    clean_done = wait_for(lambda: execution_done(arn), "the clean execution")["status"]
    clean = snapshot(stores, "clean")
    cases = 0
    for index, call in enumerate(calls):
        for fault in faults_for(call, chosen):
            model = f"m{cases}"
            case = f"{verb}: call {index} ({call}) {fault.name}"
            arn = workflows.waiting(stores, model)
            crashed, status = False, 0
            with faults.inject_at(index, fault) as rule:
                try:
                    reply = decide(model)
                except faults.Crash:
                    crashed = True
            assert rule.fired == [call], f"{case}: fired {rule.fired}"
            if not crashed:
                assert fault is not faults.CRASH, f"{case}: the crash was swallowed"
                status = reply["statusCode"]
                if status == 200:  # after the decision: the model card (a view) or the token cleanup
                    best_effort = index > calls.index("dynamodb.TransactWriteItems")
                    assert best_effort and not call.startswith("stepfunctions."), f"{case}: the fault was swallowed"
                else:
                    assert status in api_status(fault, call), f"{case}: {status} {reply.get('body')}"
                    body = assert_clean_body(reply)
                    if status != 409:
                        assert faults.reply_header(reply, "Retry-After") == str(body["retry_after_seconds"]), case
            assert_consistent(stores, model)
            # the decider retries: the decision is delivered once, the workflow ends as the clean one
            if status != 200:
                retry = decide(model)
                assert retry["statusCode"] == 200, f"{case}: retry {retry['statusCode']} {retry.get('body')}"
            assert wait_for(lambda arn=arn: execution_done(arn), case)["status"] == clean_done, case
            assert snapshot(stores, model) == clean, case
            cases += 1
    return cases


def test_faults_approval_decision_is_delivered_by_the_retry(stores: Stores, workflows: Workflows) -> None:
    # Given a waiting workflow; When each call of an approval throttles or the process dies there,
    # Then 429/503 (or the crash), consistent stores, and the retry delivers the decision once
    assert decide_matrix(stores, workflows, "approve", (faults.THROTTLING, faults.CRASH)) >= 5


@pytest.mark.full
@pytest.mark.parametrize("verb", ["approve", "reject"])
def test_faults_approval_decision_every_call_every_fault(stores: Stores, workflows: Workflows, verb: str) -> None:
    assert decide_matrix(stores, workflows, verb, faults.EVERY_FAULT) >= 5


def rollback_matrix(stores: Stores, chosen: tuple[faults.Fault, ...], *, canary: bool = False) -> int:
    """POST /v1/models/{name}/rollback with the aliases the operator saw. Production (1 then 2)
    back to a named target: a retry after a written attempt finds it restored (200). A canary (2
    over production 1): a retry after a written attempt finds its expectation stale (409
    StaleExpectation) and writes nothing; it is never a second rollback."""

    def given(model: str) -> None:
        approved(stores, model, 2)
        releases.promote(get_settings(), model, 1, OPS)
        if canary:
            releases.start_canary(get_settings(), model, 2, 0.1, OPS, "try")
        else:
            releases.promote(get_settings(), model, 2, OPS)

    body: dict[str, Any] = {"reason": "bad", "expected_production_version": 1, "expected_canary_version": 2}
    if not canary:
        body = {"reason": "bad", "expected_production_version": 2, "to_version": 1}

    def roll_back(model: str) -> dict[str, Any]:
        return call_api("POST", f"/v1/models/{model}/rollback", body, "carol")

    given("clean")
    with faults.recording() as recorded:
        assert roll_back("clean")["statusCode"] == 200
    calls, clean = list(recorded), snapshot(stores, "clean")
    cases = 0
    for index, call in enumerate(calls):
        for fault in faults_for(call, chosen):
            model = f"m{cases}"
            case = f"rollback: call {index} ({call}) {fault.name}"
            given(model)
            with faults.inject_at(index, fault):
                try:
                    reply: dict[str, Any] | None = roll_back(model)
                except faults.Crash:
                    reply = None
            if reply is None:
                assert fault is faults.CRASH, case
            else:
                assert fault is not faults.CRASH, f"{case}: the crash was swallowed"
                assert reply["statusCode"] in api_status(fault, call), f"{case}: {reply}"
                body_ = assert_clean_body(reply)
                if reply["statusCode"] != 409:
                    assert faults.reply_header(reply, "Retry-After") == str(body_["retry_after_seconds"]), case
            assert_consistent(stores, model)
            written = snapshot(stores, model) == clean
            retry = roll_back(model)
            if canary and written:
                assert retry["statusCode"] == 409, f"{case}: {retry}"
                assert json.loads(retry["body"])["error"] == "StaleExpectation", case
            else:
                assert retry["statusCode"] == 200, f"{case}: {retry}"
            assert snapshot(stores, model) == clean, case
            cases += 1
    return cases


@pytest.mark.parametrize("canary", [False, True], ids=["production", "canary"])
def test_faults_rollback_route_answers_typed_and_its_retry_restores_once(stores: Stores, canary: bool) -> None:
    assert rollback_matrix(stores, (faults.THROTTLING, faults.CRASH), canary=canary) >= 5


@pytest.mark.full
@pytest.mark.parametrize("canary", [False, True], ids=["production", "canary"])
def test_faults_rollback_route_every_call_every_fault(stores: Stores, canary: bool) -> None:
    assert rollback_matrix(stores, faults.EVERY_FAULT, canary=canary) >= 5
