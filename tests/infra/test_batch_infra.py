"""Batch scoring in the synthesized template: the batch function runs the training image with the
batch handler (pyarrow and ONNX Runtime together exceed a zip function's 250 MB on x86_64); the
batch workflow is Plan -> a Distributed Map of ScoreChunk -> Finish, each chunk one Lambda
invocation, a failed chunk ending as an item ({"index", "failure"}) that Finish names; the API
function starts it (its ARN in the environment) and serves both routes; the batch function writes
only under predictions/."""

from __future__ import annotations

import json
from typing import Any

from infra import constants as c
from infra.constructs.batch import BATCH_FUNCTION_ROUTES, BATCH_HANDLER, BATCH_ROUTES
from tests.infra.test_lifecycle_template import _flat
from tests.infra.test_reproduction import _of_type, _one, _statements
from tests.infra.test_workflow_failures import _payload


def _definition(resources: dict[str, Any]) -> dict[str, Any]:
    _, machine = _one(resources, "AWS::StepFunctions::StateMachine", "BatchWorkflow")
    return json.loads(_flat(machine["Properties"]["DefinitionString"]))  # type: ignore[no-any-return]


def test_batch_workflow_plans_maps_every_chunk_to_one_lambda_and_finishes(resources: dict[str, Any]) -> None:
    # Given the batch workflow's definition
    definition = _definition(resources)
    states = definition["States"]
    # Then it is Plan -> Chunks -> Finish, the chunks a Distributed Map over the plan's items
    assert definition["StartAt"] == "Plan" and states["Plan"]["Next"] == "Chunks"
    assert states["Chunks"]["Next"] == "Finish" and states["Finish"]["End"] is True
    chunks = states["Chunks"]
    assert chunks["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"}
    assert chunks["ItemsPath"] == "$.plan.chunks"
    assert chunks["ItemSelector"] == {"step": "chunk", "task.$": "$$.Map.Item.Value"}
    inner = chunks["ItemProcessor"]["States"]
    score = inner["ScoreChunk"]
    failed = inner[score["Catch"][0]["Next"]]
    assert failed == {"Type": "Pass", "Parameters": {"index.$": "$.task.index", "failure.$": "$.error"}, "End": True}
    # And every step invokes the batch function with its step name
    function_id, _ = _one(resources, "AWS::Lambda::Function", c.BATCH_FUNCTION_ID)
    for name, step in (("Plan", "plan"), ("Finish", "finish")):
        assert _payload(states[name])["step"] == step
        assert f"ATT-{function_id}" in json.dumps(states[name])
    assert f"ATT-{function_id}" in json.dumps(score) and "Parameters" not in score  # the item is the payload


def test_batch_function_runs_the_training_image_and_writes_only_predictions_and_captures(
    resources: dict[str, Any],
) -> None:
    function_id, function = _one(resources, "AWS::Lambda::Function", c.BATCH_FUNCTION_ID)
    assert function["Properties"]["PackageType"] == "Image"
    assert function["Properties"]["ImageConfig"]["Command"] == [BATCH_HANDLER]
    writes = [s for s in _statements(resources, function_id) if "s3:PutObject" in s["Action"]]
    where = sorted(json.dumps(s["Resource"]).rsplit("/", 2)[-2] for s in writes)
    assert where == ["captures", "predictions"], writes


def test_batch_routes_are_served_by_the_api_function_which_starts_the_workflow(resources: dict[str, Any]) -> None:
    api_id, api = _one(resources, "AWS::Lambda::Function", c.API_FUNCTION_ID)
    machine_id, _ = _one(resources, "AWS::StepFunctions::StateMachine", "BatchWorkflow")
    assert api["Properties"]["Environment"]["Variables"][c.ENV_BATCH_SM_ARN] == {"Ref": machine_id}
    starts = [s for s in _statements(resources, api_id) if "states:StartExecution" in s["Action"]]
    assert any(s["Resource"] == {"Ref": machine_id} for s in starts)
    methods = _of_type(resources, "AWS::ApiGateway::Method")
    served = {
        (m["Properties"]["HttpMethod"], m["Properties"]["AuthorizationType"])
        for m in methods.values()
        if api_id in json.dumps(m["Properties"].get("Integration", {})) and "batch" in json.dumps(m["Properties"])
    }
    assert {method for method, _ in BATCH_ROUTES} <= {method for method, _ in served}
    assert {auth for _, auth in served} == {"AWS_IAM"}


def test_the_batch_row_route_is_the_one_api_method_the_batch_function_serves(resources: dict[str, Any]) -> None:
    function_id, _ = _one(resources, "AWS::Lambda::Function", c.BATCH_FUNCTION_ID)
    methods = _of_type(resources, "AWS::ApiGateway::Method")
    served = [
        m["Properties"] for m in methods.values() if function_id in json.dumps(m["Properties"].get("Integration", {}))
    ]
    assert [(p["HttpMethod"], p["AuthorizationType"]) for p in served] == [("GET", "AWS_IAM")]
    reads = [s for s in _statements(resources, function_id) if s["Action"] == "s3:GetObject"]
    assert any("/offline/*" in json.dumps(s["Resource"]) for s in reads)  # feature views' offline layouts
    assert BATCH_FUNCTION_ROUTES == (("GET", "/v1/models/{name}/batch/{job}/rows/{row}"),)
