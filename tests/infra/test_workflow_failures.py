"""No silent workflow failure, in the synthesized template: every Task state of every state machine
(nested Map and Parallel states included) retries transient errors and catches the rest; every
catch that ends the execution records the failure first; each state machine alarms on failed,
timed-out and throttled executions to the alarm topic, and the dashboard shows them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from infra.constructs.lifecycle import TRANSIENT_ERRORS
from tests.infra.test_lifecycle_template import _flat

WORKFLOW_ALARMS = ("ExecutionsFailed", "ExecutionsTimedOut", "ExecutionThrottled")


def _machines(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Logical id -> the state machine's definition (tokens replaced by logical ids)."""
    return {
        logical_id: json.loads(_flat(r["Properties"]["DefinitionString"]))
        for logical_id, r in resources.items()
        if r["Type"] == "AWS::StepFunctions::StateMachine"
    }


def _states(definition: dict[str, Any], where: str) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(path, state, the states it may transition to) of every state, nested ones included."""
    for name, state in definition["States"].items():
        yield f"{where}/{name}", state, definition["States"]
        for nested in [state.get("ItemProcessor") or state.get("Iterator"), *state.get("Branches", [])]:
            if nested:
                yield from _states(nested, f"{where}/{name}")


def _payload(state: dict[str, Any]) -> dict[str, Any]:
    """What a Lambda task sends (its Parameters are the payload when only the payload is returned)."""
    parameters: dict[str, Any] = state.get("Parameters", {})
    return parameters.get("Payload", parameters)  # type: ignore[no-any-return]


def _is_record_task(state: dict[str, Any]) -> bool:
    """A task that records a failure: the run record's `fail` action, the chunk function's `fail` step
    or the drift fleet's `fleet_failure` on the round."""
    payload = _payload(state)
    return state["Type"] == "Task" and (
        payload.get("action") == "fail" or payload.get("step") == "fail" or "fleet_failure" in payload
    )


def test_workflow_every_task_of_every_state_machine_has_retry_and_catch(resources: dict[str, Any]) -> None:
    machines = _machines(resources)
    assert len(machines) >= 2  # the lifecycle and the chunked validation
    missing = []
    tasks = 0
    for logical_id, definition in machines.items():
        for path, state, _ in _states(definition, logical_id):
            if state["Type"] != "Task":
                continue
            tasks += 1
            retried = {e for r in state.get("Retry", []) for e in r["ErrorEquals"]}
            caught = [e for c in state.get("Catch", []) for e in c["ErrorEquals"]]
            if not retried or "States.ALL" not in caught:
                missing.append(f"{path}: Retry {sorted(retried)}, Catch {caught}")
            elif state["Resource"].split(":states:::")[-1].startswith("lambda:invoke"):
                # Lambda's own transient errors, throttling included
                assert {"Lambda.ServiceException", "Lambda.TooManyRequestsException"} <= retried, path
    assert tasks > 20
    assert not missing, "tasks without both Retry and a catch-all:\n" + "\n".join(missing)


def test_workflow_every_catch_that_ends_the_execution_records_the_failure_first(resources: dict[str, Any]) -> None:
    unrecorded = []
    for logical_id, definition in _machines(resources).items():
        for path, state, siblings in _states(definition, logical_id):
            for catch in state.get("Catch", []):
                target = siblings[catch["Next"]]
                if target["Type"] == "Fail" and not _is_record_task(state):
                    unrecorded.append(f"{path} --{catch['ErrorEquals']}--> {catch['Next']}")
                if _is_record_task(target):
                    assert catch["ResultPath"] == "$.error", path  # the record names the error and cause
            if _is_record_task(state):  # the record itself is retried, then fails the execution
                assert {"StoreUnavailable", "Throttled"} <= {e for r in state["Retry"] for e in r["ErrorEquals"]}
                assert siblings[state["Next"]]["Type"] == "Fail", path
    assert not unrecorded, "catches that fail the execution without recording:\n" + "\n".join(unrecorded)


def test_workflow_release_steps_record_on_the_run_before_failing(resources: dict[str, Any]) -> None:
    (states,) = [d["States"] for k, d in _machines(resources).items() if k.startswith("Lifecycle")]
    for name in ("Promote", "StartCanary", "RollbackCanary", "ExpireApproval", "RequestApproval"):
        record = states[states[name]["Catch"][-1]["Next"]]
        assert _is_record_task(record), name
        assert _payload(record)["state.$"] == "$", name
        assert set(TRANSIENT_ERRORS) <= {e for r in states[name]["Retry"] for e in r["ErrorEquals"]}, name
    assert _payload(states[states["Promote"]["Catch"][-1]["Next"]])["step"] == "promote"
    # the designed failures (a rejection, a failed canary) are recorded too, then fail as before
    request = {tuple(c["ErrorEquals"]): c["Next"] for c in states["RequestApproval"]["Catch"]}
    assert states[states[request[("ApprovalRejected",)]]["Next"]]["Error"] == "ApprovalRejected"
    assert states[states["RollbackCanary"]["Next"]]["Next"] == "CanaryRolledBack"


def test_workflow_sagemaker_training_retries_its_service_errors(resources: dict[str, Any]) -> None:
    (states,) = [d["States"] for k, d in _machines(resources).items() if k.startswith("Lifecycle")]
    sync_job = ":states:::sagemaker:createTrainingJob.sync"
    (job,) = [s for s in states.values() if s.get("Resource", "").endswith(sync_job)]
    # Step Functions reports SageMaker's API errors, its ThrottlingException included, under this name
    assert job["Retry"][0]["ErrorEquals"] == ["SageMaker.AmazonSageMakerException"]
    assert job["Retry"][0]["MaxAttempts"] >= 3 and job["Retry"][0]["BackoffRate"] >= 2
    assert _payload(states[job["Catch"][0]["Next"]])["step"] == "train"


def test_workflow_chunk_failures_are_reported_to_finish_not_judged(resources: dict[str, Any]) -> None:
    (states,) = [d["States"] for k, d in _machines(resources).items() if k.startswith("IngestionChunkedValidation")]
    check = states["Chunks"]["ItemProcessor"]["States"]["CheckChunk"]
    failed = states["Chunks"]["ItemProcessor"]["States"][check["Catch"][0]["Next"]]
    assert failed == {
        "Type": "Pass",
        "Parameters": {"index.$": "$.chunk.index", "failure.$": "$.error"},
        "End": True,
    }
    for name in ("Plan", "Chunks", "Finish"):
        record = states[states[name]["Catch"][0]["Next"]]
        assert _payload(record)["failed_step"] == name.lower()
        assert states[record["Next"]]["ErrorPath"] == "$.error.Error"


def test_workflow_each_state_machine_alarms_on_failed_timed_out_and_throttled_executions(
    resources: dict[str, Any],
) -> None:
    machines = set(_machines(resources))
    topics = [k for k, r in resources.items() if r["Type"] == "AWS::SNS::Topic" and k.startswith("MonitoringAlarm")]
    watched: dict[str, set[str]] = {m: set() for m in machines}
    for alarm in (r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"):
        if alarm.get("Namespace") != "AWS/States":
            continue
        (dimension,) = alarm["Dimensions"]
        assert dimension["Name"] == "StateMachineArn"
        watched[dimension["Value"]["Ref"]].add(alarm["MetricName"])
        assert alarm["AlarmActions"] == [{"Ref": topics[0]}]
        assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["Statistic"] == "Sum" and alarm["TreatMissingData"] == "notBreaching"
    assert watched == {m: set(WORKFLOW_ALARMS) for m in machines}


def test_workflow_dashboard_shows_the_executions_and_their_alarms(resources: dict[str, Any]) -> None:
    (dashboard,) = [r for r in resources.values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    body = _flat(dashboard["Properties"]["DashboardBody"])
    for logical_id in _machines(resources):
        for metric in WORKFLOW_ALARMS:
            assert f'"AWS/States","{metric}","StateMachineArn","REF-{logical_id}"' in body, (logical_id, metric)
    alarms = [k for k, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm" and "Execution" in k]
    assert len(alarms) == 3 * len(_machines(resources))
    assert all(f"ATT-{k}" in body for k in alarms)  # the alarm status widget lists them
