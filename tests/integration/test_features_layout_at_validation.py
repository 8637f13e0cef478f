"""The offline layout of a feature view's source is built when a source version is validated (the
real validate handler on moto), its one-time cost recorded on the dataset version; training then
reuses it, and first use stays the fallback for a version validated before its view existed."""

from __future__ import annotations

import io
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq

from functions.dal import datasets as datasets_dal
from functions.dal import specs as specs_dal
from functions.handlers import validate
from functions.models.audit import Actor
from functions.models.contracts import DataContract
from tests.integration.conftest import Stores
from tests.integration.lifecycle_support import NOW, column_type, run_steps, seed_dataset, start_state
from tests.integration.test_lifecycle_features import (
    MODEL,
    api_call,
    events_table,
    put_view,
    spec_body,
    specs_dal_dataset,
    stats_table,
)
from tests.integration.test_validate_handler import Context, upload

SOURCE = "customer-stats"


def _contract(stores: Stores, name: str, table: pa.Table, target: str) -> None:
    columns = [{"name": f.name, "type": column_type(f.type), "nullable": f.name != target} for f in table.schema]
    contract = DataContract.model_validate({"columns": columns, "target": target})
    datasets_dal.put_contract(stores.metadata_table, name, contract, Actor(identity="tester", correlation_id=""), NOW)


def _validate(stores: Stores, key: str, table: pa.Table) -> dict[str, Any]:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    event = upload(stores, key, buf.getvalue())
    (outcome,) = validate.lambda_handler(event, Context())["outcomes"]
    return dict(outcome)


def _offline_keys(stores: Stores) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=stores.artifacts_bucket, Prefix="offline/")
    return sorted(o["Key"] for o in listed.get("Contents", []))


def test_features_source_version_gets_its_layout_when_validated_and_training_reuses_it(stores: Stores) -> None:
    # Given a feature view over customer-stats, and its contract
    _contract(stores, SOURCE, stats_table(), "spend_30d")
    put_view(stores)
    # When a version of customer-stats is uploaded and passes validation
    outcome = _validate(stores, f"raw/{SOURCE}/stats.parquet", stats_table())
    assert outcome["verdict"] == "passed", outcome
    # Then its offline layout is stored, and the version records the one-time cost
    keys = _offline_keys(stores)
    assert [k.rsplit("/", 1)[1] for k in keys] == ["_manifest.json", "layout.parquet"]
    assert keys[0].startswith(f"offline/{SOURCE}/v00000001/")
    version = datasets_dal.get_version(stores.metadata_table, SOURCE, 1)
    assert version.layout_seconds is not None and version.layout_seconds > 0
    # and training through the view reuses it (no layout built at training time)
    seed_dataset(stores, "events", events_table(), "churned")
    status, stored = api_call("PUT", f"/v1/specs/{MODEL}", spec_body())
    assert status == 201, stored
    spec = specs_dal.get_spec(stores.metadata_table, MODEL)
    state = run_steps(start_state(spec, specs_dal_dataset(stores)), until="train")
    assert "layout_seconds" not in state["train"]["timings"]
    (use,) = state["train"]["feature_views"]
    assert (use["source"], use["source_version"]) == (SOURCE, 1)
    assert _offline_keys(stores) == keys


def test_features_dataset_no_view_reads_gets_no_layout_and_first_use_stays_the_fallback(stores: Stores) -> None:
    # Given customer-stats validated before any view reads it
    _contract(stores, SOURCE, stats_table(), "spend_30d")
    outcome = _validate(stores, f"raw/{SOURCE}/stats.parquet", stats_table())
    assert outcome["verdict"] == "passed", outcome
    # Then no layout is built and none is recorded
    assert _offline_keys(stores) == []
    assert datasets_dal.get_version(stores.metadata_table, SOURCE, 1).layout_seconds is None
    # When a view over it is stored and a spec trains through it, Then training builds the layout
    put_view(stores)
    seed_dataset(stores, "events", events_table(), "churned")
    status, stored = api_call("PUT", f"/v1/specs/{MODEL}", spec_body())
    assert status == 201, stored
    spec = specs_dal.get_spec(stores.metadata_table, MODEL)
    state = run_steps(start_state(spec, specs_dal_dataset(stores)), until="train")
    assert "layout_seconds" in state["train"]["timings"]
    assert len(_offline_keys(stores)) == 2
