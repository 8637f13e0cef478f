from __future__ import annotations

import json

import boto3

from functions.handlers import api
from tests.conftest import load_event
from tests.integration.conftest import Stores
from tests.lambda_context import FakeContext


class Context(FakeContext):
    """The API function's context."""

    function = "api"


def test_health_reports_every_store_ok(stores: Stores) -> None:
    # Given the stores exist in moto; When the health route is called
    reply = api.lambda_handler(load_event("apigw/health.json"), Context())
    # Then it answers 200 with the version and each store ok
    body = json.loads(reply["body"])
    assert reply["statusCode"] == 200
    assert body["version"] == "test"
    assert {s["name"]: s["ok"] for s in body["stores"]} == {
        "data": True,
        "artifacts": True,
        "registry": True,
        "metadata": True,
    }


def test_health_is_degraded_when_a_store_is_missing(stores: Stores) -> None:
    # Given the artifacts bucket is gone
    boto3.client("s3").delete_bucket(Bucket=stores.artifacts_bucket)
    # When / Then the route answers 503 naming the failing store
    reply = api.lambda_handler(load_event("apigw/health.json"), Context())
    body = json.loads(reply["body"])
    assert reply["statusCode"] == 503
    assert [s["name"] for s in body["stores"] if not s["ok"]] == ["artifacts"]
    # And it says when to try again
    assert reply["multiValueHeaders"]["Retry-After"] == ["5"], reply


def test_unknown_route_is_a_json_404(stores: Stores) -> None:
    event = load_event("apigw/health.json") | {"path": "/v1/nope", "resource": "/v1/nope"}
    reply = api.lambda_handler(event, Context())
    assert reply["statusCode"] == 404
    assert json.loads(reply["body"])["error"] == "NotFound"
