"""Dataset routes of the control API on moto: contracts (versioned, refused with field and reason)
and dataset versions."""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq

from functions.handlers import api
from tests.conftest import load_event
from tests.integration.conftest import Stores
from tests.integration.test_validate_handler import CONTRACT, good_columns, invoke, s3_event
from tests.lambda_context import FakeContext


class ApiContext(FakeContext):
    """The API function's context."""

    function = "api"


def call(method: str, path: str, body: Any = None, query: dict[str, str] | None = None) -> tuple[int, Any]:
    event = copy.deepcopy(load_event("apigw/health.json"))
    event.update(
        httpMethod=method,
        path=path,
        resource=path,
        body=None if body is None else json.dumps(body),
        queryStringParameters=query,
        multiValueQueryStringParameters={k: [v] for k, v in (query or {}).items()} or None,
    )
    event["requestContext"].update(httpMethod=method, path=f"/prod{path}")
    reply = api.lambda_handler(event, ApiContext())
    return reply["statusCode"], json.loads(reply["body"])


def test_datasets_put_contract_twice_keeps_both_versions(stores: Stores) -> None:
    # Given a contract put twice
    status1, first = call("PUT", "/v1/datasets/wine/contract", CONTRACT)
    status2, second = call("PUT", "/v1/datasets/wine/contract", {**CONTRACT, "min_rows": 3})
    # Then both are stored as versions 1 and 2, by the caller, and either can be read
    assert (status1, status2) == (201, 201)
    assert (first["version"], second["version"]) == (1, 2)
    assert first["created_by"] == "arn:aws:iam::123456789012:user/operator"
    assert call("GET", "/v1/datasets/wine/contract")[1]["contract"]["min_rows"] == 3
    assert call("GET", "/v1/datasets/wine/contract", query={"version": "1"})[1]["contract"]["min_rows"] == 2
    assert [c["version"] for c in call("GET", "/v1/datasets/wine/contracts")[1]["contracts"]] == [1, 2]


def test_datasets_bad_contract_is_refused_with_field_and_reason(stores: Stores) -> None:
    bad = copy.deepcopy(CONTRACT)
    bad["columns"][1]["min"] = 20  # above its max
    bad["columns"][0]["type"] = "integer"
    status, body = call("PUT", "/v1/datasets/wine/contract", bad)
    assert status == 400 and body["error"] == "InvalidInput"
    fields = {d["field"] for d in body["details"]}
    assert "columns.0.type" in fields and any(f.startswith("columns.1") for f in fields)
    assert call("GET", "/v1/datasets/wine/contract")[0] == 404


def test_datasets_unknown_dataset_and_bad_version_are_json_errors(stores: Stores) -> None:
    assert call("GET", "/v1/datasets/nosuch/contract")[0] == 404
    assert call("GET", "/v1/datasets/nosuch/versions/abc")[0] == 400
    assert call("GET", "/v1/datasets/Bad_Name/versions")[0] == 400


def test_datasets_versions_are_listed_after_uploads(stores: Stores) -> None:
    # Given a contract and one good upload
    call("PUT", "/v1/datasets/wine/contract", CONTRACT)
    buf = io.BytesIO()
    pq.write_table(pa.table(good_columns()), buf)
    reply = boto3.client("s3").put_object(Bucket=stores.data_bucket, Key="raw/wine/a.parquet", Body=buf.getvalue())
    invoke(s3_event(stores.data_bucket, "raw/wine/a.parquet", reply["VersionId"], reply["ETag"].strip('"'), 1))
    # When the dataset routes are read
    _, listing = call("GET", "/v1/datasets")
    _, versions = call("GET", "/v1/datasets/wine/versions")
    status, one = call("GET", "/v1/datasets/wine/versions/1")
    # Then they show the version with its rows and contract version
    assert listing["datasets"][0]["dataset"] == "wine" and listing["datasets"][0]["latest_version"] == 1
    assert [v["version"] for v in versions["versions"]] == [1]
    assert status == 200 and one["rows"] == 4 and one["contract_version"] == 1
    assert call("GET", "/v1/datasets/wine")[1]["latest_contract_version"] == 1
