"""Template assertions for ingestion: raw/ notification -> validation Lambda, its async settings,
DLQ, least-privilege grants, data layer, and the dataset routes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infra import constants as c
from infra.constructs.ingestion import CHUNK_HANDLER, DATASET_ROUTES, MAX_EVENT_AGE, RETRY_ATTEMPTS, VALIDATE_HANDLER

ROOT = Path(__file__).resolve().parents[2]


def _of_type(resources: dict[str, dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in resources.items() if v["Type"] == kind}


def _validate_fn(resources: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    fns = [
        (k, v)
        for k, v in _of_type(resources, "AWS::Lambda::Function").items()
        if v["Properties"].get("Handler") == VALIDATE_HANDLER
    ]
    assert len(fns) == 1
    return fns[0]


def _policy_statements(resources: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for policy in _of_type(resources, "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            out.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return out


def test_ingestion_raw_prefix_notifies_the_validation_function(resources: dict[str, Any]) -> None:
    fn_id, _ = _validate_fn(resources)
    notifications = _of_type(resources, "Custom::S3BucketNotifications")
    assert len(notifications) == 1
    props = next(iter(notifications.values()))["Properties"]
    assert props["BucketName"]["Ref"].startswith(c.DATA_STORE_ID)
    configs = props["NotificationConfiguration"]["LambdaFunctionConfigurations"]
    assert len(configs) == 1
    assert configs[0]["Events"] == ["s3:ObjectCreated:*"]
    assert configs[0]["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": c.PREFIX_RAW}]
    assert configs[0]["LambdaFunctionArn"] == {"Fn::GetAtt": [fn_id, "Arn"]}


def test_ingestion_async_invokes_have_max_age_retries_and_a_dlq(resources: dict[str, Any]) -> None:
    fn_id, _ = _validate_fn(resources)
    configs = [
        v["Properties"]
        for v in _of_type(resources, "AWS::Lambda::EventInvokeConfig").values()
        if v["Properties"]["FunctionName"] == {"Ref": fn_id}
    ]
    assert len(configs) == 1
    config = configs[0]
    assert config["MaximumEventAgeInSeconds"] == MAX_EVENT_AGE.to_seconds()
    assert config["MaximumRetryAttempts"] == RETRY_ATTEMPTS
    dlq = config["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
    queue = resources[dlq]
    assert queue["Type"] == "AWS::SQS::Queue" and queue["DeletionPolicy"] == "Retain"
    assert queue["Properties"]["SqsManagedSseEnabled"] is True


def test_ingestion_function_has_the_data_layer_limits_and_env(resources: dict[str, Any]) -> None:
    _, fn = _validate_fn(resources)
    props = fn["Properties"]
    env = props["Environment"]["Variables"]
    assert {c.ENV_METADATA_TABLE, c.ENV_DATA_BUCKET, c.ENV_ARTIFACTS_BUCKET, c.ENV_VALIDATE_CHUNK_BYTES} <= set(env)
    assert int(env[c.ENV_VALIDATE_CHUNK_BYTES]) * 4 < props["MemorySize"] * 1024**2
    layers = [layer["Ref"] for layer in props["Layers"]]
    assert any(ref.startswith(c.DATA_LAYER_ID) for ref in layers)
    requirements = (ROOT / "layers" / "data" / "requirements.txt").read_text()
    assert "pyarrow==" in requirements and "numpy==" in requirements


def test_ingestion_grants_are_scoped_to_prefixes_and_items(resources: dict[str, Any]) -> None:
    _, fn = _validate_fn(resources)
    role_id = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = _policy_statements(resources, role_id)
    actions: set[str] = set()
    for s in statements:
        acts = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        actions.update(acts)
        assert not any(a.endswith("*") and a not in ("xray:*",) for a in acts), acts
    assert {"s3:GetObject", "s3:PutObject", "s3:DeleteObjectVersion", "dynamodb:PutItem"} <= actions
    assert "s3:PutBucketPolicy" not in actions and "dynamodb:Scan" not in actions
    s3_resources = [
        r["Fn::Join"][1][-1]
        for s in statements
        if any(str(a).startswith("s3:") for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]]))
        for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
        if isinstance(r, dict) and "Fn::Join" in r
    ]
    # offline/: the offline layout of a feature view's source, built when a version passes
    prefixes = (c.PREFIX_RAW, c.PREFIX_VALIDATED, c.PREFIX_QUARANTINE, c.PREFIX_VALIDATION_REPORTS, c.PREFIX_OFFLINE)
    assert sorted(set(s3_resources)) == sorted({f"/{p}*" for p in prefixes})


def test_ingestion_dataset_routes_are_on_the_api(resources: dict[str, Any]) -> None:
    methods = _of_type(resources, "AWS::ApiGateway::Method")
    resources_by_id = _of_type(resources, "AWS::ApiGateway::Resource")

    def path_of(ref: Any) -> str:
        if not isinstance(ref, dict) or "Ref" not in ref:
            return ""
        res = resources_by_id[ref["Ref"]]["Properties"]
        return path_of(res["ParentId"]) + "/" + res["PathPart"]

    routes = {(m["Properties"]["HttpMethod"], path_of(m["Properties"]["ResourceId"])) for m in methods.values()}
    for method, path in DATASET_ROUTES:
        assert (method, path) in routes
    assert all(m["Properties"]["AuthorizationType"] == "AWS_IAM" for m in methods.values())


def test_ingestion_outputs_name_the_function_and_dlq(assembly: Any) -> None:
    outputs = assembly.template["Outputs"]
    assert c.OUT_VALIDATE_FUNCTION in outputs and c.OUT_VALIDATE_DLQ_URL in outputs


def _definition(resources: dict[str, Any], logical_prefix: str) -> dict[str, Any]:
    machines = [
        v for k, v in _of_type(resources, "AWS::StepFunctions::StateMachine").items() if k.startswith(logical_prefix)
    ]
    assert len(machines) == 1
    parts = machines[0]["Properties"]["DefinitionString"]["Fn::Join"][1]
    return json.loads("".join(p if isinstance(p, str) else "ref" for p in parts))  # type: ignore[no-any-return]


def test_ingestion_chunked_validation_is_a_distributed_map(resources: dict[str, Any]) -> None:
    # Plan -> Distributed Map over the planned chunks (express children) -> Finish
    definition = _definition(resources, c.INGESTION_ID)
    states = definition["States"]
    assert definition["StartAt"] == "Plan" and states["Plan"]["Next"] == "Chunks"
    chunks = states["Chunks"]
    assert chunks["Type"] == "Map" and chunks["ItemsPath"] == "$.chunks"
    assert chunks["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"}
    assert chunks["ItemSelector"]["chunk.$"] == "$$.Map.Item.Value" and chunks["ItemSelector"]["step"] == "check"
    assert chunks["ResultPath"] == "$.results" and chunks["Next"] == "Finish"
    assert states["Finish"]["Parameters"]["step"] == "finish" and states["Finish"]["End"] is True
    for task in (states["Plan"], chunks["ItemProcessor"]["States"]["CheckChunk"], states["Finish"]):
        assert any("StoreUnavailable" in r["ErrorEquals"] for r in task["Retry"])


def test_ingestion_validation_function_knows_and_may_start_the_state_machine(resources: dict[str, Any]) -> None:
    _, fn = _validate_fn(resources)
    env = fn["Properties"]["Environment"]["Variables"]
    machine_ref = env[c.ENV_VALIDATE_SM_ARN]["Ref"]
    assert resources[machine_ref]["Type"] == "AWS::StepFunctions::StateMachine"
    props = resources[machine_ref]["Properties"]
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    role_id = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    starts = [s for s in _policy_statements(resources, role_id) if s["Action"] == "states:StartExecution"]
    assert {"Ref": machine_ref} in [s["Resource"] for s in starts]
    chunk_fns = [
        v
        for v in _of_type(resources, "AWS::Lambda::Function").values()
        if v["Properties"].get("Handler") == CHUNK_HANDLER
    ]
    assert len(chunk_fns) == 1 and chunk_fns[0]["Properties"]["Timeout"] == 900


def test_ingestion_cdk_notification_handler_meets_the_function_standard(resources: dict[str, Any]) -> None:
    handlers = [
        v["Properties"]
        for k, v in _of_type(resources, "AWS::Lambda::Function").items()
        if k.startswith("BucketNotificationsHandler")
    ]
    assert len(handlers) == 1
    assert handlers[0]["Runtime"] == "python3.14" and handlers[0]["TracingConfig"] == {"Mode": "Active"}
