"""Fault injection on the lifecycle tasks: StartRun, Train, Evaluate, Register and
FinishRun, each AWS call of a clean run made to fail each way AWS fails, then the task retried with
the same input (what the state machine's Retry does for StoreUnavailable/Throttled/Lambda.*) and
the rest of the workflow run to the end.

What is faked and why (see tests/faults.py): AWS cannot be made to throttle, refuse, time out or
kill the process on demand, so one botocore call at a time answers with the error AWS would send
(or raises ReadTimeoutError, or faults.Crash for a process killed mid-run); moto answers the rest.
The state machine itself is played by calling the task handlers in order (as
tests/integration/lifecycle_support.run_steps does); the retry is the same handler with the same
input, in a "new process" (fresh clients).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from functions.dal import audit as audit_dal
from functions.dal import datasets as datasets_dal
from functions.dal import registry as registry_dal
from functions.dal import runs as runs_dal
from functions.handlers import evaluate, register, run_record, train
from functions.models.registry import model_pk
from functions.models.runs import execution_name
from tests import faults
from tests.integration.conftest import Stores, object_bytes
from tests.integration.lifecycle_support import Context, seed_dataset, seed_spec, start_state
from tests.unit.lifecycle_data import classification_table

MODEL = "toy-model"
RUN_ID = execution_name(MODEL, 1, 1)
SPEC = {
    "name": "toy",
    "model": MODEL,
    "dataset": "toy",
    "target": "label",
    "features": ["a", "b", "c"],
    "task": "classification",
    "estimator": {"name": "RandomForestClassifier", "params": {"n_estimators": 5, "max_depth": 3}},
    "split": {"holdout_fraction": 0.25, "seed": 5},
    "gates": {"min_primary": 0.5, "max_regression": 0.05},
    "latency_calls": 50,
}

# The AWS calls of each task in a clean run (faults.recording); test_lifecycle_clean_run_makes_these_calls
# keeps the lists true.
RUN_STEP = ["dynamodb.GetItem", "dynamodb.PutItem"]  # recorded_step: read the run, write it
CALLS: dict[str, list[str]] = {
    "start": [
        "dynamodb.GetItem",  # spec
        "dynamodb.GetItem",  # dataset version
        "dynamodb.GetItem",  # contract
        "dynamodb.PutItem",  # run record
        "dynamodb.PutItem",  # audit run.start
    ],
    "train": [
        *RUN_STEP,
        "dynamodb.GetItem",  # spec
        "dynamodb.GetItem",  # dataset version
        "dynamodb.GetItem",  # contract
        "s3.GetObject",  # the dataset object
        "s3.PutObject",  # skops
        "s3.PutObject",  # onnx
        "s3.PutObject",  # profile
        *RUN_STEP,
    ],
    "evaluate": [
        *RUN_STEP,
        "dynamodb.GetItem",  # spec
        "s3.GetObject",  # dataset
        "s3.GetObject",  # skops
        "s3.GetObject",  # onnx
        "s3.GetObject",  # training profile
        "s3.PutObject",  # profile with the holdout outputs
        "dynamodb.GetItem",  # model record (production version)
        *RUN_STEP,
    ],
    "register": [
        *RUN_STEP,
        "dynamodb.GetItem",  # run marker
        "dynamodb.GetItem",  # model record (counter)
        "dynamodb.TransactWriteItems",  # counter + version + run marker + audit
        "dynamodb.GetItem",  # model card: version
        "dynamodb.Query",  # model card: audit
        "dynamodb.GetItem",
        "dynamodb.Query",  # model card: the batch jobs that scored the version
        "dynamodb.GetItem",
        "dynamodb.GetItem",
        "s3.GetObject",
        "dynamodb.GetItem",
        "s3.PutObject",  # card .json
        "s3.PutObject",  # card .md
        *RUN_STEP,
    ],
    "finish": [*RUN_STEP, "dynamodb.PutItem"],  # run record, audit run.finish
}
STEPS = list(CALLS)
WRITES = {"dynamodb.PutItem", "dynamodb.UpdateItem", "dynamodb.TransactWriteItems", "s3.PutObject"}


def cases() -> list[Any]:
    """Every step x call x fault. Unmarked (fast): a crash at every write, and every fault at the
    registration's transaction; the rest is marked full (run with --full)."""
    params = []
    for step, calls in CALLS.items():
        for i, call in enumerate(calls):
            for fault in faults.applicable(call):
                fast = (fault is faults.CRASH and call in WRITES) or (
                    step == "register" and call == "dynamodb.TransactWriteItems"
                )
                marks = [] if fast else [pytest.mark.full]
                params.append(pytest.param(step, i, fault, id=f"{step}-{i:02d}-{call}-{fault.name}", marks=marks))
    return params


# -- the workflow, played task by task ---------------------------------------------------------------


def task(step: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def start(state: dict[str, Any]) -> dict[str, Any]:
        request = {"action": "start", "state": state, "execution_name": RUN_ID, "execution_arn": f"arn:test:{RUN_ID}"}
        return run_record.lambda_handler(request, Context())  # type: ignore[no-any-return]

    def finish(state: dict[str, Any]) -> dict[str, Any]:
        return run_record.lambda_handler({"action": "finish", "state": state}, Context())  # type: ignore[no-any-return]

    handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
        "start": start,
        "train": lambda s: train.lambda_handler(s, Context()),  # type: ignore[no-any-return]
        "evaluate": lambda s: evaluate.lambda_handler(s, Context()),  # type: ignore[no-any-return]
        "register": lambda s: register.lambda_handler(s, Context()),  # type: ignore[no-any-return]
        "finish": finish,
    }
    return handlers[step]


STATE_KEY = {"start": "run", "train": "train", "evaluate": "evaluation", "register": "registered", "finish": ""}


def run(state: dict[str, Any], steps: list[str]) -> dict[str, Any]:
    for step in steps:
        result = task(step)(state)
        if STATE_KEY[step]:
            state[STATE_KEY[step]] = result
    return state


def seeded(stores: Stores) -> dict[str, Any]:
    faults.install()
    dataset = seed_dataset(stores, "toy", classification_table(160), "label")
    return start_state(seed_spec(stores, SPEC), dataset)


# -- invariants ----------------------------------------------------------------------------------------


def s3_body(uri: str, version_id: str = "") -> bytes | None:
    bucket, key = uri[5:].split("/", 1)
    return object_bytes(bucket, key, version_id)


def registry_items(stores: Stores, prefix: str) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb").Table(stores.registry_table)
    return [i for i in table.scan()["Items"] if i["pk"] == model_pk(MODEL) and str(i["sk"]).startswith(prefix)]


def check_invariants(stores: Stores) -> None:
    """Nothing half-written: every version has its artifacts (sha256 and size as recorded) and its
    dataset version (same object, same sha256); the counter, the run markers, the audit events and
    the run record name only versions that exist."""
    versions = registry_dal.list_versions(stores.registry_table, MODEL)
    numbers = [v.version for v in versions]
    assert numbers == list(range(1, len(versions) + 1)), numbers
    for v in versions:
        for name, artifact in v.artifacts.items():
            body = s3_body(artifact.uri)
            assert body is not None, f"v{v.version} {name} artifact missing"
            assert hashlib.sha256(body).hexdigest() == artifact.sha256 and len(body) == artifact.size_bytes
        data = datasets_dal.get_version(stores.metadata_table, v.dataset, v.dataset_version)
        assert (data.key, data.version_id, data.sha256) == (v.data_key, v.data_version_id, v.data_sha256)
        assert s3_body(f"s3://{data.bucket}/{data.key}", data.version_id) is not None
    model = registry_dal.get_model(stores.registry_table, MODEL)
    assert (model.latest_version if model else 0) == len(versions)
    assert {int(i["version"]) for i in registry_items(stores, "RUN#")} <= set(numbers)
    events = audit_dal.list_events(stores.metadata_table, target=f"model/{MODEL}")
    assert {e.version for e in events if e.version is not None} <= set(numbers)
    runs = runs_dal.list_runs(stores.metadata_table, MODEL)
    assert {r.version for r in runs if r.version is not None} <= set(numbers)


def final_state(stores: Stores) -> dict[str, Any]:
    """What the workflow leaves that a user sees: versions, the run and its steps, the audit trail,
    the artifacts' keys."""
    versions = registry_dal.list_versions(stores.registry_table, MODEL)
    runs = runs_dal.list_runs(stores.metadata_table, MODEL)
    last: dict[str, str] = {}
    for run_ in runs:
        for s in run_.steps:
            last[s.name] = s.outcome
    listed = boto3.client("s3").list_objects_v2(Bucket=stores.artifacts_bucket)
    return {
        "versions": [(v.version, v.status.value, v.run_id, v.dataset_version) for v in versions],
        "runs": [(r.run_id, r.status.value, r.version) for r in runs],
        "steps": last,
        "audit": sorted(
            (e.action, e.version or 0) for e in audit_dal.list_events(stores.metadata_table, target=f"model/{MODEL}")
        ),
        "artifacts": sorted(o["Key"] for o in listed.get("Contents", []) if MODEL in o["Key"]),
    }


CLEAN = {
    "versions": [(1, "PENDING_APPROVAL", RUN_ID, 1)],
    "runs": [(RUN_ID, "REGISTERED", 1)],
    "steps": {s: "succeeded" for s in ("start", "train", "evaluate", "register")},
    "audit": [("run.finish", 0), ("run.start", 0), ("version.register", 1)],
    "artifacts": [
        f"cards/{MODEL}/versions/00000001/card.html",
        f"cards/{MODEL}/versions/00000001/card.md",
        f"models/{MODEL}/runs/{RUN_ID}/model.onnx",
        f"models/{MODEL}/runs/{RUN_ID}/model.skops",
        f"models/{MODEL}/runs/{RUN_ID}/profile-outputs.json",
        f"models/{MODEL}/runs/{RUN_ID}/profile.json",
    ],
}


# -- tests -----------------------------------------------------------------------------------------------


def test_lifecycle_clean_run_makes_these_calls(stores: Stores) -> None:
    # Given a dataset version and a spec; When every task runs without faults
    state = seeded(stores)
    for step in STEPS:
        with faults.recording() as made:
            run(state, [step])
        # Then each task makes the calls the fault matrix walks
        assert made == CALLS[step], step
    # and the workflow leaves the clean state
    assert final_state(stores) == CLEAN
    check_invariants(stores)


@pytest.mark.parametrize(("step", "index", "fault"), cases())
def test_lifecycle_task_survives_each_fault_and_its_retry_ends_as_a_clean_run(
    stores: Stores, step: str, index: int, fault: faults.Fault
) -> None:
    # Given the tasks before `step` done
    state = run(seeded(stores), STEPS[: STEPS.index(step)])
    # When the index-th AWS call of the task fails with the fault
    with faults.inject_at(index, fault) as rule:
        try:
            result: dict[str, Any] | BaseException = task(step)(dict(state))
        except BaseException as exc:
            result = exc
    assert rule.fired, "the fault was not injected"
    # Then the workflow sees a typed error its Retry/Catch can name (or the crash), never a raw botocore one
    faults.assert_typed_outcome(fault, result)
    # and nothing is half-written
    check_invariants(stores)
    # When the state machine retries the task with the same input and the workflow goes on
    faults.install()
    run(state, STEPS[STEPS.index(step) :])
    # Then it ends as a clean run: one version, the same number, nothing half-written
    assert final_state(stores) == CLEAN
    check_invariants(stores)
