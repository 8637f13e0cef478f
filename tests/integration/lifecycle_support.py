"""Seeding and stepping helpers for lifecycle tests on moto (the `stores` fixture).

A dataset version is seeded through the validation stage's own dal (contract + validated object
+ version record), a spec through functions/dal/specs.py; steps run through the real handlers.
"""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime
from typing import Any, Literal

import boto3
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from functions.dal import datasets as datasets_dal
from functions.dal import specs as specs_dal
from functions.handlers import evaluate, register, run_record, train
from functions.models.audit import Actor
from functions.models.contracts import DataContract
from functions.models.datasets import DatasetVersion
from functions.models.runs import execution_name
from functions.models.specs import SpecRecord, TrainingSpec
from tests.integration.conftest import Stores
from tests.lambda_context import FakeContext

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


class Context(FakeContext):
    """The lifecycle task functions' context."""

    function = "lifecycle"


def column_type(t: pa.DataType) -> str:
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_timestamp(t):
        return "timestamp"
    return "category"


def seed_dataset(
    stores: Stores, name: str, table: pa.Table, target: str, file_format: Literal["parquet", "csv"] = "parquet"
) -> DatasetVersion:
    """Contract from the table's schema, the object (Parquet or CSV) under validated/, its version record."""
    actor = Actor(identity="tester", correlation_id="")
    columns = [{"name": f.name, "type": column_type(f.type), "nullable": f.name != target} for f in table.schema]
    contract = DataContract.model_validate({"columns": columns, "target": target})
    record = datasets_dal.put_contract(stores.metadata_table, name, contract, actor, NOW)
    buf = io.BytesIO()
    if file_format == "csv":
        pcsv.write_csv(table, buf)
    else:
        pq.write_table(table, buf)
    data = buf.getvalue()
    key = f"validated/{name}/{hashlib.sha256(data).hexdigest()[:12]}.{file_format}"
    put = boto3.client("s3").put_object(Bucket=stores.data_bucket, Key=key, Body=data)
    draft = DatasetVersion(
        dataset=name,
        version=1,
        key=key,
        bucket=stores.data_bucket,
        version_id=put.get("VersionId", ""),
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        format=file_format,
        rows=table.num_rows,
        schema_fingerprint="test",
        contract_version=record.version,
        report_uri=f"s3://{stores.artifacts_bucket}/reports/{name}.json",
        created_at=NOW,
    )
    return datasets_dal.create_version(stores.metadata_table, draft, upload=key, actor=actor)


def seed_spec(stores: Stores, spec: dict[str, Any]) -> SpecRecord:
    return specs_dal.put_spec(stores.metadata_table, TrainingSpec.model_validate(spec), "tester", NOW)


def start_state(spec: SpecRecord, dataset: DatasetVersion, started_by: str = "alice") -> dict[str, Any]:
    return {
        "spec": spec.name,
        "spec_version": spec.version,
        "dataset": dataset.dataset,
        "dataset_version": dataset.version,
        "started_by": started_by,
    }


def run_steps(state: dict[str, Any], until: str = "register") -> dict[str, Any]:
    """Run the workflow's tasks through their handlers as the state machine would (happy path)."""
    name = execution_name(state["spec"] and _model_of(state), state["dataset_version"], state["spec_version"])
    state = dict(state)
    state["run"] = run_record.lambda_handler(
        {"action": "start", "state": state, "execution_name": name, "execution_arn": f"arn:test:{name}"}, Context()
    )
    state["train"] = train.lambda_handler(state, Context())
    if until == "train":
        return state
    state["evaluation"] = evaluate.lambda_handler(state, Context())
    if until == "evaluate":
        return state
    state["registered"] = register.lambda_handler(state, Context())
    run_record.lambda_handler({"action": "finish", "state": state}, Context())
    return state


def _model_of(state: dict[str, Any]) -> str:
    from functions.models.settings import get_settings

    return specs_dal.get_spec(get_settings().metadata_table, state["spec"], state["spec_version"]).spec.model
