"""The drift fleet's real state machine (infra/constructs/drift_fleet.py), executed by moto's Step
Functions interpreter with its Lambda invokes routed to the real drift handler in-process: one
scheduled round lists the models page by page and checks each due model as its own invocation.

The scale test registers STEPWISE_FLEET_MODELS models (a fixed sample of 12 by default; 200 with
--slow) with tiny captured windows, and prints the round's wall time and invocations beside the
sequential sweep of one invocation (`{"all_models": true}`, the design the round replaces) on the
same models.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import threading
import time
import traceback
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aws_cdk as cdk
import boto3
import pytest
from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from moto.awslambda.models import LambdaBackend
from moto.awslambda_simple.models import LambdaSimpleBackend

from functions.dal import monitoring as monitoring_dal
from functions.handlers import drift as drift_handler
from functions.models.drift import DriftSettings
from infra.constructs.drift_fleet import DriftFleet
from tests import faults
from tests.integration.conftest import Stores
from tests.integration.test_drift_check import Context, _register, _rows

ACCOUNT, REGION = "123456789012", "us-east-1"
QUEUE = "drift-dead-letters"
SCHEDULED = "2026-11-26T12:00:00Z"
CAPTURED_HOUR = datetime(2026, 11, 26, 11, 0, tzinfo=UTC)


def definition(*, concurrency: int = 10, page_size: int = 5) -> str:
    """The construct's definition with the drift function and the queue at fixed names."""
    app = cdk.App()
    stack = cdk.Stack(app, "FleetOnly", env=cdk.Environment(account=ACCOUNT, region=REGION))
    fn = lambda_.Function.from_function_arn(stack, "Drift", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:drift")
    queue = sqs.Queue.from_queue_arn(stack, "Dlq", f"arn:aws:sqs:{REGION}:{ACCOUNT}:{QUEUE}")
    fleet = DriftFleet(
        stack,
        "Fleet",
        function=fn,
        dead_letters=queue,
        log_retention=logs.RetentionDays.ONE_DAY,
        concurrency=concurrency,
        retry_interval=Duration.seconds(1),
        page_size=page_size,
    )
    return _join(stack.resolve(fleet.state_machine.node.default_child.definition_string))  # type: ignore[union-attr]


def _join(value: Any) -> str:
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return str(sep).join(_join(p) for p in parts)
    known = {
        "AWS::Partition": "aws",
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        "AWS::URLSuffix": "amazonaws.com",
    }
    if value.get("Ref") in known:
        return known[value["Ref"]]
    raise AssertionError(f"unresolved token in definition: {value}")


class Routed:
    """moto's Lambda invokes of `drift` go to the real handler: invocations by kind, and the most
    checks in flight at once."""

    def __init__(self) -> None:
        self.kinds: dict[str, int] = {}
        self.models: dict[str, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()

    def invoke(self, body: Any) -> tuple[Any, bool]:
        event = json.loads(body) if body else {}
        kind = next(
            (k.removeprefix("fleet_") for k in ("fleet_page", "fleet_record", "fleet_failure") if k in event), "check"
        )
        with self.lock:
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
            if kind == "check":
                self.models[event["model"]] = self.models.get(event["model"], 0) + 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return drift_handler.lambda_handler(event, Context()), False
        except Exception as exc:
            return {
                "errorType": type(exc).__name__,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_tb(exc.__traceback__),
            }, True
        finally:
            with self.lock:
                self.in_flight -= 1


@pytest.fixture
def routed(stores: Stores) -> Iterator[Routed]:
    state = Routed()
    originals = (LambdaBackend.__dict__["invoke"], LambdaSimpleBackend.__dict__["invoke"])

    def invoke(backend: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: Any):  # type: ignore[no-untyped-def]
        assert function_name.rsplit(":", 1)[-1] == "drift"
        result, failed = state.invoke(body)
        if failed:
            response_headers["x-amz-function-error"] = "Unhandled"
        return json.dumps(result).encode()

    LambdaBackend.invoke = invoke  # type: ignore[method-assign,assignment]
    LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign,assignment]
    try:
        zipped = io.BytesIO()
        with zipfile.ZipFile(zipped, "w") as z:
            z.writestr("handler.py", "def lambda_handler(event, context):\n    return event\n")
        role = boto3.client("iam").create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        boto3.client("lambda").create_function(
            FunctionName="drift", Runtime="python3.12", Role=role, Handler="handler.lambda_handler",
            Code={"ZipFile": zipped.getvalue()},
        )  # fmt: skip
        boto3.client("sqs").create_queue(QueueName=QUEUE)
        yield state
    finally:
        LambdaBackend.invoke, LambdaSimpleBackend.invoke = originals  # type: ignore[method-assign]


def capture(stores: Stores, model: str, rows: int = 40) -> None:
    """A tiny captured window: `rows` rows in the hour before the scheduled time."""
    lines = [
        json.dumps(
            {
                "request_id": f"r{i}",
                "model": model,
                "version": 1,
                "variant": "production",
                "time": (CAPTURED_HOUR + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "features": row,
                "prediction": 0.5,
                "probabilities": None,
            }
        )
        for i, row in enumerate(_rows(rows, seed=len(model)).to_pylist())
    ]
    key = f"{monitoring_dal.capture_prefix(model, CAPTURED_HOUR)}1-abc.jsonl.gz"
    boto3.client("s3").put_object(Bucket=stores.data_bucket, Key=key, Body=gzip.compress("\n".join(lines).encode()))


def models(stores: Stores, n: int, *, without_profile: frozenset[str] = frozenset()) -> list[str]:
    names = [f"m{i:03d}" for i in range(n)]
    for name in names:
        _register(stores, name, with_profile=name not in without_profile)
        capture(stores, name)
    return names


def run_round(definition_: str, name: str, scheduled: str = SCHEDULED) -> dict[str, Any]:
    sfn = boto3.client("stepfunctions")
    arn = sfn.create_state_machine(
        name=f"fleet-{name}", definition=definition_, roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn"
    )["stateMachineArn"]
    execution = sfn.start_execution(
        stateMachineArn=arn, name=name, input=json.dumps({"time": scheduled, "window_hours": 1})
    )["executionArn"]
    for _ in range(6_000):
        described = sfn.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            return described  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError("the round did not finish")


def dead_letters() -> list[dict[str, Any]]:
    sqs_ = boto3.client("sqs")
    url = sqs_.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    found = sqs_.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in found]


def test_drift_fleet_one_failing_model_is_dead_lettered_and_the_others_are_checked(
    stores: Stores, routed: Routed
) -> None:
    # Given 7 models in production: m002 without its reference profile (its check fails), m005
    # checked every 6 hours (due at 12:00) and m006 daily (due at 00:00 only)
    names = models(stores, 7, without_profile=frozenset({"m002"}))
    monitoring_dal.put_settings(stores.metadata_table, "m005", DriftSettings(cadence_hours=6))
    monitoring_dal.put_settings(stores.metadata_table, "m006", DriftSettings(cadence_hours=24))
    # When a scheduled round runs (pages of 5: two pages)
    result = run_round(definition(page_size=5), "round-1")
    # Then the round succeeds; every due model was checked in its own invocation, once
    assert result["status"] == "SUCCEEDED", result
    due = [n for n in names if n != "m006"]
    assert routed.models == dict.fromkeys(due, 1)
    assert routed.kinds == {"page": 2, "check": 6, "record": 2}
    # and the summary names the checked, the skipped and the failed model with its reason
    (summary,) = monitoring_dal.recent_rounds(stores.metadata_table)
    assert summary.round_id == "s20261126T120000Z" and summary.complete and summary.pages == 2
    assert summary.checked == [n for n in due if n != "m002"]
    assert summary.skipped == ["m006: not due (every 24 h)"]
    (failure,) = summary.failed
    assert failure.model == "m002" and failure.reason.startswith("NotFound: ") and "profile" in failure.reason
    # and the failed check is in the dead-letter queue, naming the round, model and error
    (letter,) = dead_letters()
    assert (letter["source"], letter["round_id"], letter["model"], letter["error"]) == (
        "drift-fleet",
        "s20261126T120000Z",
        "m002",
        "NotFound",
    )


def test_drift_fleet_a_transient_error_is_retried_for_that_model_only(stores: Stores, routed: Routed) -> None:
    # Given 3 models, and the reference profile read of m001 throttled once
    models(stores, 3)
    with faults.inject("s3.GetObject", faults.THROTTLING, where=lambda r: "/models/m001/" in r["url_path"]) as rule:
        result = run_round(definition(), "round-1")
    # Then m001's check ran twice (the retry passed), the others once, and nothing failed
    assert result["status"] == "SUCCEEDED", result
    assert rule.fired == ["s3.GetObject"]
    assert routed.models == {"m000": 1, "m001": 2, "m002": 1}
    (summary,) = monitoring_dal.recent_rounds(stores.metadata_table)
    assert summary.checked == ["m000", "m001", "m002"] and summary.failed == []
    assert dead_letters() == []


def test_drift_fleet_a_repeated_round_runs_no_check_twice(stores: Stores, routed: Routed) -> None:
    # Given a round that ran
    models(stores, 3)
    machine = definition()
    assert run_round(machine, "round-1")["status"] == "SUCCEEDED"
    reports = monitoring_dal.list_keys(stores.artifacts_bucket, "reports/drift/")
    # When the same scheduled time is delivered again (EventBridge's retry)
    assert run_round(machine, "round-1-again")["status"] == "SUCCEEDED"
    # Then each check returned its first result: no second report, the summary unchanged
    assert monitoring_dal.list_keys(stores.artifacts_bucket, "reports/drift/") == reports
    (summary,) = monitoring_dal.recent_rounds(stores.metadata_table)
    assert summary.checked == ["m000", "m001", "m002"] and summary.failed == []


def test_drift_fleet_a_round_step_failing_past_its_retries_is_recorded_on_the_round(
    stores: Stores, routed: Routed
) -> None:
    # Given 2 models, and every write of a page's outcomes to the round's summary throttled
    models(stores, 2)
    with faults.inject(
        "dynamodb.UpdateItem",
        faults.THROTTLING,
        times=100,
        where=lambda r: ":one" in r["body"].get("ExpressionAttributeValues", {}),
    ) as rule:
        result = run_round(definition(), "round-1")
    # Then RecordPage ran with its 3 retries, the execution failed with the round's error, and the
    # summary says why before it failed
    assert result["status"] == "FAILED", result
    assert rule.fired and routed.kinds["record"] == 4 and routed.kinds["failure"] == 1
    (summary,) = monitoring_dal.recent_rounds(stores.metadata_table)
    assert not summary.complete and summary.error.startswith("Throttled: "), summary


FLEET_MODELS = int(os.environ.get("STEPWISE_FLEET_MODELS", "0"))


def test_drift_fleet_scale_round_checks_every_model_within_the_concurrency_limit(
    stores: Stores, routed: Routed, request: pytest.FixtureRequest
) -> None:
    # Given N models (12 by default, 200 with --slow) in production with tiny captured windows,
    # one of them without its reference profile
    n = FLEET_MODELS or (200 if request.config.getoption("--slow") else 12)
    names = models(stores, n, without_profile=frozenset({"m003"}))
    # When one scheduled round runs (pages of 25, at most 10 checks at once)
    started = time.perf_counter()
    result = run_round(definition(concurrency=10, page_size=25), "round-1")
    fleet_s = time.perf_counter() - started
    # Then every model was checked once, in its own invocation, never more than 10 at once
    assert result["status"] == "SUCCEEDED", result
    assert routed.models == dict.fromkeys(names, 1)
    assert routed.max_in_flight <= 10
    (summary,) = monitoring_dal.recent_rounds(stores.metadata_table)
    assert len(summary.checked) == n - 1 and [f.model for f in summary.failed] == ["m003"]
    # and the sequential sweep of one invocation (the design the round replaces), on the same models
    started = time.perf_counter()
    sweep = drift_handler.lambda_handler(
        {"all_models": True, "window_hours": 1, "time": "2026-11-26T12:00:01Z"}, Context()
    )
    sequential_s = time.perf_counter() - started
    assert len(sweep["results"]) == n - 1 and [e["model"] for e in sweep["errors"]] == ["m003"]
    print(
        f"\ndrift fleet: {n} models, {routed.kinds['check']} check invocations (+{routed.kinds['page']} pages, "
        f"{routed.kinds['record']} records), at most {routed.max_in_flight} at once; round {fleet_s:.1f} s wall; "
        f"sequential sweep (one invocation) {sequential_s:.1f} s; ratio {sequential_s / fleet_s:.2f} "
        "(in-process: both share this machine's cores)"
    )
