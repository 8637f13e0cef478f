"""Batch scoring of a version trained through feature views, on moto: the input carries the entity
key and an event-time column, each row is joined point in time with the view's offline layout (the
very layout, features and TTL training joined; never the online store), and the batch prediction
of a row equals the training pipeline's prediction on that row's point-in-time joined training row."""

from __future__ import annotations

import io

import numpy as np
import pyarrow.parquet as pq
import pytest

from functions.dal import registry as registry_dal
from functions.dal import specs as specs_dal
from functions.logic import batch_jobs, batch_run
from functions.logic import training as tr
from functions.models.batch import BatchInputInvalid, BatchRequest, JobStatus
from functions.models.settings import get_settings
from tests.integration import test_batch_run as run_tests
from tests.integration import test_lifecycle_features as features
from tests.integration.conftest import Stores
from tests.integration.lifecycle_support import run_steps, start_state
from tests.integration.test_predict_support import put_model

seeded = features.seeded
machine = run_tests.machine  # a stand-in workflow: the steps run here, chunk by chunk
MODEL = features.MODEL


@pytest.fixture
def trained(seeded: Stores) -> Stores:
    status, stored = features.api_call("PUT", f"/v1/specs/{MODEL}", features.spec_body())
    assert status == 201, stored
    spec = specs_dal.get_spec(seeded.metadata_table, MODEL)
    state = run_steps(start_state(spec, features.specs_dal_dataset(seeded)))
    assert state["registered"]["status"] == "PENDING_APPROVAL", state["registered"]
    put_model(seeded, MODEL, production=1)
    return seeded


def test_batch_rows_are_joined_point_in_time_and_scored_as_training_joined_them(trained: Stores, machine: str) -> None:
    # Given the production version trained through the `cust` view, and its label rows (customer,
    # event_at, amount) as the batch input: no view column in it
    version = registry_dal.get_version(trained.registry_table, MODEL, 1)
    assert version is not None and version.feature_views
    sink = io.BytesIO()
    pq.write_table(features.events_table(), sink, row_group_size=100)  # the label rows, in four row groups
    uri = run_tests._upload(trained, "raw/scoring/events.parquet", sink.getvalue())
    request = BatchRequest.model_validate({"input": {"uri": uri}, "passthrough": ["customer"]})
    # When it is scored in several chunks
    job = batch_jobs.request_batch(get_settings(), MODEL, request, run_tests.ALICE)
    assert job.event_time == "event_at"  # the version's training event-time column, by default
    tasks = batch_run.plan_job(get_settings(), MODEL, job.job_id, chunk_bytes=1)
    assert len(tasks) == 4
    run_tests._run_all(job.job_id, tasks)
    done = batch_run.finish_job(get_settings(), MODEL, job.job_id)
    assert done.status is JobStatus.SUCCEEDED, done.message
    assert done.scored == 400 and done.rejected == 0
    manifest = run_tests.json.loads(run_tests._get(trained, f"predictions/{MODEL}/{job.job_id}/_manifest.json"))
    scored = run_tests._parts(trained, manifest)
    # Then each row's prediction is the training pipeline's on its point-in-time joined training row
    joined = pq.read_table(io.BytesIO(features._bytes(version.artifacts["training_set"].uri)))
    frame = tr.to_frame(tr.production_table(joined, version), version.pipeline_features)
    skops = tr.load_skops(features._bytes(version.artifacts["skops"].uri))
    assert scored.column("prediction").to_pylist() == skops.predict(frame).astype(str).tolist()
    assert np.allclose(scored.column("probabilities").to_pylist(), skops.predict_proba(frame), atol=1e-5)
    assert scored.column("customer").to_pylist() == joined.column("customer").to_pylist()


def test_a_feature_view_job_needs_the_key_and_event_time_columns(trained: Stores, machine: str) -> None:
    table = features.events_table().drop_columns(["event_at"])
    sink = io.BytesIO()
    pq.write_table(table, sink)
    uri = run_tests._upload(trained, "raw/scoring/events.parquet", sink.getvalue())
    with pytest.raises(BatchInputInvalid, match="'event_at'"):
        batch_jobs.request_batch(
            get_settings(), MODEL, BatchRequest.model_validate({"input": {"uri": uri}}), run_tests.ALICE
        )
    request = BatchRequest.model_validate({"input": {"uri": uri}, "event_time": "at_time"})
    with pytest.raises(BatchInputInvalid, match="'at_time'"):
        batch_jobs.request_batch(get_settings(), MODEL, request, run_tests.ALICE)
