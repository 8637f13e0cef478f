"""Fault injection for tests: make one AWS call fail the way AWS fails, while every other call
reaches moto as usual.

What is faked and why: AWS does not let us make DynamoDB throttle, S3 time out or IAM refuse on
demand, and moto always answers. So a botocore `before-call` hook (registered in botocore's
BUILTIN_HANDLERS, so every client made after this module is imported carries it, the way moto's
own stubber is installed) answers the chosen call with the error AWS would send, before the
request is made. Our code is not touched: the dal sees a real botocore ClientError (or a
ReadTimeoutError, or, for a crash, an exception nothing in our code catches, as when the Lambda
runtime kills the process mid-run). REPLY_LOST lets the call take effect in moto and then raises
ReadTimeoutError from an `after-call` hook: the write happened, the caller never heard.

    with faults.inject("dynamodb.TransactWriteItems", faults.THROTTLING):
        ...                                # that call throttles, once
    with faults.recording() as calls:      # which AWS calls a run makes, in order
        ...
    with faults.inject_at(3, faults.CRASH): # the 4th AWS call of the run crashes the process
        ...

Clients made before `install()` do not carry the hook; `install()` clears the dal's client
caches so the next call makes new ones (and is called by `inject`/`recording`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError
from botocore.handlers import BUILTIN_HANDLERS


class Crash(BaseException):
    """The Lambda process died mid-run (timeout, out of memory, SIGKILL): a BaseException so no
    `except Exception` in our code can swallow it, as nothing can catch a killed process."""


@dataclass(frozen=True)
class Fault:
    """How one AWS call fails: an AWS error (code, HTTP status), a timeout, or a crash."""

    name: str
    code: str = ""
    status: int = 400
    s3_code: str = ""  # S3 names some errors differently (and answers with other statuses)
    s3_status: int = 0

    def raise_or_answer(self, service: str, operation: str) -> tuple[AWSResponse, dict[str, Any]]:
        if self.name in ("timeout", "reply-lost"):
            raise ReadTimeoutError(endpoint_url=f"https://{service}.us-east-1.amazonaws.com/")
        if self.name == "crash":
            raise Crash(f"process killed during {service}.{operation}")
        code, status = (
            (self.s3_code or self.code, self.s3_status or self.status) if service == "s3" else (self.code, self.status)
        )
        parsed = {
            "Error": {"Code": code, "Message": f"injected {self.name} on {service}.{operation}"},
            "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}},
        }
        return AWSResponse(f"https://{service}.amazonaws.com/", status, {}, None), parsed


THROTTLING = Fault("throttling", "ThrottlingException", 400, s3_code="SlowDown", s3_status=503)
DYNAMODB_THROTTLING = Fault("throughput", "ProvisionedThroughputExceededException", 400)
ACCESS_DENIED = Fault("access-denied", "AccessDeniedException", 400, s3_code="AccessDenied", s3_status=403)
CONDITIONAL_CHECK_FAILED = Fault("conditional-check-failed", "ConditionalCheckFailedException", 400)
NO_SUCH_KEY = Fault("no-such-key", "NoSuchKey", 404)
TIMEOUT = Fault("timeout")
# the call reaches AWS (moto) and takes effect, then its reply never arrives (ReadTimeoutError): the
# caller cannot tell it from TIMEOUT, and a retry must cope with the write already done
REPLY_LOST = Fault("reply-lost")
CRASH = Fault("crash")
# the faults every step is put through (NoSuchKey only where the step reads S3)
EVERY_FAULT = (THROTTLING, ACCESS_DENIED, CONDITIONAL_CHECK_FAILED, TIMEOUT, REPLY_LOST, NO_SUCH_KEY, CRASH)
DYNAMODB_WRITES = frozenset(
    {"dynamodb.PutItem", "dynamodb.UpdateItem", "dynamodb.TransactWriteItems", "dynamodb.DeleteItem"}
)
S3_READS = frozenset({"s3.HeadObject", "s3.GetObject", "s3.CopyObject"})
S3_WRITES = frozenset({"s3.PutObject", "s3.CopyObject", "s3.DeleteObject", "s3.DeleteObjects", "s3.PutObjectTagging"})


def applicable(call: str) -> list[Fault]:
    """The faults AWS can give `call` ("dynamodb.PutItem"): throttling, refusal, timeout and a crash
    for every call; provisioned-throughput throttling for DynamoDB; a failed condition for DynamoDB
    writes; a lost reply for every write (it took effect); NoSuchKey where S3 reads an object."""
    chosen = [THROTTLING, ACCESS_DENIED, TIMEOUT, CRASH]
    if call.startswith("dynamodb."):
        chosen.append(DYNAMODB_THROTTLING)
    if call in DYNAMODB_WRITES:
        chosen.append(CONDITIONAL_CHECK_FAILED)
    if call in DYNAMODB_WRITES or call in S3_WRITES:
        chosen.append(REPLY_LOST)
    if call in S3_READS:
        chosen.append(NO_SUCH_KEY)
    return chosen


def typed_for(fault: Fault, error: BaseException) -> bool:
    """Whether `error` is what a caller may see for `fault`: the crash itself, or one of our typed
    errors (throttling: Throttled or StoreUnavailable, both retried; a failed condition: Conflict;
    NoSuchKey: NotFound; a refusal, timeout or lost reply: StoreUnavailable, not Throttled)."""
    from functions.models.errors import Conflict, NotFound, StoreUnavailable, Throttled

    if fault is CRASH:
        return isinstance(error, Crash)
    if fault in (THROTTLING, DYNAMODB_THROTTLING):
        return isinstance(error, StoreUnavailable)
    if fault is CONDITIONAL_CHECK_FAILED:
        return isinstance(error, (Conflict, StoreUnavailable))
    if fault is NO_SUCH_KEY:
        return isinstance(error, (NotFound, StoreUnavailable))
    return isinstance(error, StoreUnavailable) and not isinstance(error, Throttled)


def assert_typed_outcome(fault: Fault, outcome: object) -> None:
    """A run that failed under `fault` failed with the error a caller may see (typed_for), and its
    message names no ARN and no AccessDenied (never a raw botocore error)."""
    from functions.models.errors import StepwiseError

    if isinstance(outcome, BaseException):
        assert typed_for(fault, outcome), f"{type(outcome).__name__}: {outcome}"
        if isinstance(outcome, StepwiseError):
            assert "arn:aws" not in outcome.message and "AccessDenied" not in outcome.message


def reply_header(reply: dict[str, Any], name: str) -> str | None:
    """A header of an API Gateway proxy reply (single- or multi-valued)."""
    single = {k.lower(): v for k, v in (reply.get("headers") or {}).items()}
    multi = {k.lower(): v for k, v in (reply.get("multiValueHeaders") or {}).items()}
    if name.lower() in single:
        return str(single[name.lower()])
    values = multi.get(name.lower())
    return str(values[0]) if values else None


@dataclass
class _Rule:
    fault: Fault
    match: Callable[[str, dict[str, Any]], bool]
    times: int
    skip: int = 0
    fired: list[str] = field(default_factory=list)


@dataclass
class _State:
    rules: list[_Rule] = field(default_factory=list)
    recorders: list[list[str]] = field(default_factory=list)
    count: int = 0  # AWS calls seen since the last inject_at/recording began


_STATE = _State()


def _before_call(
    event_name: str, params: dict[str, Any] | None = None, context: dict[str, Any] | None = None, **_: Any
) -> Any:
    # event_name: before-call.<service-id>.<Operation>, e.g. before-call.dynamodb.PutItem
    if context is not None:  # a session may carry the hook twice (BUILTIN_HANDLERS and install())
        if context.get("stepwise_faults_seen"):
            return None
        context["stepwise_faults_seen"] = True
    _, service, operation = event_name.split(".", 2)
    call = f"{service}.{operation}"
    for recorder in _STATE.recorders:
        recorder.append(call)
    index = _STATE.count
    _STATE.count += 1
    for rule in _STATE.rules:
        if len(rule.fired) >= rule.times or not rule.match(call, {"index": index, "params": params or {}}):
            continue
        if rule.skip > 0:
            rule.skip -= 1
            continue
        rule.fired.append(call)
        if rule.fault is REPLY_LOST and context is not None:
            context["stepwise_reply_lost"] = True  # let it through; _after_call loses the reply
            return None
        return rule.fault.raise_or_answer(service, operation)
    return None


def _after_call(event_name: str, context: dict[str, Any] | None = None, **_: Any) -> None:
    if context is not None and context.pop("stepwise_reply_lost", False):
        _, service, operation = event_name.split(".", 2)
        REPLY_LOST.raise_or_answer(service, operation)


_INSTALLED = False


def install() -> None:
    """Put the hook into every client made from now on (new sessions, and boto3's default session
    already made), and make the dal make new clients."""
    global _INSTALLED
    if not _INSTALLED:
        BUILTIN_HANDLERS.append(("before-call", _before_call))
        BUILTIN_HANDLERS.append(("after-call", _after_call))
        _INSTALLED = True
    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    session = boto3.DEFAULT_SESSION._session  # type: ignore[union-attr]
    session.register("before-call", _before_call, unique_id="stepwise-faults")
    session.register("after-call", _after_call, unique_id="stepwise-faults-after")
    from functions.dal import clients

    clients.client.cache_clear()
    clients.resource.cache_clear()


@contextmanager
def _rule(rule: _Rule) -> Iterator[_Rule]:
    install()
    _STATE.rules.append(rule)
    try:
        yield rule
    finally:
        _STATE.rules.remove(rule)


def _request(params: dict[str, Any]) -> dict[str, Any]:
    """What `where` sees of a request: `url_path` (S3: /bucket/key) and `body` (JSON-decoded for the
    JSON protocols: DynamoDB, Step Functions)."""
    body = params.get("body") or b""
    try:
        decoded = json.loads(body) if body else {}
    except (ValueError, TypeError):
        decoded = {}
    return {"url_path": params.get("url_path", ""), "body": decoded if isinstance(decoded, dict) else {}}


def inject(
    call: str, fault: Fault, *, times: int = 1, skip: int = 0, where: Callable[[dict[str, Any]], bool] | None = None
) -> Any:
    """Fail `call` ("dynamodb.PutItem", "s3.GetObject"; "dynamodb.*" for any DynamoDB call) with
    `fault` `times` times, after letting `skip` matching calls through; `where(request)` narrows it
    to calls whose request matches (e.g. `lambda r: r["body"].get("TableName") == table`).
    Yields the rule: `rule.fired` lists what failed."""

    def match(name: str, seen: dict[str, Any]) -> bool:
        service, _, operation = call.partition(".")
        got_service, _, got_operation = name.partition(".")
        return (
            service == got_service
            and operation in ("*", got_operation)
            and (where is None or where(_request(seen["params"])))
        )

    return _rule(_Rule(fault, match, times, skip))


@contextmanager
def inject_at(index: int, fault: Fault) -> Iterator[_Rule]:
    """Fail the `index`-th AWS call (0-based) made inside the block, whatever it is."""
    _STATE.count = 0
    with _rule(_Rule(fault, lambda _name, seen: seen["index"] == index, 1)) as rule:
        yield rule


@contextmanager
def recording() -> Iterator[list[str]]:
    """The AWS calls made inside the block, in order ("dynamodb.PutItem", ...)."""
    install()
    calls: list[str] = []
    _STATE.count = 0
    _STATE.recorders.append(calls)
    try:
        yield calls
    finally:
        _STATE.recorders.remove(calls)
