"""Duplicate delivery of drift checks (the drift Lambda is invoked asynchronously: API route,
hourly schedule): a check named by [model, check_id] runs once, a repeat returns its first result,
and the same name with a different payload is refused.

Real handler code on moto; nothing of ours is faked. Metrics are counted in the EMF lines the
handler prints (what CloudWatch would ingest).
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from functions.dal import monitoring
from functions.handlers import drift as drift_handler
from functions.models.drift import DriftCheckRequest
from functions.models.errors import Conflict
from tests.integration.conftest import Stores
from tests.integration.test_drift_check import NOW, Context, _capture, _register, _rows


def api_event(check_id: str, **changes: Any) -> dict[str, Any]:
    """What the API route puts in the asynchronous event (functions/logic/drift_request.py)."""
    req = DriftCheckRequest(model="churn", window_hours=3, end=NOW, retrain=False, check_id=check_id)
    return {**req.model_dump(mode="json"), **changes}


def report_keys(stores: Stores) -> list[str]:
    reply = boto3.client("s3").list_objects_v2(Bucket=stores.artifacts_bucket, Prefix="reports/drift/")
    return sorted(o["Key"] for o in reply.get("Contents", []))


def emf_count(out: str, name: str) -> int:
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"_aws"' in line]
    return sum(1 for line in lines if name in line)


def test_drift_handler_events_delivered_four_times_shuffled_make_one_report_each(
    stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given drifted traffic and two checks requested through the API, each delivered four times, shuffled
    _register(stores)
    _capture(stores, datetime(2026, 11, 26, 10, tzinfo=UTC), _rows(2_000, 2, shift=0.5))
    deliveries = [api_event(c) for c in ("c1", "c2") for _ in range(4)]
    random.Random(3).shuffle(deliveries)
    capsys.readouterr()
    # When every delivery is handled
    replies = [drift_handler.lambda_handler(e, Context()) for e in deliveries]
    # Then each check returns one result, its first one, every time
    by_check: dict[str, list[dict[str, Any]]] = {}
    for reply in replies:
        by_check.setdefault(reply["check_id"], []).append(reply)
    assert sorted(by_check) == ["c1", "c2"] and all(
        len({json.dumps(r, sort_keys=True) for r in rs}) == 1 for rs in by_check.values()
    )
    # and made one JSON + HTML report, one summary and one set of metrics per check
    assert len(report_keys(stores)) == 4
    assert sorted(c["check_id"] for c in monitoring.recent_checks(stores.metadata_table, "churn")) == ["c1", "c2"]
    assert emf_count(capsys.readouterr().out, "DriftChecks") == 2


def test_drift_handler_schedule_delivered_twice_checks_each_model_once(stores: Stores) -> None:
    # Given one production model; When the same scheduled event (its time) is delivered twice
    _register(stores)
    event = {"all_models": True, "window_hours": 1, "time": "2026-11-26T12:00:00Z"}
    first = drift_handler.lambda_handler(event, Context())
    second = drift_handler.lambda_handler(event, Context())
    # Then the model was checked once, under a check id named after the scheduled time
    assert first == second and first["results"][0]["check_id"] == "s20261126T120000Z"
    assert len(monitoring.recent_checks(stores.metadata_table, "churn")) == 1 and len(report_keys(stores)) == 2


def test_drift_handler_same_check_id_with_another_payload_is_a_conflict(stores: Stores) -> None:
    # Given a check handled once
    _register(stores)
    first = drift_handler.lambda_handler(api_event("c1"), Context())
    # When an event with the same check id asks for another window
    with pytest.raises(Conflict, match="different payload"):
        drift_handler.lambda_handler(api_event("c1", window_hours=12), Context())
    # Then nothing new was written, and the first check still answers with its result
    assert len(report_keys(stores)) == 2 and len(monitoring.recent_checks(stores.metadata_table, "churn")) == 1
    assert drift_handler.lambda_handler(api_event("c1"), Context()) == first
