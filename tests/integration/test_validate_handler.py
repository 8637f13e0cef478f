"""The validation Lambda on moto: uploads become versions or are quarantined, exactly once."""

from __future__ import annotations

import copy
import io
import json
import random
from datetime import UTC, datetime
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from functions.dal import datasets
from functions.handlers import validate
from functions.models.audit import Actor
from functions.models.contracts import DataContract
from functions.models.datasets import report_key
from functions.models.errors import Conflict
from functions.models.settings import get_settings
from tests.conftest import load_event
from tests.integration.conftest import Stores
from tests.lambda_context import FakeContext

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
OPERATOR = Actor(identity="arn:aws:iam::123456789012:user/operator")

CONTRACT = {
    "columns": [
        {"name": "id", "type": "int", "nullable": False},
        {"name": "alcohol", "type": "float", "min": 10, "max": 16, "max_null_fraction": 0.5},
        {"name": "color", "type": "category", "categories": ["red", "white"]},
        {"name": "code", "type": "string", "pattern": "[A-Z]{2}[0-9]+"},
        {"name": "label", "type": "int", "nullable": False, "min": 0, "max": 2},
    ],
    "key": "id",
    "target": "label",
    "min_rows": 2,
    "max_rows": 100,
}


class Context(FakeContext):
    """The validate function's context: a minute left, the lease of its in-progress record."""

    function = "validate"
    remaining_ms = 60_000


def good_columns() -> dict[str, list[Any]]:
    return {
        "id": [1, 2, 3, 4],
        "alcohol": [12.5, 13.0, None, 14.1],
        "color": ["red", "white", "red", None],
        "code": ["AB1", "CD22", None, "EF333"],
        "label": [0, 1, 2, 1],
    }


def parquet_bytes(columns: dict[str, list[Any]]) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table(columns), buf)
    return buf.getvalue()


def upload(stores: Stores, key: str, body: bytes) -> dict[str, Any]:
    """Put an object as a client would; the S3 event AWS would send for it."""
    reply = boto3.client("s3").put_object(Bucket=stores.data_bucket, Key=key, Body=body)
    return s3_event(stores.data_bucket, key, reply["VersionId"], reply["ETag"].strip('"'), len(body))


def s3_event(bucket: str, key: str, version_id: str, etag: str, size: int) -> dict[str, Any]:
    from urllib.parse import quote_plus

    event = copy.deepcopy(load_event("s3/object_created.json"))
    record = event["Records"][0]
    record["s3"]["bucket"]["name"] = bucket
    record["s3"]["object"].update(key=quote_plus(key), versionId=version_id, eTag=etag, size=size)
    return event


def invoke(event: dict[str, Any]) -> dict[str, Any]:
    outcomes: list[dict[str, Any]] = validate.lambda_handler(event, Context())["outcomes"]
    return outcomes[0]


def keys(bucket: str, prefix: str) -> list[str]:
    reply = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for o in reply.get("Contents", []))


def report(stores: Stores, outcome: dict[str, Any]) -> dict[str, Any]:
    key = outcome["report_uri"].split("/", 3)[3]
    body = boto3.client("s3").get_object(Bucket=stores.artifacts_bucket, Key=key)["Body"].read()
    return json.loads(body)


# -- pass ------------------------------------------------------------------------------------------


def test_validate_good_parquet_becomes_version_one(wine: Stores) -> None:
    # Given a contract for wine; When a good Parquet file is uploaded under raw/wine/
    body = parquet_bytes(good_columns())
    outcome = invoke(upload(wine, "raw/wine/batch.parquet", body))
    # Then it passes, is copied to validated/wine/ and recorded as version 1
    assert outcome["verdict"] == "passed" and outcome["version"] == 1
    assert keys(wine.data_bucket, "validated/") == ["validated/wine/batch.parquet"]
    version = datasets.get_version(wine.metadata_table, "wine", 1)
    assert version.rows == 4 and version.contract_version == 1 and version.format == "parquet"
    assert version.sha256 == __import__("hashlib").sha256(body).hexdigest()
    assert version.version_id and version.source_key == "raw/wine/batch.parquet"
    assert version.training_status == "none"
    # and the report sits in the artifacts bucket, every rule passed
    rep = report(wine, outcome)
    assert rep["verdict"] == "passed" and all(r["passed"] for r in rep["rules"])
    assert outcome["report_uri"].endswith(report_key("wine", version.source_version_id))


def test_validate_good_csv_with_encoded_key_passes(wine: Stores) -> None:
    # Given a CSV whose key has a space (URL-encoded as + in the event)
    body = b"id,alcohol,color,code,label\n1,12.5,red,AB1,0\n2,13.0,white,CD22,1\n"
    outcome = invoke(upload(wine, "raw/wine/my batch.csv", body))
    # Then the decoded key is read and validated
    assert outcome["verdict"] == "passed", outcome
    assert keys(wine.data_bucket, "validated/") == ["validated/wine/my batch.csv"]


def test_validate_moto_shaped_event_without_version_id_passes(wine: Stores) -> None:
    # Given the event shape moto delivers (no versionId, no userIdentity)
    body = b'{"id": 1, "alcohol": 12.0, "color": "red", "code": "AB1", "label": 0}\n' * 1
    body += b'{"id": 2, "alcohol": 13.0, "color": "white", "code": "AB2", "label": 1}\n'
    reply = boto3.client("s3").put_object(Bucket=wine.data_bucket, Key="raw/wine/a.jsonl", Body=body)
    event = copy.deepcopy(load_event("s3/object_created_unversioned.json"))
    event["Records"][0]["s3"]["bucket"]["name"] = wine.data_bucket
    event["Records"][0]["s3"]["object"].update(key="raw/wine/a.jsonl", eTag=reply["ETag"].strip('"'))
    # When it is handled; Then the object's current version is validated and recorded
    outcome = invoke(event)
    assert outcome["verdict"] == "passed"
    assert datasets.get_version(wine.metadata_table, "wine", 1).source_version_id == reply["VersionId"]


def test_validate_contract_with_training_spec_records_would_start(stores: Stores) -> None:
    # Given a contract naming a training spec and no lifecycle workflow deployed
    contract = DataContract.model_validate({**CONTRACT, "training_spec": "wine-quality"})
    datasets.put_contract(stores.metadata_table, "wine", contract, OPERATOR, NOW)
    # When a good file arrives; Then the version records that training would start
    outcome = invoke(upload(stores, "raw/wine/b.parquet", parquet_bytes(good_columns())))
    assert outcome["training_status"] == "would_start"
    version = datasets.get_version(stores.metadata_table, "wine", 1)
    assert version.training_status == "would_start" and version.training_spec == "wine-quality"


# -- fail: each rule alone -------------------------------------------------------------------------


def _with(**changes: list[Any]) -> dict[str, list[Any]]:
    return {**good_columns(), **changes}


BAD_FILES = {
    "columns": {k: v for k, v in good_columns().items() if k != "code"},
    "rows": {k: v[:1] for k, v in good_columns().items()},
    "type:label": _with(label=[0.5, 1.0, 2.0, 1.0]),
    "nulls:label": _with(label=[0, None, 2, 1]),
    "nulls:alcohol": _with(alcohol=[None, None, None, 14.1]),
    "range:alcohol": _with(alcohol=[12.5, 99.0, None, 14.1]),
    "categories:color": _with(color=["red", "rose", "red", None]),
    "pattern:code": _with(code=["AB1", "lowercase", None, "EF333"]),
    "unique:id": _with(id=[1, 2, 2, 4]),
}


@pytest.mark.parametrize("rule", sorted(BAD_FILES))
def test_validate_each_rule_violated_alone_quarantines_naming_it(wine: Stores, rule: str) -> None:
    # Given a file that breaks exactly one rule
    outcome = invoke(upload(wine, "raw/wine/bad.parquet", parquet_bytes(BAD_FILES[rule])))
    # Then it is quarantined with its report beside it, the report names that rule only,
    assert outcome["verdict"] == "failed"
    assert keys(wine.data_bucket, "quarantine/") == [
        "quarantine/wine/bad.parquet",
        "quarantine/wine/bad.parquet.report.json",
    ]
    rep = report(wine, outcome)
    assert [r["rule"] for r in rep["rules"] if not r["passed"]] == [rule]
    # the raw upload is gone and nothing is registered
    assert keys(wine.data_bucket, "raw/") == []
    assert datasets.list_versions(wine.metadata_table, "wine") == []


def test_validate_failed_rule_lists_offending_rows(wine: Stores) -> None:
    outcome = invoke(upload(wine, "raw/wine/bad.parquet", parquet_bytes(BAD_FILES["range:alcohol"])))
    failed = next(r for r in report(wine, outcome)["rules"] if not r["passed"])
    assert failed["offending"] == 1 and failed["examples"] == [{"row": 1, "value": "99.0"}]


# -- fail: unreadable --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "body", "reason"),
    [
        ("raw/wine/corrupt.parquet", b"PAR1 this is not parquet at all PAR1", "cannot read parquet"),
        ("raw/wine/empty.csv", b"", "empty file"),
        ("raw/wine/latin1.csv", "id,alcohol,color,code,label\n1,12.5,rosé,AB1,0\n".encode("latin-1"), "not UTF-8"),
        ("raw/wine/ragged.csv", b"id,alcohol,color,code,label\n1,12.5\n", "cannot read csv"),
        ("raw/wine/notes.txt", b"hello", "unsupported format"),
        ("raw/nosuch/data.csv", b"a,b\n1,2\n", "no contract for dataset 'nosuch'"),
    ],
)
def test_validate_unreadable_or_unknown_file_is_quarantined_with_reason(
    wine: Stores, key: str, body: bytes, reason: str
) -> None:
    outcome = invoke(upload(wine, key, body))
    assert outcome["verdict"] in ("unreadable", "failed")
    assert reason in outcome["reason"]
    dataset = key.split("/")[1]
    assert keys(wine.data_bucket, f"quarantine/{dataset}/") == sorted(
        [f"quarantine/{dataset}/{key.split('/', 2)[2]}", f"quarantine/{dataset}/{key.split('/', 2)[2]}.report.json"]
    )
    assert reason in report(wine, outcome)["reason"]
    assert datasets.list_versions(wine.metadata_table, "wine") == []


def test_validate_file_over_the_limit_is_quarantined_as_too_big(wine: Stores, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPWISE_VALIDATE_MAX_BYTES", "100")
    get_settings.cache_clear()
    outcome = invoke(upload(wine, "raw/wine/big.parquet", parquet_bytes(good_columns())))
    assert outcome["verdict"] == "unreadable" and "too big" in outcome["reason"]


def test_validate_big_file_in_chunks_gives_the_same_verdict(wine: Stores, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given files bigger than the in-memory limit (read as byte-range chunks)
    monkeypatch.setenv("STEPWISE_VALIDATE_CHUNK_BYTES", "40")
    get_settings.cache_clear()
    good = b"id,alcohol,color,code,label\n" + b"".join(f"{i},12.5,red,AB{i},{i % 3}\n".encode() for i in range(1, 51))
    bad = good + b"7,12.5,blue,AB7,0\n"
    # When both are validated
    passed = invoke(upload(wine, "raw/wine/good.csv", good))
    failed = invoke(upload(wine, "raw/wine/bad.csv", bad))
    # Then the report is assembled from many chunks, with cross-chunk uniqueness
    assert passed["verdict"] == "passed"
    rep = report(wine, failed)
    assert rep["chunks"] > 10 and rep["rows"] == 51
    assert sorted(r["rule"] for r in rep["rules"] if not r["passed"]) == ["categories:color", "unique:id"]
    unique = next(r for r in rep["rules"] if r["rule"] == "unique:id")
    assert [e["row"] for e in unique["examples"]] == [6, 50]
    assert datasets.get_version(wine.metadata_table, "wine", 1).sha256 == __import__("hashlib").sha256(good).hexdigest()


# -- exactly once -------------------------------------------------------------------------------------


def test_validate_same_event_three_times_in_order_makes_one_version(wine: Stores) -> None:
    event = upload(wine, "raw/wine/x.parquet", parquet_bytes(good_columns()))
    outcomes = [invoke(event) for _ in range(3)]
    assert {o["version"] for o in outcomes} == {1}
    assert [v.version for v in datasets.list_versions(wine.metadata_table, "wine")] == [1]


def test_validate_events_delivered_ten_times_shuffled_make_one_version_each(wine: Stores) -> None:
    # Given three uploads (two good, one bad) whose events are each delivered ten times, shuffled
    events = [
        upload(wine, "raw/wine/a.parquet", parquet_bytes(good_columns())),
        upload(wine, "raw/wine/b.parquet", parquet_bytes(_with(id=[5, 6, 7, 8]))),
        upload(wine, "raw/wine/c.parquet", parquet_bytes(BAD_FILES["unique:id"])),
    ]
    deliveries = [e for e in events for _ in range(10)]
    random.Random(7).shuffle(deliveries)
    # When every delivery is handled
    outcomes = [invoke(e) for e in deliveries]
    # Then each good upload is exactly one version and the bad one none
    versions = datasets.list_versions(wine.metadata_table, "wine")
    assert sorted(v.source_key for v in versions) == ["raw/wine/a.parquet", "raw/wine/b.parquet"]
    assert sorted(v.version for v in versions) == [1, 2]
    assert {o["verdict"] for o in outcomes} == {"passed", "failed"}


def test_validate_duplicate_past_the_idempotency_layer_returns_the_same_version(wine: Stores) -> None:
    # Given an upload handled once; When its idempotency record is gone (expired) and it comes again
    event = upload(wine, "raw/wine/x.parquet", parquet_bytes(good_columns()))
    first = invoke(event)
    table = boto3.resource("dynamodb").Table(wine.metadata_table)
    for item in table.scan()["Items"]:
        if str(item["pk"]).startswith("idempotency#"):
            table.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})
    second = invoke(event)
    # Then the UPLOAD guard returns the version it already became
    assert first["version"] == second["version"] == 1
    assert len(datasets.list_versions(wine.metadata_table, "wine")) == 1


def test_validate_same_identity_with_another_payload_is_refused_not_reprocessed(wine: Stores) -> None:
    """Payload validation: an event naming an object version already handled, with another size
    (which S3 cannot send for one version: a forged or corrupted event), is a 409, not a second run."""
    event = upload(wine, "raw/wine/x.parquet", parquet_bytes(good_columns()))
    assert invoke(event)["version"] == 1
    forged = copy.deepcopy(event)
    forged["Records"][0]["s3"]["object"]["size"] += 1
    with pytest.raises(Conflict, match="same identity and a different payload"):
        invoke(forged)
    assert [v.version for v in datasets.list_versions(wine.metadata_table, "wine")] == [1]


def test_validate_two_uploads_get_two_distinct_versions(wine: Stores) -> None:
    a = upload(wine, "raw/wine/a.parquet", parquet_bytes(good_columns()))
    b = upload(wine, "raw/wine/b.parquet", parquet_bytes(good_columns()))
    assert sorted([invoke(a)["version"], invoke(b)["version"]]) == [1, 2]


def test_create_version_interleaved_writers_get_distinct_numbers(wine: Stores) -> None:
    # Given two writers that both read "next is 1" before either writes
    invoke(upload(wine, "raw/wine/a.parquet", parquet_bytes(good_columns())))
    draft = datasets.get_version(wine.metadata_table, "wine", 1)
    n_a = datasets.next_version(wine.metadata_table, "wine")
    n_b = datasets.next_version(wine.metadata_table, "wine")
    assert n_a == n_b == 2
    # When A writes first, B's write with the same number is refused
    a = datasets.put_version(wine.metadata_table, draft.model_copy(update={"version": n_a}), "upload-a", OPERATOR)
    with pytest.raises(Conflict):
        datasets.put_version(wine.metadata_table, draft.model_copy(update={"version": n_b}), "upload-b", OPERATOR)
    # Then B, reading the counter again, gets the next number
    b = datasets.create_version(wine.metadata_table, draft, "upload-b", OPERATOR)
    assert (a.version, b.version) == (2, 3)
    assert [v.version for v in datasets.list_versions(wine.metadata_table, "wine")] == [1, 2, 3]
