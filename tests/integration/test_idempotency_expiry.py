"""Idempotency records expire: Powertools writes each record's expiry to the attribute the
synthesized template names as the metadata table's TTL, as an epoch second in the future, so
DynamoDB deletes it once `expires_after_seconds` has passed.

The real CDK app is synthesized (no Docker, no credentials) and a real handler runs on moto.
moto stores the TTL setting but does not delete expired items, so the test reads the attribute.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from functions.dal import audit as audit_dal
from functions.dal.idempotency import PK_PREFIX
from functions.handlers import audit_export
from layers.assembly import read_assembly, stack_names
from stepwise.local.assembly import synthesize
from tests.integration.approval_support import Context
from tests.integration.conftest import Stores
from tests.integration.test_audit_export import DAY, _event


@pytest.fixture(scope="module")
def ttl_attributes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Each DynamoDB table of the app's stacks (logical id) -> its TTL attribute."""
    outdir = synthesize(Path(tmp_path_factory.mktemp("cdk.out"))).outdir
    resources: dict[str, Any] = {}
    for name in stack_names(outdir):
        resources |= read_assembly(outdir, name).template["Resources"]
    return {
        lid: r["Properties"].get("TimeToLiveSpecification", {}).get("AttributeName", "")
        for lid, r in resources.items()
        if r["Type"] == "AWS::DynamoDB::Table"
    }


def idempotency_items(table: str) -> list[dict[str, Any]]:
    items = boto3.client("dynamodb").scan(TableName=table)["Items"]
    return [i for i in items if i["pk"]["S"].startswith(PK_PREFIX)]


def test_idempotency_records_carry_the_metadata_tables_ttl_attribute(
    stores: Stores,
    archive: str,
    ttl_attributes: dict[str, str],
) -> None:
    # Given the template's metadata table TTL, applied to the table as CloudFormation would
    metadata = [lid for lid in ttl_attributes if lid.startswith("Metadata")]
    assert len(metadata) == 1, f"expected one metadata table in {sorted(ttl_attributes)}"
    ttl = ttl_attributes[metadata[0]]
    assert ttl, "the metadata table has no TTL attribute"
    boto3.client("dynamodb").update_time_to_live(
        TableName=stores.metadata_table, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl}
    )
    # When an idempotent handler completes a delivery
    audit_dal.record(stores.metadata_table, _event("version.register", 5))
    before = int(time.time())
    audit_export.lambda_handler({"day": DAY.isoformat()}, Context())
    # Then its record carries that attribute: a number, its configured lifetime ahead
    records = idempotency_items(stores.metadata_table)
    assert records, "the handler wrote no idempotency record"
    lifetime = audit_export.IDEMPOTENCY.expires_after_seconds
    for record in records:
        assert "N" in record.get(ttl, {}), f"record {record['sk']['S']} has no numeric {ttl!r}: {sorted(record)}"
        assert before + lifetime <= int(record[ttl]["N"]) <= int(time.time()) + lifetime
        assert "expiration" not in record, "the expiry went to Powertools' default attribute, which no TTL reads"
