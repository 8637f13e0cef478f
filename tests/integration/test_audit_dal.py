from __future__ import annotations

from datetime import timedelta

import boto3
import pytest

from functions.dal import audit
from functions.models.audit import Actor, AuditEvent, model_target, utcnow
from functions.models.errors import Conflict
from tests.integration.conftest import Stores

ALICE = Actor(identity="arn:aws:iam::123456789012:user/alice", correlation_id="c-1")


def test_audit_put_appends_an_event_in_a_transaction(stores: Stores) -> None:
    # Given an event about a model version
    event = AuditEvent.of(ALICE, "version.promote", model_target("churn"), version=3, before={"s": 1}, after={"s": 2})
    # When its Put goes through a transaction
    boto3.client("dynamodb").transact_write_items(TransactItems=[audit.audit_put(stores.metadata_table, event)])
    # Then it reads back as written
    assert audit.list_events(stores.metadata_table, target=model_target("churn")) == [event]


def test_audit_put_refuses_to_overwrite_an_event(stores: Stores) -> None:
    # Given an event already recorded
    event = AuditEvent.of(ALICE, "version.promote", model_target("churn"), version=3)
    audit.record(stores.metadata_table, event)
    # When the same event is written again, Then it is refused
    with pytest.raises(Conflict):
        audit.record(stores.metadata_table, event)


def test_audit_list_filters_by_target_and_since(stores: Stores) -> None:
    # Given events on two targets, one of them old
    now = utcnow()
    old = AuditEvent(who="a", action="x.y", target="model/a", time=now - timedelta(days=2))
    new_a = AuditEvent(who="a", action="x.y", target="model/a", time=now)
    new_b = AuditEvent(who="b", action="x.y", target="model/b", time=now)
    for e in (old, new_a, new_b):
        audit.record(stores.metadata_table, e)
    # When listed by target / since
    by_a = audit.list_events(stores.metadata_table, target="model/a")
    recent = audit.list_events(stores.metadata_table, since=now - timedelta(days=1))
    # Then each query returns its events, oldest first
    assert by_a == [old, new_a]
    assert {e.event_id for e in recent} == {new_a.event_id, new_b.event_id}
