"""Import routes on moto: presigned upload, the import request, its refusals and audit events."""

from __future__ import annotations

import hashlib
from typing import Any

import boto3
import pytest
import requests  # type: ignore[import-untyped]

from functions.dal import audit as audit_store
from functions.models.audit import model_target
from tests.integration.conftest import Stores
from tests.integration.lifecycle_support import seed_dataset
from tests.integration.test_lifecycle_api import call
from tests.unit.lifecycle_data import classification_table

ARTIFACT = b"\x08\x09 stand-in bytes: the API never parses the artifact"


@pytest.fixture
def dataset(stores: Stores, parked_workflow: str) -> Any:
    return seed_dataset(stores, "toy", classification_table(rows=40), "label")


def _upload(stores: Stores, content: bytes = ARTIFACT) -> str:
    status, ticket = call("POST", "/v1/models/toy-model/imports/upload", {"size_bytes": len(content)})
    assert status == 201, ticket
    assert ticket["key"] == f"imports/toy-model/{ticket['upload_id']}/model.onnx"
    assert ticket["bucket"] == stores.artifacts_bucket and ticket["method"] == "PUT"
    # the presigned URL is one moto answers in-process: PUT the bytes the way a client would
    put = requests.put(ticket["url"], data=content, headers=ticket["headers"], timeout=10)
    assert put.status_code == 200, put.text
    return str(ticket["upload_id"])


def _request(upload_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "upload_id": upload_id,
        "sha256": hashlib.sha256(ARTIFACT).hexdigest(),
        "dataset": "toy",
        "dataset_version": 1,
        "task": "classification",
        "source_url": "https://github.com/example/notebooks",
        "source_commit": "0123abc",
        **overrides,
    }


def _actions(stores: Stores) -> list[str]:
    events = audit_store.list_events(stores.metadata_table, target=model_target("toy-model"))
    return sorted(e.action for e in events)


def test_import_routes_upload_then_import_records_it_with_its_audit_events(stores: Stores, dataset: Any) -> None:
    # Given an artifact uploaded through its presigned URL
    upload_id = _upload(stores)
    stored = boto3.client("s3").get_object(
        Bucket=stores.artifacts_bucket, Key=f"imports/toy-model/{upload_id}/model.onnx"
    )
    assert stored["Body"].read() == ARTIFACT
    # When the import names it and the dataset version
    status, body = call("POST", "/v1/models/toy-model/imports", _request(upload_id))
    # Then it is accepted, with the contract's target, the caller and the artifact's place
    assert status == 202, body
    assert body["status"] == "RECEIVED" and body["target"] == "label" and body["joined"] is False
    assert body["requested_by"] == "arn:aws:iam::123456789012:user/operator"
    assert body["artifact_uri"] == f"s3://{stores.artifacts_bucket}/imports/toy-model/{upload_id}/model.onnx"
    assert body["size_bytes"] == len(ARTIFACT)
    assert _actions(stores) == ["model.import.request", "model.import.upload"]
    # And the same request again answers the stored import, with no second audit event
    status, again = call("POST", "/v1/models/toy-model/imports", _request(upload_id))
    assert status == 202 and again["joined"] is True and again["requested_at"] == body["requested_at"]
    assert _actions(stores) == ["model.import.request", "model.import.upload"]
    # And another request for the same upload is a conflict
    status, other = call("POST", "/v1/models/toy-model/imports", _request(upload_id, description="another"))
    assert status == 409 and other["error"] == "Conflict"


def test_import_routes_refuse_an_upload_over_the_size_limit(stores: Stores) -> None:
    status, body = call("POST", "/v1/models/toy-model/imports/upload", {"size_bytes": 256 * 1024**2 + 1})
    assert status == 400 and body["details"][0]["field"] == "size_bytes"
    assert "over the import size limit" in body["message"]
    assert _actions(stores) == ["model.import.refused"]


@pytest.mark.parametrize(
    ("overrides", "status", "named"),
    [
        ({"upload_id": "f" * 32}, 404, "has no uploaded object"),
        ({"dataset_version": 9}, 404, "has no version 9"),
        ({"target": "colour"}, 400, "'colour' is not a column"),
    ],
)
def test_import_routes_refuse_what_the_stores_contradict_and_audit_it(
    stores: Stores, dataset: Any, overrides: dict[str, Any], status: int, named: str
) -> None:
    upload_id = _upload(stores)
    got, body = call("POST", "/v1/models/toy-model/imports", _request(upload_id) | overrides)
    assert got == status and named in body["message"], body
    assert _actions(stores) == ["model.import.refused", "model.import.upload"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sha256", "not-a-digest"),
        ("upload_id", "../../models/x"),
        ("task", "clustering"),
        ("source_url", "file:///etc/passwd"),
        ("source_commit", "main; rm -rf"),
    ],
)
def test_import_routes_validate_the_body_naming_the_field(stores: Stores, field: str, value: str) -> None:
    status, body = call("POST", "/v1/models/toy-model/imports", _request("a" * 32) | {field: value})
    assert status == 400 and body["error"] == "InvalidInput"
    assert any(field in d["field"] for d in body["details"]), body
