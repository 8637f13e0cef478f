"""Governance on moto: lineage down to the dataset object, explain from captures, the audit route,
retirement (409 for serving versions; RETIRED, untagged aliases, tagged artifacts otherwise),
restore, model cards."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from functions.dal import datasets as datasets_dal
from functions.dal import lineage as lineage_dal
from functions.dal import registry as registry_dal
from functions.dal import runs as runs_dal
from functions.dal.audit import audit_put
from functions.handlers import api
from functions.logic import lineage, releases
from functions.models.audit import Actor, AuditEvent, model_target
from functions.models.datasets import DatasetVersion
from functions.models.errors import Conflict
from functions.models.registry import Artifact, Feature, ModelRecord, ModelVersion, VersionStatus
from functions.models.runs import RunRecord, RunStatus
from functions.models.settings import get_settings
from stepwise.cli import main
from tests.integration.approval_support import Context, api_event, call
from tests.integration.conftest import Stores
from tests.integration.release_support import register
from tests.integration.test_rollback_cli import HandlerTarget

MODEL = "wine-model"
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
UPLOADER = Actor(identity="arn:aws:iam::123456789012:user/uploader")
OPS = Actor(identity="arn:aws:iam::123456789012:user/ops")


def _dataset(stores: Stores) -> DatasetVersion:
    s3 = boto3.client("s3")
    data = b"a,b,label\n1,2,x\n"
    put = s3.put_object(Bucket=stores.data_bucket, Key="validated/wine/one.csv", Body=data)
    report_key = "reports/validation/wine/v1.json"
    s3.put_object(Bucket=stores.artifacts_bucket, Key=report_key, Body=json.dumps({"verdict": "passed"}).encode())
    record = DatasetVersion(
        dataset="wine",
        version=1,
        key="validated/wine/one.csv",
        bucket=stores.data_bucket,
        version_id=put["VersionId"],
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        format="csv",
        rows=1,
        schema_fingerprint="f",
        contract_version=1,
        report_uri=f"s3://{stores.artifacts_bucket}/{report_key}",
        created_at=NOW,
        uploaded_by=UPLOADER.identity,
    )
    return datasets_dal.put_version(stores.metadata_table, record, "upload-1", UPLOADER)


def _register(stores: Stores, ds: DatasetVersion, status: VersionStatus = VersionStatus.PENDING_APPROVAL) -> int:
    """A version as registration writes it (counter, version, run marker, audit event)."""
    record = registry_dal.get_model(stores.registry_table, MODEL)
    latest = record.latest_version if record else 0
    number = latest + 1
    run_id = f"{MODEL}-{ds.version}-{number}"
    runs_dal.create_run(
        stores.metadata_table,
        RunRecord(
            run_id=run_id,
            model=MODEL,
            spec_name="wine",
            spec_version=1,
            dataset="wine",
            dataset_version=ds.version,
            execution_arn=f"arn:aws:states:us-east-1:123456789012:execution:lifecycle:{run_id}",
            started_by=UPLOADER.identity,
            status=RunStatus.REGISTERED,
            started_at=NOW,
        ),
    )
    data = f"onnx-{number}".encode()
    key = f"models/{MODEL}/runs/{run_id}/model.onnx"
    boto3.client("s3").put_object(Bucket=stores.artifacts_bucket, Key=key, Body=data)
    version = ModelVersion(
        model=MODEL,
        version=number,
        status=status,
        created_at=NOW,
        updated_at=NOW,
        task="classification",
        features=[Feature(name="a", type="float")],
        target="label",
        artifacts={
            "onnx": Artifact(
                uri=f"s3://{stores.artifacts_bucket}/{key}",
                sha256=hashlib.sha256(data).hexdigest(),
                size_bytes=len(data),
            )
        },
        metrics={"accuracy": 0.9},
        primary_metric="accuracy",
        spec_name="wine",
        spec_version=1,
        dataset="wine",
        dataset_version=ds.version,
        contract_version=ds.contract_version,
        data_key=ds.key,
        data_version_id=ds.version_id,
        data_sha256=ds.sha256,
        run_id=run_id,
        started_by=UPLOADER.identity,
        seed=7,
    )
    new_model = None
    if record is None:
        new_model = ModelRecord(name=MODEL, latest_version=1, created_at=NOW, updated_at=NOW)
    event = AuditEvent.of(
        Actor(identity=f"workflow:{run_id}"), "version.register", model_target(MODEL), version=number, after={}
    )
    registry_dal.create_version(
        stores.registry_table,
        version,
        expected_latest=latest,
        new_model=new_model,
        extra_items=[audit_put(stores.metadata_table, event)],
    )
    return number


def get(path: str, **query: str) -> tuple[int, Any]:
    """GET with a query string, as API Gateway passes it (queryStringParameters)."""
    event = api_event("GET", path)
    event["queryStringParameters"] = query
    reply = api.lambda_handler(event, Context())
    return reply["statusCode"], json.loads(reply["body"])


@pytest.fixture
def history(stores: Stores) -> dict[str, Any]:
    """v1 archived (was production), v2 production, v3 rejected."""
    settings = get_settings()
    ds = _dataset(stores)
    for _ in range(2):
        number = _register(stores, ds)
        releases.approve(settings, MODEL, number, OPS, "looks good")
        releases.promote(settings, MODEL, number, OPS, "release")
    rejected = _register(stores, ds, VersionStatus.REJECTED)
    return {"dataset": ds, "rejected": rejected}


def test_lineage_resolves_down_to_the_object_version_and_sha256(history: dict[str, Any]) -> None:
    # When the production version's lineage is read over the API
    status, body = call("GET", f"/v1/models/{MODEL}/versions/2/lineage")
    # Then every link resolves: periods, run, dataset object, evaluation, approval
    ds: DatasetVersion = history["dataset"]
    assert status == 200, body
    assert body["missing"] == []
    assert body["production_periods"][0]["promoted_by"] == OPS.identity
    assert body["run"]["execution_arn"].endswith(":wine-model-1-2") and body["run"]["seed"] == 7
    assert (body["dataset"]["key"], body["dataset"]["version_id"], body["dataset"]["sha256"]) == (
        ds.key,
        ds.version_id,
        ds.sha256,
    )
    assert body["dataset"]["report_verdict"] == "passed" and body["dataset"]["contract_version"] == 1
    assert body["approval"]["who"] == OPS.identity and body["approval"]["reason"] == "looks good"
    assert [e["action"] for e in body["events"]][:2] == ["version.register", "version.approve"]


def test_lineage_of_an_unknown_version_is_404(history: dict[str, Any]) -> None:
    assert call("GET", f"/v1/models/{MODEL}/versions/99/lineage")[0] == 404


def test_explain_finds_the_answering_version_in_captures(history: dict[str, Any], stores: Stores) -> None:
    # Given a captured prediction answered by version 2
    line = {
        "request_id": "req-42",
        "model": MODEL,
        "version": 2,
        "variant": "production",
        "time": "2026-03-01T12:00:00Z",
    }
    body = gzip.compress((json.dumps(line, separators=(",", ":")) + "\n").encode())
    key = f"captures/{MODEL}/dt=2026-03-01/hour=12/1-x.jsonl.gz"
    boto3.client("s3").put_object(Bucket=stores.data_bucket, Key=key, Body=body)
    # When explained by request id within its model, Then the version and its lineage come back
    status, reply = get("/v1/explain/req-42", model=MODEL)
    assert status == 200, reply
    assert (reply["version"], reply["capture_key"], reply["lineage"]["version"]) == (2, key, 2)
    assert (reply["matches"], reply["other_matches"], reply["searched_all"]) == (1, [], True)
    # And an unknown request id is a 404
    assert get("/v1/explain/nope", model=MODEL)[0] == 404


def put_capture(stores: Stores, model: str, key_name: str, *lines: dict[str, Any]) -> str:
    """A capture object of `model` holding `lines` (as serving writes them: gzip JSON Lines)."""
    text = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
    key = f"captures/{model}/dt=2026-03-01/hour=12/{key_name}.jsonl.gz"
    boto3.client("s3").put_object(Bucket=stores.data_bucket, Key=key, Body=gzip.compress(text.encode()))
    return key


def captured(model: str, version: int, time: str, variant: str = "production") -> dict[str, Any]:
    return {"request_id": "order-1", "model": model, "version": version, "variant": variant, "time": time}


def test_explain_needs_the_model_and_never_answers_from_another_models_captures(
    history: dict[str, Any], stores: Stores
) -> None:
    # Given two clients of two models chose the same request id; the other model's is the newest
    register(stores, "other-model")
    put_capture(stores, MODEL, "1-a", captured(MODEL, 1, "2026-03-01T12:00:00.000Z"))
    put_capture(stores, "other-model", "9-z", captured("other-model", 7, "2026-03-01T12:59:00.000Z"))
    # When explained without a model, Then 400 saying the model is required
    status, reply = call("GET", "/v1/explain/order-1")
    assert status == 400 and "query.model: Field required" in reply["message"], reply
    # When explained within this model, Then this model's capture answers, the other is not seen
    status, reply = get("/v1/explain/order-1", model=MODEL)
    assert status == 200, reply
    assert (reply["model"], reply["version"], reply["matches"]) == (MODEL, 1, 1)
    # And an unknown model is a 404 naming it
    status, reply = get("/v1/explain/order-1", model="no-such-model")
    assert status == 404 and "no-such-model" in reply["message"]


def test_explain_says_when_more_than_one_captured_request_carries_the_id(
    history: dict[str, Any], stores: Stores
) -> None:
    # Given two requests of the model with the same id (two callers), one of 3 rows with a shadow copy
    older = put_capture(stores, MODEL, "1-a", *[captured(MODEL, 1, "2026-03-01T12:00:00.000Z")] * 3)
    newer = put_capture(
        stores,
        MODEL,
        "2-b",
        captured(MODEL, 2, "2026-03-01T12:30:00.000Z"),
        captured(MODEL, 3, "2026-03-01T12:30:00.000Z", variant="shadow"),
    )
    # When explained
    status, reply = get("/v1/explain/order-1", model=MODEL)
    # Then the newest answers, and the reply says two requests matched and names the other
    assert status == 200, reply
    assert (reply["version"], reply["capture_key"], reply["matches"]) == (2, newer, 2)
    assert reply["other_matches"] == [
        {"version": 1, "variant": "production", "time": "2026-03-01T12:00:00.000Z", "capture_key": older}
    ]


def test_audit_route_lists_events_in_order_with_identities(history: dict[str, Any]) -> None:
    status, body = get("/v1/audit", model=MODEL)
    assert status == 200
    events = body["events"]
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)
    assert all(e["who"] for e in events)
    actions = [(e["action"], e.get("version")) for e in events]
    assert actions.index(("version.register", 1)) < actions.index(("version.approve", 1))
    assert ("version.promote", 2) in actions and ("version.archive", 1) in actions
    # And the dataset's own trail is a target away
    status, body = get("/v1/audit", target="dataset/wine")
    assert [e["action"] for e in body["events"]] == ["dataset.version.create"]


def test_audit_route_refuses_a_bad_since(history: dict[str, Any]) -> None:
    assert get("/v1/audit", since="yesterday")[0] == 400


def test_retire_production_is_409_and_changes_nothing(history: dict[str, Any], stores: Stores) -> None:
    before = registry_dal.get_model(stores.registry_table, MODEL)
    status, body = call("POST", f"/v1/models/{MODEL}/versions/2/retire", {"reason": "old"})
    assert status == 409 and "serving" in body["message"]
    assert registry_dal.get_model(stores.registry_table, MODEL) == before
    assert registry_dal.get_version(stores.registry_table, MODEL, 2).status == VersionStatus.PRODUCTION  # type: ignore[union-attr]


def test_retire_without_reason_is_400(history: dict[str, Any]) -> None:
    assert call("POST", f"/v1/models/{MODEL}/versions/1/retire", {"reason": " "})[0] == 400


def test_retire_archived_version_sets_retired_tags_artifacts_and_keeps_records(
    history: dict[str, Any], stores: Stores
) -> None:
    # When the archived version is retired
    status, body = call("POST", f"/v1/models/{MODEL}/versions/1/retire", {"reason": "superseded"}, who="bob")
    # Then it is RETIRED, out of the rollback list, production untouched, artifacts tagged
    assert status == 200, body
    v1 = registry_dal.get_version(stores.registry_table, MODEL, 1)
    assert v1 is not None and v1.status == VersionStatus.RETIRED and "RETIRED: superseded" in v1.reasons
    record = registry_dal.get_model(stores.registry_table, MODEL)
    assert record is not None and record.production_version == 2 and 1 not in record.previous_production
    assert lineage_dal.object_tags(v1.artifacts["onnx"].uri) == {lineage_dal.RETIRED_TAG: "true"}
    # And its lineage still resolves, with the retirement in the trail
    lin = lineage.lineage(get_settings(), MODEL, 1)
    assert lin.missing == [] and lin.dataset.sha256 == history["dataset"].sha256
    retire_event = next(e for e in lin.events if e.action == "version.retire")
    assert retire_event.who.endswith("user/bob") and retire_event.reason == "superseded"
    # And the model card says so
    assert body["card_uri"].endswith("card.md")
    assert "RETIRED" in call("GET", f"/v1/models/{MODEL}/versions/1/card")[1]["markdown"]


def test_retire_rejected_version_then_restore_reverifies_and_registers_anew(
    history: dict[str, Any], stores: Stores
) -> None:
    rejected = history["rejected"]
    assert call("POST", f"/v1/models/{MODEL}/versions/{rejected}/retire", {"reason": "failed gates"})[0] == 200
    # When restored
    status, body = call("POST", f"/v1/models/{MODEL}/versions/{rejected}/restore", {"reason": "audit check"})
    # Then a new version, verified, PENDING_APPROVAL, with the same lineage and a restored_from link
    assert status == 201, body
    new = registry_dal.get_version(stores.registry_table, MODEL, body["version"])
    old = registry_dal.get_version(stores.registry_table, MODEL, rejected)
    assert new is not None and old is not None
    assert new.status == VersionStatus.PENDING_APPROVAL and new.restored_from == rejected
    assert body["verified"]["onnx"] == old.artifacts["onnx"].sha256 == new.artifacts["onnx"].sha256
    assert new.data_sha256 == old.data_sha256
    assert lineage.lineage(get_settings(), MODEL, new.version).run.execution_arn  # the original run


def test_restored_version_is_approved_by_another_caller_and_released(history: dict[str, Any], stores: Stores) -> None:
    # Given a retired version restored by alice (a new version with an approval request, no workflow)
    rejected = history["rejected"]
    assert call("POST", f"/v1/models/{MODEL}/versions/{rejected}/retire", {"reason": "failed gates"})[0] == 200
    status, body = call("POST", f"/v1/models/{MODEL}/versions/{rejected}/restore", {"reason": "re-evaluated"})
    assert status == 201, body
    approval = f"{MODEL}-{body['version']}"
    status, pending = call("GET", f"/v1/approvals/{approval}")
    assert status == 200 and pending["status"] == "PENDING", pending
    # When alice tries to approve her own restore, Then four-eyes refuses it
    assert call("POST", f"/v1/approvals/{approval}/approve", {"reason": "mine"}, who="alice")[0] == 403
    # When bob approves it
    status, decided = call("POST", f"/v1/approvals/{approval}/approve", {"reason": "checked"}, who="bob")
    # Then the restored version serves all traffic, in bob's name
    assert status == 200 and decided["status"] == "APPROVED", decided
    record = registry_dal.get_model(stores.registry_table, MODEL)
    assert record is not None and record.production_version == body["version"]
    version = registry_dal.get_version(stores.registry_table, MODEL, body["version"])
    assert version is not None and version.status == VersionStatus.PRODUCTION
    # And bob's repeat of the same decision changes nothing (the version is no longer APPROVED)
    assert call("POST", f"/v1/approvals/{approval}/approve", {"reason": "checked"}, who="bob")[0] == 409


def test_restore_refuses_a_tampered_artifact(history: dict[str, Any], stores: Stores) -> None:
    rejected = history["rejected"]
    settings = get_settings()
    from functions.logic import retirement

    retirement.retire(settings, MODEL, rejected, OPS, "old")
    v = registry_dal.get_version(stores.registry_table, MODEL, rejected)
    assert v is not None
    bucket, key = v.artifacts["onnx"].uri[5:].split("/", 1)
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=b"tampered")
    status, body = call("POST", f"/v1/models/{MODEL}/versions/{rejected}/restore", {"reason": "x"})
    assert status == 503 and body["error"] == "IntegrityError"


def test_retire_canary_is_409(stores: Stores) -> None:
    settings = get_settings()
    ds = _dataset(stores)
    for n in (1, 2):
        _register(stores, ds)
        releases.approve(settings, MODEL, n, OPS, "ok")
    releases.promote(settings, MODEL, 1, OPS)
    releases.start_canary(settings, MODEL, 2, 0.1, OPS)
    with pytest.raises(Conflict):
        from functions.logic import retirement

        retirement.retire(settings, MODEL, 2, OPS, "no")


def test_model_card_is_written_on_approval(history: dict[str, Any], stores: Stores) -> None:
    # Given version 2 was approved by ops (the history), Then its stored card names the approval
    from functions.logic.model_card import card_key

    s3 = boto3.client("s3")
    markdown = s3.get_object(Bucket=stores.artifacts_bucket, Key=card_key(MODEL, 2, "md"))["Body"].read().decode()
    assert f"APPROVED by `{OPS.identity}`" in markdown and history["dataset"].sha256 in markdown
    page = s3.get_object(Bucket=stores.artifacts_bucket, Key=card_key(MODEL, 2, "html"))
    assert page["ContentType"].startswith("text/html")


def test_explain_cli_needs_the_model_and_warns_when_the_id_matched_several_requests(
    history: dict[str, Any], stores: Stores, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given two captured requests of the model with the same id, and the CLI against the real API
    target = HandlerTarget(api_url="http://local", outputs={})
    target.calls, target.before_post = [], None
    monkeypatch.setattr("stepwise.cli.resolve", lambda *a: target)
    put_capture(stores, MODEL, "1-a", captured(MODEL, 1, "2026-03-01T12:00:00.000Z"))
    put_capture(stores, MODEL, "2-b", captured(MODEL, 2, "2026-03-01T12:30:00.000Z"))
    # When explained without --model, Then the CLI refuses before any request
    with pytest.raises(SystemExit):
        main(["explain", "order-1"])
    assert target.calls == []
    # When explained with it, Then it asks within the model and warns that two requests carry the id
    assert main(["explain", "order-1", "--model", MODEL]) == 0
    out = capsys.readouterr().out
    assert target.calls == [("GET", f"/v1/explain/order-1?model={MODEL}", None)]
    assert f"answered by {MODEL} version 2" in out
    assert f"warning: 2 captured requests of {MODEL} carry this id" in out
    assert "version 1 (production, 2026-03-01T12:00:00.000Z)" in out
