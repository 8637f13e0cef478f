"""Paginated registry reads on the API: GET /v1/models?limit=&next_token= returns a page and the
token of the next one; following the tokens returns every model exactly once, and nothing stops at
a fixed size. A token that is not one of this listing, or a limit out of range, is a 400 naming it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from functions.dal import pages
from functions.dal import registry as registry_dal
from functions.handlers import api
from functions.models.registry import ModelRecord
from tests.integration.approval_support import Context, api_event
from tests.integration.conftest import Stores

AT = datetime(2026, 11, 26, tzinfo=UTC)


def seed_models(stores: Stores, n: int) -> list[str]:
    names = [f"model-{i:04d}" for i in range(n)]
    ddb = boto3.client("dynamodb")
    for name in names:
        record = ModelRecord(name=name, latest_version=0, revision=0, created_at=AT, updated_at=AT)
        ddb.put_item(TableName=stores.registry_table, Item=registry_dal.model_item(record))
    return names


def get(path: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
    event = api_event("GET", path)
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
    reply = api.lambda_handler(event, Context())
    return reply["statusCode"], json.loads(reply["body"])


def test_models_route_pages_of_25_return_200_models_each_exactly_once(stores: Stores) -> None:
    # Given 200 models
    names = seed_models(stores, 200)
    # When they are listed 25 at a time, following next_token
    seen: list[str] = []
    query = {"limit": "25"}
    pages_read = 0
    while True:
        status, body = get("/v1/models", query)
        assert status == 200, body
        pages_read += 1
        assert len(body["models"]) <= 25
        seen += [m["name"] for m in body["models"]]
        if not body.get("next_token"):
            break
        query = {"limit": "25", "next_token": body["next_token"]}
    # Then every model came exactly once, in order, in 8 pages; the last names no next page
    assert seen == names and pages_read == 8


def test_models_route_default_page_names_the_next_one_when_more_exist(stores: Stores) -> None:
    seed_models(stores, 3)
    status, body = get("/v1/models", {"limit": "2"})
    assert status == 200 and [m["name"] for m in body["models"]] == ["model-0000", "model-0001"]
    assert body["next_token"]
    status, body = get("/v1/models", {})
    assert status == 200 and len(body["models"]) == 3 and body["next_token"] is None


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        pages.encode("versions:model-0000", "model-0001"),  # a token of another listing
        pages.encode("models", "NOT A NAME"),  # a position that is no model name
        "x" * 400,
    ],
)
def test_models_route_refuses_an_unknown_next_token_naming_it(stores: Stores, token: str) -> None:
    seed_models(stores, 3)
    status, body = get("/v1/models", {"next_token": token})
    assert status == 400 and body["error"] == "InvalidInput", body
    assert [d["field"] for d in body["details"]] == ["query.next_token"] and "query.next_token" in body["message"]


@pytest.mark.parametrize("limit", ["0", "-1", "1001", "99999999999999999999", "ten"])
def test_models_route_refuses_a_limit_out_of_range_naming_it(stores: Stores, limit: str) -> None:
    status, body = get("/v1/models", {"limit": limit})
    assert status == 400 and body["error"] == "InvalidInput", body
    assert "query.limit" in [d["field"] for d in body["details"]]


def test_versions_route_pages_follow_the_tokens_and_refuse_another_listings_token(stores: Stores) -> None:
    # Given a model with 7 versions
    from tests.integration.release_support import register

    for _ in range(7):
        register(stores, "churn")
    # When its versions are listed 3 at a time
    seen: list[int] = []
    query = {"limit": "3"}
    while True:
        status, body = get("/v1/models/churn/versions", query)
        assert status == 200, body
        seen += [v["version"] for v in body["versions"]]
        if not body.get("next_token"):
            break
        query = {"limit": "3", "next_token": body["next_token"]}
    # Then every version came once, oldest first
    assert seen == [1, 2, 3, 4, 5, 6, 7]
    # and a token of the models listing (or of another model's versions) is refused, naming it
    for token in (pages.encode("models", "churn"), pages.encode("versions:other", "3")):
        status, body = get("/v1/models/churn/versions", {"next_token": token})
        assert status == 400 and [d["field"] for d in body["details"]] == ["query.next_token"], body


def test_datasets_route_pages_follow_the_tokens_and_refuse_a_bad_one(stores: Stores) -> None:
    # Given 7 datasets
    ddb = boto3.client("dynamodb")
    names = [f"data-{i}" for i in range(7)]
    for name in names:
        ddb.put_item(
            TableName=stores.metadata_table,
            Item={
                "pk": {"S": f"DATASET#{name}"},
                "sk": {"S": "HEAD"},
                "gsi1pk": {"S": "DATASETS"},
                "gsi1sk": {"S": name},
                "dataset": {"S": name},
                "latest_contract_version": {"N": "1"},
                "latest_version": {"N": "0"},
                "created_at": {"S": AT.isoformat()},
                "updated_at": {"S": AT.isoformat()},
            },
        )
    # When they are listed 3 at a time, following next_token
    seen: list[str] = []
    query = {"limit": "3"}
    while True:
        status, body = get("/v1/datasets", query)
        assert status == 200, body
        seen += [d["dataset"] for d in body["datasets"]]
        if not body.get("next_token"):
            break
        query = {"limit": "3", "next_token": body["next_token"]}
    # Then each came once; a models token is refused naming next_token
    assert seen == names
    status, body = get("/v1/datasets", {"next_token": pages.encode("models", "data-1")})
    assert status == 400 and [d["field"] for d in body["details"]] == ["query.next_token"], body
