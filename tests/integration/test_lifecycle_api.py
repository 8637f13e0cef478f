from __future__ import annotations

import copy
import json
from typing import Any

import boto3
import pytest

from functions.handlers import api
from functions.models.approvals import ReleaseStrategy
from functions.models.settings import get_settings
from infra import constants as c
from tests.conftest import load_event
from tests.integration.conftest import Stores
from tests.integration.lifecycle_support import Context, run_steps, seed_dataset, seed_spec, start_state
from tests.integration.test_lifecycle_handlers import toy_spec
from tests.unit.lifecycle_data import classification_table


def call(method: str, path: str, body: Any = None, query: dict[str, str] | None = None) -> tuple[int, Any]:
    event = copy.deepcopy(load_event("apigw/health.json"))
    event.update(httpMethod=method, path=path, resource=path, queryStringParameters=query)
    event["body"] = None if body is None else json.dumps(body)
    reply = api.lambda_handler(event, Context())
    return reply["statusCode"], json.loads(reply["body"])


@pytest.fixture
def trained(stores: Stores) -> dict[str, Any]:
    dataset = seed_dataset(stores, "toy", classification_table(), "label")
    return run_steps(start_state(seed_spec(stores, toy_spec()), dataset))


def test_models_routes_list_models_versions_and_one_version(trained: dict[str, Any]) -> None:
    status, body = call("GET", "/v1/models")
    assert status == 200
    assert body["models"][0]["name"] == "toy-model" and body["models"][0]["by_status"] == {"PENDING_APPROVAL": 1}
    status, body = call("GET", "/v1/models/toy-model/versions")
    assert status == 200 and body["versions"][0]["status"] == "PENDING_APPROVAL"
    assert body["versions"][0]["primary_metric"] == "accuracy" and body["versions"][0]["primary_value"] > 0.5
    status, body = call("GET", "/v1/models/toy-model/versions/1")
    assert status == 200 and body["data_sha256"] == trained["train"]["dataset"]["sha256"]
    assert {g["gate"] for g in body["gates"]} >= {"onnx_parity"}
    status, body = call("GET", "/v1/models/toy-model/runs")
    assert status == 200 and [s["name"] for s in body["runs"][0]["steps"]] == ["start", "train", "evaluate", "register"]


def test_models_routes_answer_404_for_unknown_models_and_versions(stores: Stores) -> None:
    assert call("GET", "/v1/models/nope/versions")[0] == 404
    status, body = call("GET", "/v1/models/nope/versions/3")
    assert status == 404 and body["error"] == "NotFound"
    assert call("GET", "/v1/models/nope/versions/x")[0] == 400


def test_spec_routes_store_versions_and_refuse_bad_specs(stores: Stores) -> None:
    spec = toy_spec()
    status, first = call("PUT", "/v1/specs/toy", spec)
    assert status == 201 and first["version"] == 1
    assert first["created_by"] == "arn:aws:iam::123456789012:user/operator"
    status, second = call("PUT", "/v1/specs/toy", spec | {"description": "v2"})
    assert status == 201 and second["version"] == 2
    assert call("GET", "/v1/specs/toy")[1]["spec"]["description"] == "v2"
    assert call("GET", "/v1/specs/toy", query={"version": "1"})[1]["spec"]["description"] == ""
    status, body = call("PUT", "/v1/specs/toy", spec | {"estimator": {"name": "SVC"}})
    assert status == 400 and "estimator.name" in body["message"]
    assert call("GET", "/v1/specs/nope")[0] == 404


def test_train_route_starts_once_per_model_dataset_and_spec_version(stores: Stores, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Given a deployed (here: trivial) state machine and a spec
    sfn = boto3.client("stepfunctions")
    arn = sfn.create_state_machine(
        name="lifecycle",
        definition=json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 3600, "End": True}}}),
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )["stateMachineArn"]
    monkeypatch.setenv(c.ENV_LIFECYCLE_SM_ARN, arn)
    get_settings.cache_clear()
    call("PUT", "/v1/specs/toy", toy_spec())
    # When training is requested twice for the same dataset version
    status, first = call("POST", "/v1/models/toy-model/train", {"spec": "toy", "dataset_version": 4})
    status_2, second = call("POST", "/v1/models/toy-model/train", {"spec": "toy", "dataset_version": 4})
    # Then one execution named <model>-<dataset version>-<spec version> exists
    assert (status, status_2) == (202, 202)
    assert first["execution_name"] == "toy-model-4-1" and first["started"] is True
    assert second["started"] is False and second["execution_arn"] == first["execution_arn"]
    executions = sfn.list_executions(stateMachineArn=arn)["executions"]
    assert [e["name"] for e in executions] == ["toy-model-4-1"]
    described = json.loads(sfn.describe_execution(executionArn=first["execution_arn"])["input"])
    assert described == {
        "spec": "toy",
        "spec_version": 1,
        "dataset": "toy",
        "dataset_version": 4,
        "started_by": "arn:aws:iam::123456789012:user/operator",
        # the spec's release strategy, read by the approval chain at $.release
        "release": ReleaseStrategy().model_dump(mode="json"),
    }
    assert call("POST", "/v1/models/other/train", {"spec": "toy", "dataset_version": 4})[0] == 400


def test_cli_renders_the_registry_reads(trained: dict[str, Any]) -> None:
    from stepwise.commands import models as cli

    models_text = cli.render_models(call("GET", "/v1/models")[1])
    assert "toy-model" in models_text and "PENDING_APPROVAL 1" in models_text
    versions_text = cli.render_versions(call("GET", "/v1/models/toy-model/versions")[1])
    assert "PENDING_APPROVAL" in versions_text and "toy@1" in versions_text
    detail = cli.render_version(call("GET", "/v1/models/toy-model/versions/1")[1])
    assert "onnx_parity" in detail and trained["train"]["dataset"]["sha256"] in detail and "(primary)" in detail
    runs_text = cli.render_runs(call("GET", "/v1/models/toy-model/runs")[1])
    assert "REGISTERED -> version 1" in runs_text and "register" in runs_text


def test_cli_parser_knows_the_model_commands() -> None:
    from stepwise.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["spec", "put", "spec.json"])
    assert args.func.__name__ == "run_spec_put"
    assert parser.parse_args(["show", "churn-model", "3"]).version == 3
    assert parser.parse_args(["runs", "churn-model"]).func.__name__ == "run_runs"
