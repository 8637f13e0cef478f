"""The lifecycle workflow in the synthesized template (no Docker: the image is only staged)."""

from __future__ import annotations

import json
from typing import Any

from infra import constants as c
from stepwise.local.assembly import Assembly


def _of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in resources.items() if v["Type"] == kind}


def _flat(value: Any) -> str:
    """A definition string with its CloudFormation tokens replaced by their logical ids."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return sep.join(_flat(p) for p in parts)
    if isinstance(value, dict) and "Ref" in value:
        return f"REF-{value['Ref']}"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return f"ATT-{value['Fn::GetAtt'][0]}"
    return json.dumps(value)


def _lifecycle(resources: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    machines = {
        k: v for k, v in _of_type(resources, "AWS::StepFunctions::StateMachine").items() if k.startswith(c.LIFECYCLE_ID)
    }
    assert len(machines) == 1
    logical_id, machine = next(iter(machines.items()))
    return logical_id, machine


def _states(resources: dict[str, Any]) -> dict[str, Any]:
    _, machine = _lifecycle(resources)
    return json.loads(_flat(machine["Properties"]["DefinitionString"]))["States"]  # type: ignore[no-any-return]


def test_lifecycle_is_one_standard_machine_with_logging_and_tracing(resources: dict[str, Any]) -> None:
    _, machine = _lifecycle(resources)
    props = machine["Properties"]
    assert props["StateMachineType"] == "STANDARD"
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] == "ALL"


def test_lifecycle_tasks_retry_transient_errors_and_record_failures(resources: dict[str, Any]) -> None:
    states = _states(resources)
    for name in ("StartRun", "Train", "Evaluate", "Register", "FinishRun", "CollectTraining"):
        task = states[name]
        assert task["Type"] == "Task", name
        retried = {e for r in task["Retry"] for e in r["ErrorEquals"]}
        assert {"StoreUnavailable", "Lambda.ServiceException", "Lambda.TooManyRequestsException"} <= retried, name
        assert task["Catch"][0]["ErrorEquals"] == ["States.ALL"], name
        assert task["Catch"][0]["ResultPath"] == "$.error", name
        assert states[task["Catch"][0]["Next"]]["Type"] == "Task", name  # RecordFailure<Step>
    failed = states["Failed"]
    assert failed["Type"] == "Fail" and failed["ErrorPath"] == "$.error.Error"
    assert states["RecordFailureTrain"]["Next"] == "Failed"


def test_lifecycle_flow_trains_evaluates_registers_and_gates(resources: dict[str, Any]) -> None:
    states = _states(resources)
    assert states["StartRun"]["Next"] == "ImportRun"
    assert states["ImportRun"]["Default"] == "Compute"
    assert states["Train"]["Next"] == "Evaluate"
    assert states["Evaluate"]["Next"] == "Register"
    assert states["Register"]["Next"] == "FinishRun"
    assert states["FinishRun"]["Next"] == "GatesPassed"
    gate = states["GatesPassed"]
    assert gate["Choices"][0] == {"Variable": "$.registered.status", "StringEquals": "REJECTED", "Next": "GateFailed"}
    assert states["GateFailed"] == {
        "Type": "Fail",
        "Error": "GateFailed",
        "Cause": states["GateFailed"]["Cause"],
    }
    assert gate["Default"]  # Succeed, or the approval chain plugged in after Register


def test_lifecycle_import_runs_verify_the_upload_instead_of_training(resources: dict[str, Any]) -> None:
    states = _states(resources)
    choice = states["ImportRun"]["Choices"][0]
    assert choice["And"] == [
        {"Variable": "$.import_id", "IsPresent": True},
        {"Variable": "$.import_id", "IsString": True},
    ]
    verify = states[choice["Next"]]
    assert choice["Next"] == "VerifyImport" and verify["Next"] == "Evaluate"
    assert verify["Parameters"] == {"verify_import": True, "state.$": "$"}
    assert verify["Resource"] == states["Evaluate"]["Resource"]  # the image with onnx and onnxruntime
    assert verify["ResultPath"] == "$.train"
    assert verify["Catch"][0]["Next"] == "RecordFailureVerifyImport"
    assert states["RecordFailureVerifyImport"]["Parameters"]["step"] == "verify_import"


def test_lifecycle_switches_train_to_a_sagemaker_job_per_spec(resources: dict[str, Any]) -> None:
    states = _states(resources)
    compute = states["Compute"]
    assert compute["Choices"][0]["Variable"] == "$.run.compute"
    assert compute["Choices"][0]["StringEquals"] == "sagemaker"
    assert compute["Default"] == "Train"
    job = states[compute["Choices"][0]["Next"]]
    assert job["Resource"].endswith(":states:::sagemaker:createTrainingJob.sync")
    assert job["Parameters"]["TrainingJobName.$"] == "$.run.run_id"
    assert job["Parameters"]["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri.$"] == "$.run.data_uri"
    assert job["Next"] == "CollectTraining" and job["Catch"][0]["Next"] == "RecordFailureTrain"


def test_lifecycle_train_and_evaluate_are_image_functions(resources: dict[str, Any], assembly: Assembly) -> None:
    functions = _of_type(resources, "AWS::Lambda::Function")
    commands = {}
    for logical_id, fn in functions.items():
        props = fn["Properties"]
        if props.get("PackageType") == "Image":
            commands[logical_id.split("Function")[0]] = props["ImageConfig"]["Command"]
    assert commands["Train"] == ["functions.handlers.train.lambda_handler"]
    assert commands["Evaluate"] == ["functions.handlers.evaluate.lambda_handler"]
    # the image context is staged with its Dockerfile and the functions package, never built at synth
    staged = [p for p in assembly.image_assets.values() if (p / "Dockerfile").is_file()]
    assert staged and all((p / "functions" / "handlers" / "train.py").is_file() for p in staged)
    handlers = {fn["Properties"].get("Handler") for fn in functions.values()}
    assert {"functions.handlers.register.lambda_handler", "functions.handlers.run_record.lambda_handler"} <= handlers


def test_lifecycle_arn_is_an_output_and_in_the_starters_environment(
    assembly: Assembly, resources: dict[str, Any]
) -> None:
    logical_id, _ = _lifecycle(resources)
    outputs = assembly.template["Outputs"]
    assert outputs[c.OUT_LIFECYCLE_SM_ARN]["Value"] == {"Ref": logical_id}
    api = next(v for k, v in _of_type(resources, "AWS::Lambda::Function").items() if k.startswith(c.API_FUNCTION_ID))
    assert api["Properties"]["Environment"]["Variables"][c.ENV_LIFECYCLE_SM_ARN] == {"Ref": logical_id}


def _object_grants(resources: dict[str, Any], function_prefix: str) -> dict[str, set[str]]:
    """Object prefix (after the bucket) -> the S3 actions the function's role allows on it."""
    out: dict[str, set[str]] = {}
    for policy in _of_type(resources, "AWS::IAM::Policy").values():
        roles = [r.get("Ref", "") for r in policy["Properties"]["Roles"]]
        if not any(r.startswith(function_prefix) for r in roles):
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            for target in targets:
                path = _flat(target)
                if "/" in path and path.startswith("ATT-"):
                    out.setdefault(path.split("/", 1)[1], set()).update(a for a in actions if a.startswith("s3:"))
    return out


def test_lifecycle_train_reads_and_writes_offline_layouts_reproduce_only_reads_them(resources: dict[str, Any]) -> None:
    # Given the synthesized roles of the train and reproduce functions
    train = _object_grants(resources, c.TRAIN_FUNCTION_ID)
    reproduce = _object_grants(resources, c.REPRODUCE_FUNCTION_ID)
    # Then train builds and reuses the feature views' offline layouts, reproduce only reads them
    assert train[f"{c.PREFIX_OFFLINE}*"] == {"s3:GetObject", "s3:PutObject"}, train
    assert reproduce[f"{c.PREFIX_OFFLINE}*"] == {"s3:GetObject"}, reproduce
