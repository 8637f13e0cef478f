"""Test support: API Gateway events with a caller identity, and the approvals state chain (built by
the real construct) running in moto's executing Step Functions backend with Lambda invocations
routed to our handlers in-process (as the local cloud does)."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import aws_cdk as cdk
import boto3
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from moto.awslambda.models import LambdaBackend
from moto.awslambda_simple.models import LambdaSimpleBackend

from functions.handlers import api
from infra.constructs.approvals import Approvals
from tests.conftest import load_event
from tests.lambda_context import FakeContext

ACCOUNT = "123456789012"
REGION = "us-east-1"


class Context(FakeContext):
    """The context the API and workflow handlers get here."""


def api_event(method: str, path: str, body: Any = None, *, who: str | None = "alice") -> dict[str, Any]:
    """An IAM-authorized API Gateway proxy event; `who` names the caller (None: no identity)."""
    event = load_event("apigw/health.json")
    event = json.loads(json.dumps(event))
    event.update(
        {
            "httpMethod": method,
            "path": path,
            "resource": path,
            "body": None if body is None else json.dumps(body),
            "isBase64Encoded": False,
        }
    )
    identity = event.setdefault("requestContext", {}).setdefault("identity", {})
    identity.update(
        {
            "userArn": f"arn:aws:iam::{ACCOUNT}:user/{who}" if who else None,
            "caller": who.upper() if who else None,
            "accessKey": f"LOCAL{who}" if who else None,
            "user": who.upper() if who else None,
        }
    )
    event["requestContext"].update({"httpMethod": method, "path": f"/prod{path}", "resourcePath": path})
    return event


def call(method: str, path: str, body: Any = None, *, who: str | None = "alice") -> tuple[int, Any]:
    reply = api.lambda_handler(api_event(method, path, body, who=who), Context())
    return reply["statusCode"], json.loads(reply["body"]) if reply.get("body") else None


# -- the state chain in moto's executing Step Functions backend --------------------------------
def chain_definition(approval_timeout_seconds: int) -> str:
    """The construct's chain as a standalone state machine definition (partition resolved)."""
    app = cdk.App()
    stack = cdk.Stack(app, "ApprovalsChain", env=cdk.Environment(account=ACCOUNT, region=REGION))
    fns = [
        lambda_.Function.from_function_arn(stack, name, f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}")
        for name in ("approval", "release")
    ]
    approvals = Approvals(
        stack,
        "Approvals",
        approval_fn=fns[0],
        release_fn=fns[1],
        approval_timeout=cdk.Duration.seconds(approval_timeout_seconds),
    )
    sfn.StateMachine(stack, "Machine", definition_body=sfn.DefinitionBody.from_chainable(approvals.chain))
    template = app.synth().get_stack_by_name("ApprovalsChain").template
    machine = next(r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine")
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    return "".join(p if isinstance(p, str) else {"AWS::Partition": "aws"}[p["Ref"]] for p in parts)


Handler = Callable[[dict[str, Any], Any], Any]


@contextmanager
def lambdas_in_process(monkeypatch: Any, handlers: dict[str, Handler]) -> Iterator[list[str]]:
    """Create the functions in moto and route their invocations to `handlers` (name -> handler)."""
    iam = boto3.client("iam")
    role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("index.py", "def handler(e, c): return e")
    for name in handlers:
        boto3.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role,
            Handler="index.handler",
            Code={"ZipFile": buffer.getvalue()},
        )
    calls: list[str] = []

    def invoke(
        backend: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: Any
    ) -> bytes:
        name = function_name.rsplit(":", 1)[-1] if ":function:" in function_name else function_name
        event = json.loads(body) if body else {}
        calls.append(f"{name}:{event.get('action', '')}")
        try:
            result: Any = handlers[name](event, Context())
        except Exception as exc:  # as Lambda reports a handler error
            response_headers["x-amz-function-error"] = "Unhandled"
            result = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
        payload = json.dumps(result, default=str).encode()
        response_headers["Content-Length"] = str(len(payload))
        return payload

    monkeypatch.setattr(LambdaBackend, "invoke", invoke)
    monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)
    yield calls


def start_chain(definition: str, state: dict[str, Any], name: str = "run-1") -> str:
    sf = boto3.client("stepfunctions")
    role = f"arn:aws:iam::{ACCOUNT}:role/sfn"
    arn = sf.create_state_machine(name=f"chain-{name}", definition=definition, roleArn=role)["stateMachineArn"]
    return str(sf.start_execution(stateMachineArn=arn, name=name, input=json.dumps(state))["executionArn"])


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll until predicate() is truthy (moto runs executions on a thread)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def execution_done(arn: str) -> dict[str, Any] | None:
    described = boto3.client("stepfunctions").describe_execution(executionArn=arn)
    return described if described["status"] != "RUNNING" else None
