"""The lifecycle on the local cloud: upload -> validation -> train -> evaluate -> register, from the
real template (state machine re-created in moto's executing backend, handlers from their assets)."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from stepwise.local.session import LocalSession
from stepwise.target import Target
from tests.unit.lifecycle_data import classification_table

pytestmark = pytest.mark.slow

SPEC: dict[str, Any] = {
    "name": "toy",
    "model": "toy-model",
    "dataset": "toy",
    "target": "label",
    "features": ["a", "b", "c"],
    "task": "classification",
    "estimator": {"name": "HistGradientBoostingClassifier", "params": {"max_iter": 30}},
    "split": {"holdout_fraction": 0.25, "seed": 1},
    "gates": {"min_primary": 0.6, "max_p99_latency_ms": 250.0, "max_artifact_bytes": 20_000_000},
    "latency_calls": 200,
}
CONTRACT: dict[str, Any] = {
    "columns": [
        {"name": "a", "type": "float", "nullable": True},
        {"name": "b", "type": "int", "nullable": False},
        {"name": "c", "type": "category", "nullable": False, "categories": ["red", "green", "blue"]},
        {"name": "label", "type": "category", "nullable": False, "categories": ["yes", "no"]},
    ],
    "target": "label",
    "training_spec": "toy",
}


def wait_for(fetch: Any, timeout: float = 240.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fetch()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError("timed out")


def test_lifecycle_upload_to_pending_approval_with_lineage(
    local: Target, local_session: LocalSession, tmp_path: Path
) -> None:
    # Given a spec and a contract that names it
    assert local.api("PUT", "/v1/specs/toy", SPEC).status == 201
    reply = local.api("PUT", "/v1/datasets/toy/contract", CONTRACT)
    assert reply.ok, reply.body
    # When a good file is uploaded under raw/toy/ (any S3 client; here the cloud's own)
    buf = io.BytesIO()
    pq.write_table(classification_table(600), buf)
    key = "raw/toy/toy.parquet"
    put = local_session.cloud.client("s3").put_object(Bucket=local.data_bucket, Key=key, Body=buf.getvalue())
    dataset = wait_for(lambda: (local.api("GET", "/v1/datasets/toy/versions").body or {}).get("versions"))[0]
    # Then the workflow trains, evaluates and registers version 1, waiting for approval
    versions = wait_for(lambda: local.api("GET", "/v1/models/toy-model/versions").body.get("versions"))
    assert versions[0]["status"] == "PENDING_APPROVAL", versions
    version = local.api("GET", "/v1/models/toy-model/versions/1").body
    # whose lineage leads back to the exact uploaded object and the contract version
    assert (version["data_key"], version["data_version_id"], version["data_sha256"]) == (
        dataset["key"],
        dataset["version_id"],
        dataset["sha256"],
    )
    assert (dataset["source_key"], dataset["source_version_id"]) == (key, put.get("VersionId", ""))
    assert version["data_version_id"] and put.get("VersionId"), "the local cloud's buckets are versioned"
    assert version["contract_version"] == dataset["contract_version"] == 1
    assert all(g["passed"] for g in version["gates"])
    assert set(version["artifacts"]) == {"skops", "onnx", "profile"}
    runs = local.api("GET", "/v1/models/toy-model/runs").body["runs"]
    assert runs[0]["run_id"] == "toy-model-1-1"
    assert [s["name"] for s in runs[0]["steps"]][:4] == ["start", "train", "evaluate", "register"]


def test_lifecycle_feature_view_training_serves_what_the_training_pipeline_predicts(
    local: Target, local_session: LocalSession, tmp_path: Path
) -> None:
    """The bundled feature example on the local cloud: a feature view over an aggregate table, a
    spec with two derived features over it, training through the point-in-time join, and a
    prediction over HTTP from raw fields + the entity key, its view values looked up in the online
    store, equal to the training pipeline's on the point-in-time joined rows."""
    import hashlib

    import numpy as np

    from functions.logic import training as tr
    from functions.models.approvals import approval_id
    from functions.models.registry import ModelVersion
    from stepwise import demo_features as ex
    from stepwise.commands.data import upload

    # Given the aggregate table (validated), the view over it, the labelled events and the spec
    assert local.api("PUT", f"/v1/datasets/{ex.STATS}/contract", ex.STATS_CONTRACT).ok
    assert upload(local, ex.write_parquet(ex.stats_table(), tmp_path / "stats.parquet"), ex.STATS).passed
    reply = local.api("PUT", f"/v1/feature-views/{ex.FEATURE_VIEW}", ex.VIEW)
    assert reply.status == 201, reply.body
    assert local.api("PUT", f"/v1/datasets/{ex.EVENTS}/contract", ex.EVENTS_CONTRACT).ok
    events = upload(local, ex.write_parquet(ex.events_table(), tmp_path / "events.parquet"), ex.EVENTS)
    assert events.passed and events.version is not None, events.report
    reply = local.api("PUT", f"/v1/specs/{ex.FEATURE_SPEC}", ex.SPEC)
    assert reply.status == 201, reply.body
    assert reply.body["spec"]["views"] == {ex.FEATURE_VIEW: 1}
    # When alice starts training and the workflow registers the version
    request = {"spec": ex.FEATURE_SPEC, "dataset_version": events.version["version"]}
    assert local.api("POST", f"/v1/models/{ex.FEATURE_MODEL}/train", request, identity="alice").ok
    listed = ex.wait_for_version(local, ex.FEATURE_MODEL, timeout=240.0)
    assert listed["status"] == "PENDING_APPROVAL", listed
    version = ModelVersion.model_validate(local.api("GET", f"/v1/models/{ex.FEATURE_MODEL}/versions/1").body)
    # Then the served graph takes the raw fields and the view's features; lineage names the view and source
    assert sorted(f.name for f in version.features) == [
        "amount",
        "channel",
        "customer:orders_30d",
        "customer:spend_30d",
    ]
    (use,) = version.feature_views
    assert (use.view, use.version, use.source, use.source_version) == (ex.FEATURE_VIEW, 1, ex.STATS, 1)
    assert use.missing > 0 and use.matched > use.missing
    s3 = local_session.cloud.client("s3")

    def artifact(name: str) -> bytes:
        bucket, key = version.artifacts[name].uri[5:].split("/", 1)
        data = bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        assert hashlib.sha256(data).hexdigest() == version.artifacts[name].sha256
        return data

    training_set = pq.read_table(io.BytesIO(artifact("training_set")))
    # When bob approves it and the workflow releases it
    ex.wait_for_approval(local, ex.FEATURE_MODEL, 1)
    path = f"/v1/approvals/{approval_id(ex.FEATURE_MODEL, 1)}/approve"
    reply = local.api("POST", path, {"reason": "e2e"}, identity="bob")
    assert reply.ok, reply.body
    ex.wait_for_production(local, ex.FEATURE_MODEL, 1)
    # and a newer version of the aggregate table passes validation, holding for four customers of
    # the training set their joined rows' view values as of an hour ago: validation announces it and
    # the view is materialized into the online store; a fifth row's customer has no row there (the
    # null path)
    from datetime import UTC, datetime, timedelta

    import pyarrow as pa

    null = training_set.column("customer:spend_30d").is_null().to_numpy(zero_copy_only=False)
    customers = training_set.column("customer").to_pylist()
    picked: list[int] = []
    for i in np.flatnonzero(~null).tolist():
        if customers[i] not in {customers[j] for j in picked}:
            picked.append(i)
        if len(picked) == 4:
            break
    unseeded = next(i for i in np.flatnonzero(null).tolist() if customers[i] not in {customers[j] for j in picked})
    rows = training_set.take([*picked, unseeded])
    fresh = rows.slice(0, 4)
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    newer = pa.table(
        {
            "customer": fresh.column("customer").cast(pa.int64()),
            "at": pa.array([an_hour_ago] * 4, pa.timestamp("us", tz="UTC")),
            "spend_30d": fresh.column("customer:spend_30d").cast(pa.float64()),
            "orders_30d": fresh.column("customer:orders_30d").cast(pa.int64()),
        }
    )
    stats_v2 = upload(local, ex.write_parquet(newer, tmp_path / "stats-v2.parquet"), ex.STATS)
    assert stats_v2.passed and stats_v2.version is not None, stats_v2.report
    source_version = stats_v2.version["version"]

    def materialized() -> dict[str, Any] | None:
        runs = local.api("GET", f"/v1/feature-views/{ex.FEATURE_VIEW}/materializations").body["materializations"]
        done = [r for r in runs if r["source_version"] == source_version and r["status"] == "SUCCEEDED"]
        return done[0] if done else None

    run = wait_for(materialized, timeout=120)
    assert run["trigger"] == "validation" and run["entities_written"] == 4, run
    # When the rows are sent over HTTP as raw fields + the entity key only
    instances = rows.select(["amount", "channel", "customer"]).to_pylist()
    reply = local.api("POST", f"/v1/models/{ex.FEATURE_MODEL}/predict", {"instances": instances})
    assert reply.ok, reply.body
    # Then the served predictions are the training pipeline's on the point-in-time joined rows
    frame = tr.to_frame(tr.production_table(rows, version), version.pipeline_features)
    pipeline = tr.load_skops(artifact("skops"))
    assert [str(p) for p in reply.body["predictions"]] == pipeline.predict(frame).astype(str).tolist()
    served = np.array(reply.body["probabilities"], dtype=np.float64)
    assert np.allclose(served, pipeline.predict_proba(frame), atol=1e-5)
    # And the reply names where each row's view values came from
    statuses = [(s["customer"]["status"], s["customer"]["source_version"]) for s in reply.body["lookups"]]
    assert statuses == [("fresh", source_version)] * 4 + [("missing", None)]


def test_lifecycle_batch_job_scores_a_multi_chunk_file_as_the_https_path_does(
    local: Target, local_session: LocalSession
) -> None:
    """After the first test registered toy-model v1: released, it scores a Parquet file of four row
    groups as a batch job through the API function (the batch workflow's steps in-process, as the
    local cloud runs them), with the predictions the HTTPS path answers for the same rows."""
    import hashlib
    import json

    import pyarrow as pa

    from stepwise import demo_features as ex
    from stepwise.commands.predict import predict_all
    from tests.unit.lifecycle_data import classification_table

    # Given toy-model v1 in production (bob approves) and 600 rows with an id, in four row groups
    ex.wait_for_approval(local, "toy-model", 1)
    assert local.api("POST", "/v1/approvals/toy-model-1/approve", {"reason": "e2e"}, identity="bob").ok
    ex.wait_for_production(local, "toy-model", 1)
    table = classification_table(600).drop_columns(["label"])
    table = table.append_column("id", pa.array([f"row-{i}" for i in range(table.num_rows)]))
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=150)
    s3 = local_session.cloud.client("s3")
    s3.put_object(Bucket=local.data_bucket, Key="validated/batch-e2e/toy.parquet", Body=buf.getvalue())
    # (the API function plans chunks of at most 1 byte's worth of row groups: one chunk per row group)
    (api,) = [f for f in local_session.cloud.router.functions.values() if f.handler.endswith("api.lambda_handler")]
    api.environment["STEPWISE_BATCH_CHUNK_BYTES"] = "1"
    api.shutdown()
    # When alice asks for a batch job over it, passing the id through
    body = {"input": {"uri": f"s3://{local.data_bucket}/validated/batch-e2e/toy.parquet"}, "passthrough": ["id"]}
    reply = local.api("POST", "/v1/models/toy-model/batch", body, identity="alice")
    assert reply.status == 202, reply.body
    job = local.api("GET", f"/v1/models/toy-model/batch/{reply.body['job_id']}").body
    # Then it succeeded over four chunks, every row scored once
    assert job["status"] == "SUCCEEDED", job
    assert (job["chunks_total"], job["rows"], job["scored"], job["rejected"]) == (4, 600, 600, 0)
    prefix = f"predictions/toy-model/{job['job_id']}/"
    manifest = json.loads(s3.get_object(Bucket=local.data_bucket, Key=prefix + "_manifest.json")["Body"].read())
    parts = []
    for part in manifest["parts"]:
        data = s3.get_object(Bucket=local.data_bucket, Key=part["key"])["Body"].read()
        assert hashlib.sha256(data).hexdigest() == part["sha256"]  # the manifest's sha256s are the parts'
        parts.append(pq.read_table(io.BytesIO(data)))
    scored = pa.concat_tables(parts)
    assert scored.column("id").to_pylist() == table.column("id").to_pylist()
    assert set(scored.column("model_version").to_pylist()) == {1} and manifest["version"] == 1
    # And the HTTPS path answers the same predictions and probabilities for the same rows
    instances = table.select(["a", "b", "c"]).to_pylist()
    results, failed = predict_all(local, "toy-model", instances, 100, None)
    assert failed is None, failed and failed.body
    assert scored.column("prediction").to_pylist() == [r["prediction"] for r in results]
    assert scored.column("probabilities").to_pylist() == [r["probabilities"] for r in results]
    # And the start and the finish are audited; `stepwise jobs` lists it
    events = local.api("GET", "/v1/audit?model=toy-model").body["events"]
    assert {"batch.start", "batch.finish"} <= {e["action"] for e in events}
    listed = local.api("GET", "/v1/models/toy-model/batch").body["jobs"]
    assert [j["job_id"] for j in listed] == [job["job_id"]]
    # And the version's lineage links the job
    lineage = local.api("GET", "/v1/models/toy-model/versions/1/lineage").body
    assert [j["job_id"] for j in lineage["batch_jobs"]] == [job["job_id"]]
    # And a row is explained by its id through the template's route to the batch function
    explained = local.api("GET", f"/v1/models/toy-model/batch/{job['job_id']}/rows/row-7", identity="alice")
    assert explained.status == 200, explained.body
    (row,) = explained.body["rows"]
    assert row["prediction"] == results[7]["prediction"] and row["inputs"] == instances[7]
    assert row["part_sha256"] in {p["sha256"] for p in manifest["parts"]}
