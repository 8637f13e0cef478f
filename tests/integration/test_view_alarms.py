"""Per-view alarms on moto, through the real materialization handler and the real inference
handler: a view's first successful materialization creates its freshness and lookup-miss alarms
(metric, dimensions, threshold, missing-data treatment, the alarm topic), later runs change nothing
and audit nothing; a failed run creates none; a failed alarm call never fails the run and the next
run repairs it; the freshness and per-view miss-share metrics carry the view dimension the alarms
watch."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from functions.dal import audit as audit_dal
from functions.handlers import materialize as materialize_handler
from functions.logic import materialize, materialize_jobs, view_alarms
from functions.logic.materialize_jobs import target
from functions.models.materialize import MaterializationStatus
from functions.models.settings import Settings, get_settings
from infra import constants as c
from tests import faults
from tests.integration.conftest import Stores
from tests.integration.materialize_support import VIEW_NAME, online, put_view, seed_version, stats
from tests.integration.test_materialize import _record_only
from tests.integration.test_predict import emf_values
from tests.integration.test_predict_lookups import model, send
from tests.integration.test_validate_handler import Context

__all__ = ["model", "online"]  # the fixtures, used by name

PREFIX = "stepwise-test-view-"
KINDS = {"freshness", "lookups"}


@pytest.fixture
def topic(online: Settings, monkeypatch: pytest.MonkeyPatch) -> str:
    """The alarm topic and the per-view alarm settings the stack gives the materialization function."""
    arn = str(boto3.client("sns").create_topic(Name="stepwise-alarms")["TopicArn"])
    monkeypatch.setenv(c.ENV_VIEW_ALARM_PREFIX, PREFIX)
    monkeypatch.setenv(c.ENV_ALARM_TOPIC_ARN, arn)
    get_settings.cache_clear()
    return arn


def alarms(view: str = VIEW_NAME) -> dict[str, dict[str, Any]]:
    found = boto3.client("cloudwatch").describe_alarms(AlarmNamePrefix=f"{PREFIX}{view}-")["MetricAlarms"]
    return {a["AlarmName"].removeprefix(f"{PREFIX}{view}-"): a for a in found}


def alarm_events(stores: Stores) -> list[dict[str, Any]]:
    events = audit_dal.list_events(stores.metadata_table, target=target(VIEW_NAME))
    return [e.after or {} for e in events if e.action == view_alarms.ACTION]


def validated(version: int) -> list[str]:
    """The materialization function's answer to a validated source version (runs in-process here)."""
    event = {"step": "validated", "dataset": "customer-stats", "version": version, "by": "alice"}
    return list(materialize_handler.lambda_handler(event, Context())["materializations"])


def definitions(found: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The alarms without their update times and states."""
    return {
        k: {f: v for f, v in a.items() if "Timestamp" not in f and not f.startswith("State")} for k, a in found.items()
    }


def dimensions(alarm: dict[str, Any]) -> dict[str, str]:
    return {d["Name"]: d["Value"] for d in alarm["Dimensions"]}


def test_view_alarms_created_by_the_first_successful_materialization_once(
    stores: Stores, topic: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a view over customer-stats with no alarms yet
    put_view(stores)
    assert alarms() == {}
    # When a validated version is materialized
    seed_version(stores, stats(20, day=10, spend=100.0))
    validated(1)
    # Then the view has its two alarms, notifying the alarm topic
    found = alarms()
    assert set(found) == KINDS
    assert all(a["AlarmActions"] == [topic] for a in found.values())
    # And the freshness alarm watches the view's online age above the stack's threshold (2 days),
    # in every hour of a 2-day window, a silent hour counting as stale
    fresh = found["freshness"]
    assert (fresh["Namespace"], fresh["MetricName"], fresh["Statistic"]) == (
        "Stepwise/Features",
        "OnlineFeatureAgeSeconds",
        "Maximum",
    )
    assert dimensions(fresh) == {"service": "stepwise", "view": VIEW_NAME}
    assert (fresh["Threshold"], fresh["ComparisonOperator"]) == (172_800.0, "GreaterThanThreshold")
    assert (fresh["Period"], fresh["EvaluationPeriods"], fresh["DatapointsToAlarm"]) == (3600, 48, 48)
    assert fresh["TreatMissingData"] == "breaching"
    # And the lookups alarm watches the view's miss share above the stack's percent, quiet without data
    lookups = found["lookups"]
    assert (lookups["Namespace"], lookups["MetricName"], lookups["Statistic"]) == (
        "Stepwise",
        "LookupMissShare",
        "Average",
    )
    assert dimensions(lookups) == {"service": "stepwise", "view": VIEW_NAME}
    assert (lookups["Threshold"], lookups["TreatMissingData"]) == (20.0, "notBreaching")
    # And the run emitted the age with exactly the dimensions the freshness alarm watches
    ages = emf_values(capsys.readouterr().out, "OnlineFeatureAgeSeconds")
    assert [d for _, d in ages] == [{"service": "stepwise", "view": VIEW_NAME}]
    # When a newer version is materialized too
    seed_version(stores, stats(20, day=11, spend=200.0))
    validated(2)
    # Then the alarms' definitions are unchanged and only their creation was audited
    assert definitions(alarms()) == definitions(found)
    assert alarm_events(stores) == [{"alarms": [f"{PREFIX}{VIEW_NAME}-freshness", f"{PREFIX}{VIEW_NAME}-lookups"]}]
    # And no other view got any
    assert alarms("other") == {}


def test_view_alarms_follow_the_stack_settings(stores: Stores, topic: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a stack whose freshness threshold is 25 hours less a minute and miss percent 5
    monkeypatch.setenv(c.ENV_ONLINE_FRESHNESS_ALARM_SECONDS, str(25 * 3600 - 60))
    monkeypatch.setenv(c.ENV_LOOKUP_MISS_ALARM_PERCENT, "5")
    get_settings.cache_clear()
    put_view(stores)
    seed_version(stores, stats(20, day=10, spend=100.0))
    # When the view is materialized
    validated(1)
    # Then the window is the threshold rounded up to whole hours, and the percent is the stack's
    found = alarms()
    assert (found["freshness"]["Threshold"], found["freshness"]["EvaluationPeriods"]) == (89_940.0, 25)
    assert found["lookups"]["Threshold"] == 5.0


def test_view_alarms_freshness_window_is_whole_hours_within_cloudwatchs_range() -> None:
    assert [view_alarms.freshness_window_hours(s) for s in (60, 3600, 3601, 2 * 86_400, 30 * 86_400)] == [
        1,
        1,
        2,
        48,
        168,
    ]


def test_view_alarms_not_created_by_a_failed_materialization(stores: Stores, topic: str) -> None:
    # Given a planned run whose first chunk never completed
    put_view(stores)
    seed_version(stores, stats(20, day=10, spend=100.0))
    run = _record_only(get_settings(), 1)
    tasks = materialize.plan(get_settings(), VIEW_NAME, run.materialization_id)
    for task in tasks[1:]:
        materialize.run_chunk(get_settings(), task)
    # When the workflow's Finish runs and fails the run
    event = {"step": "finish", "view": VIEW_NAME, "materialization_id": run.materialization_id}
    with pytest.raises(materialize.MaterializationFailed):
        materialize_handler.lambda_handler(event, Context())
    # Then the view has no alarms
    assert alarms() == {}


@pytest.mark.parametrize("call", ["cloudwatch.DescribeAlarms", "cloudwatch.PutMetricAlarm"])
@pytest.mark.parametrize("fault", [faults.THROTTLING, faults.ACCESS_DENIED], ids=lambda f: f.name)
def test_faults_view_alarms_failed_call_never_fails_the_run_and_the_next_run_repairs(
    stores: Stores, topic: str, call: str, fault: faults.Fault, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a view and a validated version; When the alarm call fails (every attempt)
    put_view(stores)
    seed_version(stores, stats(20, day=10, spend=100.0))
    with faults.inject(call, fault, times=100) as rule:
        (mid,) = validated(1)
    assert rule.fired
    # Then the run succeeded, the alarms are missing, and the failure was counted
    record = materialize_jobs.get_materialization(get_settings(), VIEW_NAME, mid)
    assert record.status is MaterializationStatus.SUCCEEDED
    assert len(alarms()) < len(KINDS)
    assert emf_values(capsys.readouterr().out, "ViewAlarmSyncErrors") == [(1.0, {"service": "stepwise"})]
    # And the view's next successful run creates them
    seed_version(stores, stats(20, day=11, spend=200.0))
    validated(2)
    assert set(alarms()) == KINDS
    assert len(alarm_events(stores)) == 1


def test_view_alarms_off_without_a_prefix(stores: Stores, online: Settings) -> None:
    # Given a deployment whose function has no view-alarm prefix (no grant): a run makes no alarm
    put_view(stores)
    seed_version(stores, stats(20, day=10, spend=100.0))
    validated(1)
    assert boto3.client("cloudwatch").describe_alarms()["MetricAlarms"] == []


def test_view_alarms_inference_emits_each_views_miss_share(
    stores: Stores, model: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a model looking up view `customer`; When 4 rows are predicted: fresh, expired, fresh, unknown
    capsys.readouterr()
    instances = [{"customer_id": cid, "amount": 1.0} for cid in ("c-1", "c-2", "c-3", "c-9")]
    status, body, _ = send({"instances": instances})
    assert status == 200, body
    # Then the view's share of missing or expired lookups is emitted with the view dimension (what
    # the view's lookups alarm watches), next to the model's own
    shares = emf_values(capsys.readouterr().out, "LookupMissShare")
    assert (50.0, {"service": "stepwise", "view": "customer"}) in shares
    assert (50.0, {"service": "stepwise", "model": "purchases-model"}) in shares
    assert len(shares) == 2
