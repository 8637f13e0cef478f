"""Validation on the local cloud, deployed from the template: uploads go through S3, its
notification and the real validation Lambda; duplicate deliveries go through Lambda's Invoke API."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from stepwise.commands.data import put_contract, upload
from stepwise.demo_data import DATASET, bad_table, wine_contract, wine_table
from stepwise.target import Target
from tests.conftest import load_event


@pytest.fixture(scope="module")
def wine(local: Target) -> pa.Table:
    table = wine_table()
    put_contract(local, DATASET, wine_contract(table))
    return table


def _write(tmp: Path, name: str, table: pa.Table) -> Path:
    path = tmp / name
    pq.write_table(table, path)
    return path


def _versions(local: Target) -> list[dict[str, Any]]:
    reply = local.api("GET", f"/v1/datasets/{DATASET}/versions")
    assert reply.ok, reply.body
    return reply.body["versions"]  # type: ignore[no-any-return]


def _failed_rules(report: dict[str, Any]) -> list[str]:
    return sorted(r["rule"] for r in report.get("rules", []) if not r["passed"])


def _one_violation(table: pa.Table, rule: str) -> pa.Table:
    """The good table with exactly one rule broken."""
    if rule == "unique:id":
        ids = table.column("id").to_pylist()
        ids[5] = ids[4]
        return table.set_column(0, "id", pa.array(ids, pa.int64()))
    if rule == "range:alcohol":
        values = table.column("alcohol").to_pylist()
        values[7] = 99.0
        return table.set_column(table.schema.get_field_index("alcohol"), "alcohol", pa.array(values))
    if rule == "categories:region":
        regions = pc.cast(table.column("region"), pa.string()).to_pylist()
        regions[3] = "atlantis"
        return table.set_column(table.schema.get_field_index("region"), "region", pa.array(regions))
    if rule == "nulls:label":
        labels = table.column("label").to_pylist()
        labels[2] = None
        return table.set_column(table.schema.get_field_index("label"), "label", pa.array(labels, pa.int64()))
    if rule == "rows":
        return table.slice(0, 50)  # the contract asks for at least 100
    if rule == "columns":
        return table.drop_columns(["ash"])
    if rule == "type:alcohol":
        as_text = pc.cast(table.column("alcohol"), pa.string())
        return table.set_column(table.schema.get_field_index("alcohol"), "alcohol", as_text)
    raise AssertionError(rule)


def test_validation_good_upload_becomes_a_dataset_version_with_its_lineage(
    local: Target, wine: pa.Table, tmp_path: Path
) -> None:
    result = upload(local, _write(tmp_path, "good.parquet", wine), DATASET)
    assert result.passed and result.version is not None, result.report
    version = result.version
    assert version["rows"] == wine.num_rows
    assert version["source_version_id"] == result.version_id and result.version_id
    assert len(version["sha256"]) == 64


@pytest.mark.parametrize(
    "rule", ["unique:id", "range:alcohol", "categories:region", "nulls:label", "rows", "columns", "type:alcohol"]
)
def test_validation_each_rule_violated_alone_is_quarantined_naming_that_rule(
    local: Target, wine: pa.Table, tmp_path: Path, rule: str
) -> None:
    before = len(_versions(local))
    result = upload(
        local, _write(tmp_path, f"bad-{rule.replace(':', '-')}.parquet", _one_violation(wine, rule)), DATASET
    )
    assert not result.passed
    assert _failed_rules(result.report) == [rule], result.report
    assert len(_versions(local)) == before
    quarantined = local.client("s3").list_objects_v2(Bucket=local.data_bucket, Prefix=f"quarantine/{DATASET}/")
    assert any(Path(o["Key"]).name.startswith("bad-" + rule.replace(":", "-")) for o in quarantined["Contents"])


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("corrupt.parquet", b"PAR1 this is not a parquet file", "readable"),
        ("empty.csv", b"", "readable"),
        ("latin1.csv", "alcohol\n\xe9t\xe9\n".encode("latin-1"), "readable"),
    ],
)
def test_validation_unreadable_files_are_quarantined_with_a_readable_reason(
    local: Target, wine: pa.Table, tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    result = upload(local, path, DATASET)
    assert not result.passed
    assert reason in _failed_rules(result.report) or result.report.get("reason"), result.report
    assert result.report.get("reason"), result.report


def test_validation_upload_under_an_unknown_dataset_is_quarantined_with_no_contract(
    local: Target, wine: pa.Table, tmp_path: Path
) -> None:
    result = upload(local, _write(tmp_path, "orphan.parquet", wine), "no-such-dataset")
    assert not result.passed
    assert "no contract" in json.dumps(result.report).lower()


def test_validation_duplicate_and_shuffled_deliveries_make_exactly_one_version_each(
    local: Target, wine: pa.Table, tmp_path: Path
) -> None:
    # Given three uploads, each already validated once through S3's notification
    uploads = [upload(local, _write(tmp_path, f"dup-{i}.parquet", wine), DATASET) for i in range(3)]
    assert all(u.passed and u.version for u in uploads)
    numbers = sorted(u.version["version"] for u in uploads if u.version)
    assert len(set(numbers)) == 3
    before = len(_versions(local))
    s3 = local.client("s3")
    events = []
    for u in uploads:
        head = s3.head_object(Bucket=local.data_bucket, Key=u.key, VersionId=u.version_id)
        event = copy.deepcopy(load_event("s3/object_created.json"))
        obj = event["Records"][0]["s3"]
        obj["bucket"] = {"name": local.data_bucket, "arn": f"arn:aws:s3:::{local.data_bucket}"}
        obj["object"].update(
            key=u.key, versionId=u.version_id, eTag=head["ETag"].strip('"'), size=head["ContentLength"]
        )
        events.append(event)
    # When the first is delivered 3 more times in order, and all of them 10 times shuffled
    deliveries = [events[0]] * 3 + [e for e in events for _ in range(10)]
    random.Random(7).shuffle(deliveries[3:])
    lam = local.client("lambda")
    for event in deliveries:
        reply = lam.invoke(FunctionName=local.output("ValidateFunctionName"), Payload=json.dumps(event).encode())
        assert "FunctionError" not in reply, reply["Payload"].read()
    # Then no second dataset version exists for any of them
    after = _versions(local)
    assert len(after) == before
    assert sorted(v["version"] for v in after if v["source_version_id"] in {u.version_id for u in uploads}) == numbers


def test_validation_bad_demo_file_names_its_four_rules(local: Target, wine: pa.Table, tmp_path: Path) -> None:
    result = upload(local, _write(tmp_path, "demo-bad.parquet", bad_table(wine)), DATASET)
    assert _failed_rules(result.report) == sorted(["unique:id", "range:alcohol", "categories:region", "nulls:label"])
