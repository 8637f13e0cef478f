"""Paginated lists beyond the registry: runs (newest start first), pending approvals (oldest
first), audit events (oldest first) and feature views (by name) take `limit` and `next_token` and
return one, through the real API handler on moto. Following the tokens returns each item exactly
once in a stable order; a token of another listing, or a limit out of range, is a 400 naming it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from functions.dal import approvals as approvals_dal
from functions.dal import audit as audit_dal
from functions.dal import feature_views as views_dal
from functions.dal import pages
from functions.dal import runs as runs_dal
from functions.models.approvals import ApprovalRequest
from functions.models.audit import AuditEvent
from functions.models.features import FeatureView
from functions.models.runs import RunRecord
from tests import faults
from tests.integration.conftest import Stores
from tests.integration.test_registry_pages import get

T0 = datetime(2026, 11, 26, 9, tzinfo=UTC)


def follow(path: str, key: str, limit: int, field: str, **extra: str) -> tuple[list[Any], int]:
    """Every item of the listing, page after page, and how many pages were read."""
    seen: list[Any] = []
    query = {"limit": str(limit), **extra}
    read = 0
    while True:
        status, body = get(path, query)
        assert status == 200, body
        read += 1
        assert len(body[key]) <= limit
        seen += [item[field] for item in body[key]]
        if not body.get("next_token"):
            return seen, read
        query = {"limit": str(limit), **extra, "next_token": body["next_token"]}


def refused(path: str, query: dict[str, str], field: str) -> None:
    status, body = get(path, query)
    assert status == 400 and body["error"] == "InvalidInput", body
    assert field in [d["field"] for d in body["details"]], body


def seed_runs(stores: Stores, model: str, n: int) -> list[str]:
    """n runs whose start times are not in run-id order (ids descend while times ascend)."""
    ids = []
    for i in range(n):
        run_id = f"{model}-{n - i}-1"
        started = T0 + timedelta(minutes=i)
        record = RunRecord(
            run_id=run_id,
            model=model,
            spec_name=model,
            spec_version=1,
            dataset=model,
            dataset_version=n - i,
            started_at=started,
        )
        runs_dal.create_run(stores.metadata_table, record)
        ids.append(run_id)
    return ids


def test_runs_route_pages_newest_start_first_each_run_exactly_once(stores: Stores) -> None:
    # Given 11 runs of churn (and runs of another model that must not show)
    ids = seed_runs(stores, "churn", 11)
    seed_runs(stores, "other", 3)
    # When they are listed 4 at a time, following next_token
    seen, read = follow("/v1/models/churn/runs", "runs", 4, "run_id")
    # Then each came once, newest start first, in 3 pages
    assert seen == list(reversed(ids)) and read == 3


def test_runs_route_refuses_another_listings_token_and_a_bad_limit(stores: Stores) -> None:
    seed_runs(stores, "churn", 3)
    status, body = get("/v1/models/other/runs", {"limit": "1"})
    assert status == 200 and body["next_token"] is None
    status, body = get("/v1/models/churn/runs", {"limit": "1"})
    assert status == 200 and body["next_token"]
    refused("/v1/models/other/runs", {"next_token": body["next_token"]}, "query.next_token")
    refused("/v1/models/churn/runs", {"next_token": pages.encode("models", "churn")}, "query.next_token")
    refused("/v1/models/churn/runs", {"next_token": "garbage"}, "query.next_token")
    for limit in ("0", "-3", "1001"):
        refused("/v1/models/churn/runs", {"limit": limit}, "query.limit")


def seed_approvals(stores: Stores, n: int) -> list[str]:
    ddb = boto3.client("dynamodb")
    ids = []
    for i in range(n):
        at = T0 + timedelta(minutes=i)
        request = ApprovalRequest(
            id=f"churn-{i + 1}", model="churn", version=i + 1, requested_at=at, expires_at=at + timedelta(days=7)
        )
        ddb.transact_write_items(TransactItems=[approvals_dal.put_item(stores.metadata_table, request, "tok")])
        ids.append(request.id)
    return ids


def test_approvals_route_pages_oldest_first_each_request_exactly_once(stores: Stores) -> None:
    ids = seed_approvals(stores, 7)
    seen, read = follow("/v1/approvals", "approvals", 3, "id")
    assert seen == ids and read == 3
    refused("/v1/approvals", {"next_token": pages.encode("runs:churn", "x")}, "query.next_token")
    refused("/v1/approvals", {"limit": "0"}, "query.limit")


def seed_events(stores: Stores, n: int, target: str) -> list[str]:
    ids = []
    for i in range(n):
        event = AuditEvent(time=T0 + timedelta(seconds=i), who="carol", action="version.promote", target=target)
        audit_dal.record(stores.metadata_table, event)
        ids.append(event.event_id)
    return ids


def test_audit_route_pages_oldest_first_of_a_model_and_of_all(stores: Stores) -> None:
    # Given 7 events of churn and 2 of a dataset
    churn = seed_events(stores, 7, "model/churn")
    data = seed_events(stores, 2, "dataset/wine")
    # When churn's events, then all events, are listed 3 at a time
    seen, read = follow("/v1/audit", "events", 3, "event_id", model="churn")
    assert seen == churn and read == 3
    every, _ = follow("/v1/audit", "events", 2, "event_id")
    # Then each came once, oldest first (the dataset's events are at the same seconds as churn's first two)
    assert sorted(every) == sorted(churn + data) and len(every) == 9
    # and a token of one target's listing is refused by another's
    status, body = get("/v1/audit", {"model": "churn", "limit": "1"})
    assert status == 200 and body["next_token"]
    refused("/v1/audit", {"target": "dataset/wine", "next_token": body["next_token"]}, "query.next_token")
    refused("/v1/audit", {"next_token": body["next_token"]}, "query.next_token")


def test_audit_route_pages_respect_since(stores: Stores) -> None:
    churn = seed_events(stores, 6, "model/churn")
    since = (T0 + timedelta(seconds=2)).isoformat()
    status, body = get("/v1/audit", {"model": "churn", "since": since, "limit": "2"})
    assert status == 200 and [e["event_id"] for e in body["events"]] == churn[2:4], body
    status, body = get("/v1/audit", {"model": "churn", "since": since, "limit": "2", "next_token": body["next_token"]})
    assert status == 200 and [e["event_id"] for e in body["events"]] == churn[4:6] and body["next_token"] is None


def test_feature_views_route_pages_by_name_latest_version_of_each(stores: Stores) -> None:
    # Given 5 views, each with 2 versions (the second's TTL differs)
    names = ["a", "a-b", "a0", "b", "c"]
    for name in names:
        for ttl in (86_400, 2 * 86_400):
            view = FeatureView(
                name=name,
                entity_keys=["customer"],
                source="customer-stats",
                timestamp_column="at",
                ttl_seconds=ttl,
                features=[{"name": "spend_30d", "type": "float"}],
            )
            views_dal.put_view(stores.metadata_table, view, "tester", T0)
    # When they are listed 2 at a time
    seen: list[tuple[str, int]] = []
    query = {"limit": "2"}
    while True:
        status, body = get("/v1/feature-views", query)
        assert status == 200, body
        seen += [(v["name"], v["version"]) for v in body["views"]]
        if not body.get("next_token"):
            break
        query = {"limit": "2", "next_token": body["next_token"]}
    # Then each view came once, by name, at its latest version
    assert seen == [(n, 2) for n in sorted(names)]
    refused("/v1/feature-views", {"next_token": pages.encode("models", "a")}, "query.next_token")
    refused("/v1/feature-views", {"limit": "1001"}, "query.limit")


@pytest.mark.parametrize("path", ["/v1/models/churn/runs", "/v1/approvals", "/v1/audit", "/v1/feature-views"])
def test_list_routes_refuse_a_malformed_token_naming_it(stores: Stores, path: str) -> None:
    refused(path, {"next_token": "x" * 2_000}, "query.next_token")
    refused(path, {"next_token": "not/a+token"}, "query.next_token")


def since_iso(moment: str | datetime) -> str:
    """The audit listing's form of a time (functions/models/audit.py iso)."""
    from functions.models.audit import iso

    return iso(datetime.fromisoformat(moment) if isinstance(moment, str) else moment)


def test_audit_route_filters_by_time_window_actor_and_action_across_pages(stores: Stores) -> None:
    # Given 12 events of churn a second apart: alice promotes, bob decides approvals, in turn
    ids = []
    for i in range(12):
        who, action = ("alice@example", "version.promote") if i % 2 else ("bob", "approval.approve")
        event = AuditEvent(time=T0 + timedelta(seconds=i), who=who, action=action, target="model/churn")
        audit_dal.record(stores.metadata_table, event)
        ids.append(event.event_id)
    since, until = (T0 + timedelta(seconds=2)).isoformat(), (T0 + timedelta(seconds=9)).isoformat()
    # When a window (both bounds inclusive) is listed 2 at a time, alone and with each filter
    window, _ = follow("/v1/audit", "events", 2, "event_id", model="churn", since=since, until=until)
    by_alice, _ = follow("/v1/audit", "events", 2, "event_id", model="churn", until=until, actor="alice")
    approvals, _ = follow("/v1/audit", "events", 2, "event_id", since=since, action="approval.")
    both, _ = follow("/v1/audit", "events", 1, "event_id", actor="bo", action="approval", until=until)
    # Then each page holds only matching events, every match comes once, oldest first
    assert window == ids[2:10]
    assert by_alice == ids[1:10:2]
    assert approvals == ids[2:12:2]
    assert both == ids[0:10:2]
    # and a filtered listing's token is refused by another listing; bad filters are 400s naming them
    status, body = get("/v1/audit", {"actor": "alice", "limit": "1"})
    assert status == 200 and body["next_token"]
    refused("/v1/audit", {"actor": "bob", "next_token": body["next_token"]}, "query.next_token")
    refused("/v1/audit", {"action": "Approval!"}, "query.action")
    refused("/v1/audit", {"actor": "x" * 129}, "query.actor")
    refused("/v1/audit", {"until": "yesterday"}, "query.until")
    status, body = get("/v1/audit", {"since": until, "until": since})
    assert status == 400 and "is before since" in body["message"], body
    # and a token positioned after `until` (made by hand) is an empty page without a read (DynamoDB
    # refuses a BETWEEN whose lower bound is above the upper one; moto does not)
    late = pages.encode(
        f"audit:model/churn:{since_iso(since)}:{since_iso(until)}::",
        f"{since_iso(T0 + timedelta(seconds=30))}#{'f' * 32}",
    )
    with faults.recording() as calls:
        status, body = get("/v1/audit", {"model": "churn", "since": since, "until": until, "next_token": late})
    assert status == 200 and body == {"events": [], "next_token": None}, body
    assert "dynamodb.Query" not in calls, calls
