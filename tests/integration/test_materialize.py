"""Materialization through its real code on moto: the online table, the metadata table and the
source object are moto's; the steps are called in the order the workflow calls them."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest

from functions.dal import audit as audit_dal
from functions.dal import feature_views as views_dal
from functions.dal import online_store
from functions.handlers import api, validate
from functions.handlers import materialize as materialize_handler
from functions.logic import materialize, materialize_jobs
from functions.models.errors import Throttled
from functions.models.features import FeatureView
from functions.models.materialize import (
    FINISH_ACTION,
    START_ACTION,
    MaterializationStatus,
    MaterializeRequest,
)
from functions.models.settings import Settings, get_settings
from tests import faults
from tests.integration.approval_support import api_event
from tests.integration.conftest import Stores
from tests.integration.materialize_support import (
    ACTOR,
    ONLINE_TABLE,
    T0,
    VIEW,
    VIEW_NAME,
    online,
    online_item,
    online_snapshot,
    put_view,
    seed_version,
    spend_of,
    stats,
)
from tests.integration.test_validate_handler import Context, upload

__all__ = ["online"]  # the fixture, used by name

CUSTOMERS = 20


def test_materialize_writes_each_entitys_latest_row_with_its_record_and_audit(stores: Stores, online: Settings) -> None:
    # Given a view over customer-stats and one validated version (several chunks, rows shuffled)
    put_view(stores)
    seed_version(stores, stats(CUSTOMERS, day=10, spend=100.0, rows_per_customer=3))
    # When it is materialized on demand (in-process: no workflow configured)
    record = materialize_jobs.request_materialization(online, VIEW_NAME, MaterializeRequest(), ACTOR)
    # Then every customer's latest row is online, with its event time and source version
    assert record.status is MaterializationStatus.SUCCEEDED, record
    assert record.chunks_total == record.chunks_done > 1
    assert (record.rows_read, record.entities_written + record.skipped_older) == (3 * CUSTOMERS, record.write_requests)
    assert len(online_snapshot()) == CUSTOMERS
    for c in range(CUSTOMERS):
        item = online_item(c)
        assert item is not None
        assert spend_of(item) == 100.0 + c
        assert item["values"]["M"]["orders_30d"] == {"N": str(c)}
        assert item["values"]["M"]["segment"] == {"S": "s10-0"}
        assert item["source_version"] == {"N": "1"} and item["view_version"] == {"N": "1"}
        assert item["materialization"] == {"S": record.materialization_id}
    assert record.newest_event_time is not None
    # and the start and the finish are audited on the view
    actions = [e.action for e in audit_dal.list_events(stores.metadata_table, target=f"feature-view/{VIEW_NAME}")]
    assert actions.count(START_ACTION) == 1 and actions.count(FINISH_ACTION) == 1
    # and the view's freshness reads from its materializations
    fresh = materialize_jobs.view_freshness(online, VIEW_NAME)
    assert fresh.newest_event_time == record.newest_event_time and fresh.last_status is MaterializationStatus.SUCCEEDED


def test_materialize_stale_version_after_a_newer_one_changes_nothing(stores: Stores, online: Settings) -> None:
    # Given version 1 (older rows) and version 2 (newer rows, other values); version 2 materialized
    put_view(stores)
    seed_version(stores, stats(CUSTOMERS, day=10, spend=100.0))
    seed_version(stores, stats(CUSTOMERS, day=20, spend=500.0))
    newer = materialize_jobs.request_materialization(online, VIEW_NAME, MaterializeRequest(version=2), ACTOR)
    assert newer.status is MaterializationStatus.SUCCEEDED
    before = online_snapshot()
    # When version 1 is materialized after it
    stale = materialize_jobs.request_materialization(online, VIEW_NAME, MaterializeRequest(version=1), ACTOR)
    # Then nothing changes: every write found a newer row and was counted as skipped
    assert stale.status is MaterializationStatus.SUCCEEDED
    assert stale.entities_written == 0 and stale.skipped_older == stale.write_requests >= CUSTOMERS
    assert online_snapshot() == before
    assert all(spend_of(i) >= 500.0 for i in before.values())


def test_materialize_two_runs_racing_converge_to_the_newest_values(stores: Stores, online: Settings) -> None:
    # Given version 1 and version 2 (newer), and a customer whose newest row has the same event time
    # in both versions (a tie: the higher source version wins)
    put_view(stores)
    seed_version(stores, stats(CUSTOMERS, day=10, spend=100.0))
    seed_version(stores, stats(CUSTOMERS, day=20, spend=500.0))
    one = _record_only(online, 1)
    two = _record_only(online, 2)
    tasks_one = materialize.plan(online, VIEW_NAME, one.materialization_id)
    tasks_two = materialize.plan(online, VIEW_NAME, two.materialization_id)
    # When their chunks interleave: version 2's in reverse order, version 1's after each of them
    order: list[Any] = []
    for i in range(max(len(tasks_one), len(tasks_two))):
        if i < len(tasks_two):
            order.append(tasks_two[len(tasks_two) - 1 - i])
        if i < len(tasks_one):
            order.append(tasks_one[i])
    for task in order:
        materialize.run_chunk(online, task)
    done_one = materialize.finish(online, VIEW_NAME, one.materialization_id)
    done_two = materialize.finish(online, VIEW_NAME, two.materialization_id)
    # Then every entity holds version 2's latest row, whichever run wrote first
    assert done_one.status is done_two.status is MaterializationStatus.SUCCEEDED
    for c in range(CUSTOMERS):
        item = online_item(c)
        assert item is not None and item["source_version"] == {"N": "2"}, (c, item)
        assert spend_of(item) == 500.0 + c


def test_materialize_tie_on_event_time_goes_to_the_higher_source_version(stores: Stores, online: Settings) -> None:
    # Given two versions with the same event times and different values
    put_view(stores)
    seed_version(stores, stats(CUSTOMERS, day=10, spend=100.0))
    seed_version(stores, stats(CUSTOMERS, day=10, spend=700.0))
    # When version 2 lands first and version 1 after it
    materialize_jobs.request_materialization(online, VIEW_NAME, MaterializeRequest(version=2), ACTOR)
    late = materialize_jobs.request_materialization(online, VIEW_NAME, MaterializeRequest(version=1), ACTOR)
    # Then version 2's values stay
    assert late.entities_written == 0
    assert {spend_of(i) for i in online_snapshot().values()} == {700.0 + c for c in range(CUSTOMERS)}


def _record_only(settings: Settings, version: int) -> Any:
    """A recorded PENDING materialization whose steps the test runs itself."""
    no_start = settings.model_copy(update={"materialize_function": "", "materialize_state_machine_arn": ""})
    original = materialize_jobs._hand_over
    try:
        materialize_jobs._hand_over = lambda _settings, record: record  # type: ignore[assignment]
        return materialize_jobs.request_materialization(no_start, VIEW_NAME, MaterializeRequest(version=version), ACTOR)
    finally:
        materialize_jobs._hand_over = original  # type: ignore[assignment]


def test_materialize_redelivered_chunk_writes_nothing_new(stores: Stores, online: Settings) -> None:
    # Given a planned materialization and one chunk already done
    put_view(stores)
    seed_version(stores, stats(CUSTOMERS, day=10, spend=100.0))
    run = _record_only(online, 1)
    task = materialize.plan(online, VIEW_NAME, run.materialization_id)[0]
    first = materialize.run_chunk(online, task)
    assert first.entities_written > 0
    before = online_snapshot()
    # When the same chunk is delivered again
    with faults.recording() as calls:
        again = materialize.run_chunk(online, task)
    # Then it writes nothing (its done marker answers) and reports the first delivery's counts
    assert "dynamodb.UpdateItem" not in calls
    assert again.redelivered and again.entities_written == first.entities_written
    assert online_snapshot() == before


def test_materialize_same_items_written_again_are_skipped_not_rewritten(stores: Stores, online: Settings) -> None:
    # Given a chunk's entries already in the store (a chunk interrupted after its writes, before its marker)
    put_view(stores)
    seed_version(stores, stats(CUSTOMERS, day=10, spend=100.0))
    materialize_jobs.request_materialization(online, VIEW_NAME, MaterializeRequest(), ACTOR)
    before = online_snapshot()
    entries = list(before.items())
    # When the same entries are written again through the conditional write
    counts = online_store.write_latest(ONLINE_TABLE, VIEW_NAME, entries)
    # Then each is counted as already there, none rewritten
    assert (counts.written, counts.skipped_older, counts.requests) == (0, len(entries), len(entries))
    assert online_snapshot() == before


def test_materialize_throttled_table_retries_and_converges(stores: Stores, online: Settings) -> None:
    # Given a planned materialization
    put_view(stores)
    seed_version(stores, stats(CUSTOMERS, day=10, spend=100.0))
    run = _record_only(online, 1)
    tasks = materialize.plan(online, VIEW_NAME, run.materialization_id)
    # When the online table throttles a chunk's third write (after botocore's own retries)
    with (
        faults.inject(
            "dynamodb.UpdateItem",
            faults.DYNAMODB_THROTTLING,
            skip=2,
            where=lambda r: r["body"].get("TableName") == ONLINE_TABLE,
        ) as rule,
        pytest.raises(Throttled),
    ):
        materialize.run_chunk(online, tasks[0])
    assert rule.fired
    # Then the chunk has no marker, and the workflow's retry of it (and the rest) converges
    for task in tasks:
        materialize.run_chunk(online, task)
    done = materialize.finish(online, VIEW_NAME, run.materialization_id)
    assert done.status is MaterializationStatus.SUCCEEDED
    assert {spend_of(i) for i in online_snapshot().values()} == {100.0 + c for c in range(CUSTOMERS)}


def test_materialize_throttled_past_its_retries_fails_the_run_recording_the_error(
    stores: Stores, online: Settings
) -> None:
    # Given a view and a source version
    put_view(stores)
    seed_version(stores, stats(CUSTOMERS, day=10, spend=100.0))
    # When every write to the online table throttles (in-process run: one attempt per step)
    with faults.inject(
        "dynamodb.UpdateItem",
        faults.DYNAMODB_THROTTLING,
        times=10_000,
        where=lambda r: r["body"].get("TableName") == ONLINE_TABLE,
    ):
        record = materialize_jobs.request_materialization(online, VIEW_NAME, MaterializeRequest(), ACTOR)
    # Then the run is FAILED with the typed error, audited, and a later request runs it again
    assert record.status is MaterializationStatus.FAILED
    assert record.error == "Throttled" and "online feature write" in record.message
    again = materialize_jobs.request_materialization(online, VIEW_NAME, MaterializeRequest(), ACTOR)
    assert again.status is MaterializationStatus.SUCCEEDED
    assert len(online_snapshot()) == CUSTOMERS


def test_materialize_missing_chunk_fails_the_run_naming_it(stores: Stores, online: Settings) -> None:
    # Given a planned run whose first chunk never completed (its Map item failed)
    put_view(stores)
    seed_version(stores, stats(CUSTOMERS, day=10, spend=100.0))
    run = _record_only(online, 1)
    tasks = materialize.plan(online, VIEW_NAME, run.materialization_id)
    for task in tasks[1:]:
        materialize.run_chunk(online, task)
    # When Finish runs
    with pytest.raises(materialize.MaterializationFailed, match="chunks were not materialized: 0"):
        materialize.finish(online, VIEW_NAME, run.materialization_id)
    # Then the record says so
    record = materialize_jobs.get_materialization(online, VIEW_NAME, run.materialization_id)
    assert record.status is MaterializationStatus.FAILED and record.error == "ChunksMissing"


def test_materialize_client_token_joins_the_first_request(stores: Stores, online: Settings) -> None:
    put_view(stores)
    seed_version(stores, stats(CUSTOMERS, day=10, spend=100.0))
    first = materialize_jobs.request_materialization(online, VIEW_NAME, MaterializeRequest(client_token="t-1"), ACTOR)
    again = materialize_jobs.request_materialization(online, VIEW_NAME, MaterializeRequest(client_token="t-1"), ACTOR)
    assert again.joined and again.materialization_id == first.materialization_id
    listed = materialize_jobs.list_materializations(online, VIEW_NAME)
    assert [r.materialization_id for r in listed] == [first.materialization_id]


def test_materialize_new_validated_version_materializes_every_view_over_it(stores: Stores, online: Settings) -> None:
    # Given a view over customer-stats
    put_view(stores)
    version = seed_version(stores, stats(CUSTOMERS, day=10, spend=100.0))
    # When validation announces the version (twice: a redelivered announcement)
    (run,) = materialize_jobs.on_validated(online, version.dataset, version.version, ACTOR)
    (again,) = materialize_jobs.on_validated(online, version.dataset, version.version, ACTOR)
    # Then one materialization ran, triggered by validation
    assert run.status is MaterializationStatus.SUCCEEDED and run.trigger == "validation"
    assert again.joined and again.materialization_id == run.materialization_id
    assert len(online_snapshot()) == CUSTOMERS
    assert materialize_jobs.on_validated(online, "other-dataset", 1, ACTOR) == []


def test_materialize_views_over_one_entity_share_its_item_and_leave_each_others_entries(
    stores: Stores, online: Settings
) -> None:
    # Given two views over the same entity (customer) and source, both materialized from version 1
    put_view(stores)
    other = {**VIEW, "name": "cust-orders", "features": [{"name": "orders_30d", "type": "int"}]}
    views_dal.put_view(stores.metadata_table, FeatureView.model_validate(other), "tester", T0)
    first = seed_version(stores, stats(CUSTOMERS, day=10, spend=100.0))
    runs = materialize_jobs.on_validated(online, first.dataset, first.version, ACTOR)
    assert sorted(r.view for r in runs) == ["cust", "cust-orders"]
    assert all(r.status is MaterializationStatus.SUCCEEDED for r in runs)
    items = boto3.client("dynamodb").scan(TableName=ONLINE_TABLE)["Items"]
    # Then each customer has one item holding both views' entries
    assert len(items) == CUSTOMERS
    assert all({"pk", "view:cust", "view:cust-orders"} == set(i) for i in items)
    orders_before = {i["pk"]["S"]: i["view:cust-orders"] for i in items}
    # When a newer version is materialized for one view only
    seed_version(stores, stats(CUSTOMERS, day=20, spend=500.0))
    newer = materialize_jobs.request_materialization(online, VIEW_NAME, MaterializeRequest(version=2), ACTOR)
    assert newer.status is MaterializationStatus.SUCCEEDED
    # Then its entries hold the newer rows and the other view's entries are as they were
    after = boto3.client("dynamodb").scan(TableName=ONLINE_TABLE)["Items"]
    assert {i["pk"]["S"]: i["view:cust-orders"] for i in after} == orders_before
    assert {spend_of(i) for i in online_snapshot().values()} == {500.0 + c for c in range(CUSTOMERS)}


def _call(method: str, path: str, body: Any = None, who: str | None = "alice") -> tuple[int, Any]:
    reply = api.lambda_handler(api_event(method, path, body, who=who), Context())
    return reply["statusCode"], json.loads(reply["body"])


def test_materialize_routes_start_list_and_read_a_run(stores: Stores, online: Settings) -> None:
    # Given a view and a validated source version
    put_view(stores)
    seed_version(stores, stats(CUSTOMERS, day=10, spend=100.0))
    # When a caller asks for a materialization (no worker configured: it runs before the reply)
    status, run = _call("POST", f"/v1/feature-views/{VIEW_NAME}/materialize", {"client_token": "c-1"})
    # Then it is accepted with its id, listed, and readable with its counts
    assert status == 202, run
    assert run["status"] == "SUCCEEDED" and run["source_version"] == 1 and run["requested_by"].endswith("/alice")
    status, listed = _call("GET", f"/v1/feature-views/{VIEW_NAME}/materializations")
    assert status == 200 and [r["materialization_id"] for r in listed["materializations"]] == [
        run["materialization_id"]
    ]
    status, one = _call("GET", f"/v1/feature-views/{VIEW_NAME}/materializations/{run['materialization_id']}")
    assert status == 200 and one["entities_written"] + one["skipped_older"] == one["write_requests"] >= CUSTOMERS
    assert len(online_snapshot()) == CUSTOMERS
    # and bad input is a 400/404 naming what is wrong
    status, body = _call("POST", f"/v1/feature-views/{VIEW_NAME}/materialize", {"version": 9})
    assert status == 404 and "no version 9" in body["message"]
    status, body = _call("POST", "/v1/feature-views/nope/materialize", {})
    assert status == 404 and "nope" in body["message"]
    status, body = _call("POST", f"/v1/feature-views/{VIEW_NAME}/materialize", {"version": 0})
    assert status == 400
    status, body = _call("POST", f"/v1/feature-views/{VIEW_NAME}/materialize", {}, who=None)
    assert status == 403


def test_materialize_validation_announces_a_new_version_and_the_worker_materializes_it(
    stores: Stores, online: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a view over customer-stats, its contract, and validation configured with the worker
    put_view(stores)
    seed_version(stores, stats(CUSTOMERS, day=10, spend=100.0))  # the contract (and a first version)
    monkeypatch.setenv("STEPWISE_MATERIALIZE_FUNCTION", "materialize")
    get_settings.cache_clear()
    # When a new file of customer-stats passes validation
    buf = io.BytesIO()
    pq.write_table(stats(CUSTOMERS, day=20, spend=500.0), buf)
    event = upload(stores, "raw/customer-stats/new.parquet", buf.getvalue())
    with faults.recording() as calls:
        (outcome,) = validate.lambda_handler(event, Context())["outcomes"]
    # Then the version stands and the worker was invoked (asynchronously; moto has no such function
    # here, so the failed announcement is logged, never the upload's failure)
    assert outcome["verdict"] == "passed" and outcome["version"] == 2
    assert "lambda.Invoke" in calls
    # and the worker's "validated" step materializes it into every view over the dataset
    monkeypatch.delenv("STEPWISE_MATERIALIZE_FUNCTION")
    get_settings.cache_clear()
    event = {"step": "validated", "dataset": "customer-stats", "version": 2, "by": "alice"}
    (mid,) = materialize_handler.lambda_handler(event, Context())["materializations"]
    record = materialize_jobs.get_materialization(get_settings(), VIEW_NAME, mid)
    assert record.status is MaterializationStatus.SUCCEEDED and record.source_version == 2
    assert {spend_of(i) for i in online_snapshot().values()} == {500.0 + c for c in range(CUSTOMERS)}


def test_materialize_start_hands_the_run_to_its_workflow_once(
    stores: Stores, online: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a deployed workflow (any definition: its steps are tested above) and a recorded run
    machine = boto3.client("stepfunctions").create_state_machine(
        name="materialize",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )["stateMachineArn"]
    monkeypatch.setenv("STEPWISE_MATERIALIZE_SM_ARN", machine)
    get_settings.cache_clear()
    put_view(stores)
    seed_version(stores, stats(CUSTOMERS, day=10, spend=100.0))
    run = _record_only(get_settings(), 1)
    # When the worker's start step runs, twice (a redelivered asynchronous invoke)
    event = {"step": "start", "view": VIEW_NAME, "materialization_id": run.materialization_id}
    first = materialize_handler.lambda_handler(event, Context())
    second = materialize_handler.lambda_handler(event, Context())
    # Then one execution, named after the run, is recorded on it
    assert first["execution_arn"].endswith(f":{run.materialization_id}")
    assert second["execution_arn"] == first["execution_arn"]
    executions = boto3.client("stepfunctions").list_executions(stateMachineArn=machine)["executions"]
    assert [e["name"] for e in executions] == [run.materialization_id]


def test_materialize_validated_step_delivered_three_times_makes_one_run(
    stores: Stores, online: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a view over customer-stats and a validated version
    put_view(stores)
    seed_version(stores, stats(CUSTOMERS, day=10, spend=100.0))
    # When the worker gets validation's announcement three times (asynchronous redeliveries)
    event = {"step": "validated", "dataset": "customer-stats", "version": 1, "by": "alice"}
    runs = [materialize_handler.lambda_handler(event, Context())["materializations"] for _ in range(3)]
    # Then one run materialized it, and the redeliveries joined it
    assert runs[0] == runs[1] == runs[2] and len(runs[0]) == 1
    assert [r.materialization_id for r in materialize_jobs.list_materializations(online, VIEW_NAME)] == runs[0]
    assert len(online_snapshot()) == CUSTOMERS
    # and the run that ran (once) emitted the view's online age, per view and as the aggregate
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert [e.get("view") for e in emitted if "OnlineFeatureAgeSeconds" in e] == [VIEW_NAME]
    assert len([e for e in emitted if "OnlineFeatureAgeMaxSeconds" in e]) == 1
