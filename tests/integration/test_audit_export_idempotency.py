"""Duplicate delivery of the audit export (the daily schedule invokes it asynchronously; the API
route can ask for the same day): a day that has ended is exported once, a repeat returns the first
export, and a day whose events changed since its export is refused.

Real handler code on moto; nothing of ours is faked.
"""

from __future__ import annotations

import random

import boto3
import pytest

from functions.dal import audit as audit_dal
from functions.handlers import audit_export
from functions.models.errors import Conflict
from tests.integration.approval_support import Context
from tests.integration.conftest import ARCHIVE, Stores
from tests.integration.test_audit_export import DAY, _event


def exports(day: str) -> list[str]:
    reply = boto3.client("s3").list_objects_v2(Bucket=ARCHIVE, Prefix=f"audit/dt={day}/")
    return sorted(o["Key"] for o in reply.get("Contents", []))


def test_audit_export_days_requested_three_times_shuffled_are_exported_once_each(stores: Stores, archive: str) -> None:
    # Given events on two past days, each export asked for three times, shuffled
    audit_dal.record(stores.metadata_table, _event("version.register", 5))
    audit_dal.record(stores.metadata_table, _event("version.approve", 6, day=3))
    deliveries = [{"day": d} for d in ("2026-04-02", "2026-04-03") for _ in range(3)]
    random.Random(5).shuffle(deliveries)
    # When every request is handled
    results = [audit_export.lambda_handler(e, Context()) for e in deliveries]
    # Then each day is one object, and every request for it answers with that export
    assert len(exports("2026-04-02")) == 1 and len(exports("2026-04-03")) == 1
    for day in ("2026-04-02", "2026-04-03"):
        same = [r for r in results if r["day"] == day]
        assert len(same) == 3 and all(r == same[0] for r in same) and same[0]["key"] in exports(day)


def test_audit_export_day_whose_events_changed_is_a_conflict(stores: Stores, archive: str) -> None:
    # Given a day exported once
    audit_dal.record(stores.metadata_table, _event("version.register", 5))
    first = audit_export.lambda_handler({"day": DAY.isoformat()}, Context())
    # When an event of that day is recorded late and the day is asked for again
    audit_dal.record(stores.metadata_table, _event("version.approve", 7))
    with pytest.raises(Conflict, match="changed since that day was exported"):
        audit_export.lambda_handler({"day": DAY.isoformat()}, Context())
    # Then no second object was written; the first export stands
    assert exports(DAY.isoformat()) == [first["key"]]
