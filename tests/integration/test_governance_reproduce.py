"""Reproducibility on moto: a version trained by the lifecycle steps is retrained from its records
(dataset object, spec version, seed) with identical holdout predictions, retired or not; through the
API, POST .../reproduce starts it in the reproduce function (its real handler, reached through
moto's Lambda Invoke API), GET reads the outcome, and a repeated request never starts a second one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from functions.dal import audit as audit_dal
from functions.handlers import reproduce as reproduce_handler
from functions.logic import reproduction, retirement
from functions.logic.reproduce import reproduce
from functions.models.audit import Actor, model_target
from functions.models.settings import get_settings
from tests.integration.approval_support import Context, call
from tests.integration.conftest import Stores
from tests.integration.lifecycle_support import run_steps, seed_dataset, seed_spec, start_state
from tests.integration.test_lifecycle_handlers import toy_spec
from tests.unit.lifecycle_data import classification_table

FUNCTION = "stepwise-reproduce"
PATH = "/v1/models/toy-model/versions/1/reproduce"


def _rejected_version(stores: Stores) -> str:
    """toy-model version 1, trained by the lifecycle steps and REJECTED by its gate; the dataset's sha256."""
    dataset = seed_dataset(stores, "toy", classification_table(), "label")
    spec = seed_spec(stores, toy_spec(gates={"min_primary": 1.01}))  # fails its gate: REJECTED
    assert run_steps(start_state(spec, dataset))["registered"]["status"] == "REJECTED"
    return dataset.sha256


def deliver(event: dict[str, Any]) -> dict[str, Any]:
    return reproduce_handler.lambda_handler(event, Context())  # type: ignore[no-any-return]


def _actions(stores: Stores) -> list[str]:
    return [e.action for e in audit_dal.list_events(stores.metadata_table, target=model_target("toy-model"))]


def test_reproduce_retired_version_gives_identical_holdout_predictions(stores: Stores) -> None:
    # Given version 1 trained by the lifecycle steps, then rejected and retired
    sha256 = _rejected_version(stores)
    settings = get_settings()
    retirement.retire(settings, "toy-model", 1, Actor(identity="ops"), "never served")
    # When it is reproduced
    result = reproduce(settings, "toy-model", 1)
    # Then the retrained pipeline predicts the holdout exactly as the recorded artifact
    assert result.identical and result.label_mismatches == 0 and result.max_abs_diff == 0.0
    assert result.holdout_rows > 0 and result.seed == 5 and result.data_sha256 == sha256


def test_reproduce_route_runs_in_the_reproduce_function_and_reports_identical(
    stores: Stores, deliveries: list[dict[str, Any]]
) -> None:
    # Given a registered version
    sha256 = _rejected_version(stores)
    # When alice asks for a reproduction
    status, started = call("POST", PATH, {})
    # Then it is accepted RUNNING, with her as the requester, and the reproduce function was invoked once
    assert status == 202, started
    assert started["status"] == "RUNNING" and started["requested_by"].endswith("user/alice")
    assert deliveries == [{"reproduction_id": started["reproduction_id"], "model": "toy-model", "version": 1}]
    assert call("GET", PATH)[1]["status"] == "RUNNING"
    # When the function runs, Then GET reports the holdout predictions identical
    assert deliver(deliveries[0])["status"] == "SUCCEEDED"
    status, done = call("GET", PATH)
    assert status == 200 and done["reproduction_id"] == started["reproduction_id"]
    assert done["status"] == "SUCCEEDED" and done["finished_at"]
    result = done["result"]
    assert result["identical"] and result["label_mismatches"] == 0 and result["max_abs_diff"] == 0.0
    assert result["holdout_rows"] > 0 and result["seed"] == 5 and result["data_sha256"] == sha256
    # And the audit trail records the request (alice) and the result
    events = audit_dal.list_events(stores.metadata_table, target=model_target("toy-model"))
    (asked,) = [e for e in events if e.action == "version.reproduce.request"]
    (outcome,) = [e for e in events if e.action == "version.reproduce.result"]
    assert asked.who.endswith("user/alice") and asked.version == 1
    assert outcome.after is not None and outcome.after["identical"] is True and outcome.version == 1


def test_reproduce_repeated_request_joins_the_running_one_and_a_redelivery_does_nothing(
    stores: Stores, deliveries: list[dict[str, Any]]
) -> None:
    # Given a reproduction started and not yet run
    _rejected_version(stores)
    _, first = call("POST", PATH)  # no body at all is fine too
    # When it is asked for again (a retry, another operator)
    status, again = call("POST", PATH, {}, who="bob")
    # Then the answer is the same reproduction, joined: no second invoke, no second request event
    assert status == 202 and again["reproduction_id"] == first["reproduction_id"] and again["joined"]
    assert len(deliveries) == 1 and _actions(stores).count("version.reproduce.request") == 1
    # When Lambda delivers the event twice, Then the second delivery does nothing
    assert deliver(deliveries[0])["status"] == "SUCCEEDED"
    assert deliver(deliveries[0])["status"] == "SKIPPED"
    assert _actions(stores).count("version.reproduce.result") == 1
    # And a request after it ended starts a new reproduction
    status, later = call("POST", PATH, {})
    assert status == 202 and later["reproduction_id"] != first["reproduction_id"] and not later["joined"]
    assert len(deliveries) == 2


def test_reproduce_running_past_its_lease_is_replaced_and_its_late_delivery_does_nothing(
    stores: Stores, deliveries: list[dict[str, Any]]
) -> None:
    # Given a reproduction started longer ago than the lease (its function died)
    _rejected_version(stores)
    settings = get_settings()
    old = datetime.now(UTC) - reproduction.STALE_AFTER - timedelta(minutes=1)
    dead = reproduction.request_reproduction(settings, "toy-model", 1, Actor(identity="ops"), now=old)
    # When it is asked for again, Then a new one starts
    status, fresh = call("POST", PATH, {})
    assert status == 202 and fresh["reproduction_id"] != dead.reproduction_id
    # And the dead one's late delivery changes nothing; the new one's stores the outcome
    assert deliver(deliveries[0])["status"] == "SKIPPED"
    assert deliver(deliveries[1])["status"] == "SUCCEEDED"
    assert call("GET", PATH)[1]["reproduction_id"] == fresh["reproduction_id"]


def test_reproduce_of_a_tampered_artifact_fails_naming_the_integrity_error(
    stores: Stores, deliveries: list[dict[str, Any]]
) -> None:
    # Given version 1 whose recorded skops artifact was overwritten since registration
    _rejected_version(stores)
    _, version = call("GET", "/v1/models/toy-model/versions/1")
    bucket, _, key = version["artifacts"]["skops"]["uri"].removeprefix("s3://").partition("/")
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=b"not the artifact")
    # When it is reproduced
    call("POST", PATH, {})
    deliver(deliveries[0])
    # Then the reproduction FAILED naming the typed error; the audit trail records it
    _, done = call("GET", PATH)
    assert done["status"] == "FAILED" and done["error"] == "IntegrityError" and done["result"] is None, done
    assert _actions(stores).count("version.reproduce.result") == 1


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        (PATH, {"seed": 3}, 400, "InvalidInput"),  # nothing is a parameter: it all comes from the records
        (PATH, [1], 400, "InvalidInput"),
        ("/v1/models/toy-model/versions/0/reproduce", {}, 400, "InvalidInput"),
        ("/v1/models/toy-model/versions/x/reproduce", {}, 400, "InvalidInput"),
        ("/v1/models/Toy_Model/versions/1/reproduce", {}, 400, "InvalidInput"),
        ("/v1/models/toy-model/versions/9/reproduce", {}, 404, "NotFound"),
        ("/v1/models/nobody/versions/1/reproduce", {}, 404, "NotFound"),
    ],
)
def test_reproduce_route_refuses_bad_requests_and_starts_nothing(
    stores: Stores, deliveries: list[dict[str, Any]], path: str, body: Any, status: int, error: str
) -> None:
    _rejected_version(stores)
    reply_status, reply = call("POST", path, body)
    assert (reply_status, reply["error"]) == (status, error), reply
    assert deliveries == [] and "version.reproduce.request" not in _actions(stores)


def test_reproduce_route_get_before_any_reproduction_is_404(stores: Stores, deliveries: list[dict[str, Any]]) -> None:
    _rejected_version(stores)
    status, reply = call("GET", PATH)
    assert status == 404 and reply["error"] == "NotFound" and "not been reproduced" in reply["message"]


def test_reproduce_route_without_an_identity_is_403(stores: Stores, deliveries: list[dict[str, Any]]) -> None:
    _rejected_version(stores)
    status, reply = call("POST", PATH, {}, who=None)
    assert status == 403 and reply["error"] == "Forbidden" and deliveries == []


def test_reproduce_worker_refuses_a_malformed_event(stores: Stores) -> None:
    with pytest.raises(ValueError):
        deliver({"reproduction_id": "x", "model": "toy-model", "version": 1})
