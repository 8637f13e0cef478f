"""Per-model alarms on moto: the release handler creates a model's alarms when it first serves and
deletes them when it serves nothing; the retire route re-syncs; a failed alarm call never undoes or
fails the release, and the next step repairs it."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from functions.dal import audit
from functions.handlers import api, release
from functions.logic import model_alarms, releases
from functions.models.audit import Actor, model_target
from functions.models.registry import VersionStatus as S
from functions.models.settings import get_settings
from infra import constants as c
from tests import faults
from tests.integration.approval_support import Context, api_event
from tests.integration.conftest import Stores
from tests.integration.release_support import register

OPS = Actor(identity="ops")
PREFIX = "stepwise-test-model-"
KINDS = {"drift", "errors", "latency", "performance", "lookups"}


@pytest.fixture
def topic(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> str:
    """The alarm topic and the per-model alarm settings the stack gives the functions."""
    arn = str(boto3.client("sns").create_topic(Name="stepwise-alarms")["TopicArn"])
    monkeypatch.setenv(c.ENV_MODEL_ALARM_PREFIX, PREFIX)
    monkeypatch.setenv(c.ENV_ALARM_TOPIC_ARN, arn)
    get_settings.cache_clear()
    return arn


def alarms(model: str) -> dict[str, dict[str, Any]]:
    found = boto3.client("cloudwatch").describe_alarms(AlarmNamePrefix=f"{PREFIX}{model}-")["MetricAlarms"]
    return {a["AlarmName"].removeprefix(f"{PREFIX}{model}-"): a for a in found}


def alarm_events(stores: Stores, model: str) -> list[dict[str, Any]]:
    events = audit.list_events(stores.metadata_table, target=model_target(model))
    return [e.after or {} for e in events if e.action == "model.alarms"]


def approved(stores: Stores, model: str) -> int:
    v = register(stores, model)
    releases.approve(get_settings(), model, v.version, OPS, "ok")
    return v.version


def step(action: str, model: str, version: int) -> dict[str, Any]:
    strategy = {"kind": "canary", "weight": 0.1, "bake_seconds": 60}
    event = {"action": action, "model": model, "version": version, "execution": "exec-1", "strategy": strategy}
    return dict(release.lambda_handler(event, Context()))


def test_model_alarms_created_on_promotion_to_the_topic_once(stores: Stores, topic: str) -> None:
    # Given an approved first version of churn
    approved(stores, "churn")
    # When the workflow promotes it (and a retried delivery promotes it again)
    assert step("promote", "churn", 1)["production_version"] == 1
    step("promote", "churn", 1)
    # Then churn has its five alarms, each notifying the alarm topic, on the model-level metrics
    found = alarms("churn")
    assert set(found) == KINDS
    assert all(a["AlarmActions"] == [topic] for a in found.values())
    assert {d["Name"]: d["Value"] for d in found["errors"]["Dimensions"]} == {"service": "stepwise", "model": "churn"}
    assert found["latency"]["MetricName"] == "ModelLatency" and found["drift"]["MetricName"] == "DriftShare"
    # (the lookups alarm: the share of feature lookups missing or expired, over the settable threshold)
    lookups = found["lookups"]
    assert (lookups["MetricName"], lookups["Statistic"], lookups["Threshold"]) == ("LookupMissShare", "Average", 20.0)
    assert {d["Name"]: d["Value"] for d in lookups["Dimensions"]} == {"service": "stepwise", "model": "churn"}
    # And one audit event recorded the creation (the repeat changed nothing)
    assert alarm_events(stores, "churn") == [{"alarms": sorted(f"{PREFIX}churn-{k}" for k in KINDS)}]
    # And no other model got any
    assert alarms("other") == {}


def retire(model: str, version: int, **body: Any) -> tuple[int, dict[str, Any]]:
    event = api_event("POST", f"/v1/models/{model}/versions/{version}/retire", {"reason": "abandoned", **body})
    reply = api.lambda_handler(event, Context())
    return reply["statusCode"], json.loads(reply["body"])


def test_model_alarms_deleted_when_the_production_version_is_withdrawn(stores: Stores, topic: str) -> None:
    # Given churn's only version in production, with its alarms
    approved(stores, "churn")
    step("promote", "churn", 1)
    assert set(alarms("churn")) == KINDS
    # When it is retired without withdraw: 409 naming withdraw, nothing changes
    status, body = retire("churn", 1)
    assert status == 409 and '"withdraw": true' in body["message"]
    assert set(alarms("churn")) == KINDS
    # When it is retired with withdraw
    status, body = retire("churn", 1, withdraw=True)
    # Then it is RETIRED, the model serves nothing, and its alarms are gone (both changes audited)
    assert status == 200 and body["status"] == "RETIRED"
    state = releases.read_state(get_settings(), "churn")
    assert (state.record.production_version, state.record.candidate_version) == (None, None)
    assert state.versions[1].production_periods[-1]["ended_as"] == "RETIRED"
    assert alarms("churn") == {}
    assert [e["alarms"] == [] for e in alarm_events(stores, "churn")] == [False, True]


def test_model_alarms_withdraw_refused_during_a_canary(stores: Stores, topic: str) -> None:
    approved(stores, "churn")
    approved(stores, "churn")
    step("promote", "churn", 1)
    step("start_canary", "churn", 2)
    status, body = retire("churn", 1, withdraw=True)
    assert status == 409 and "canary" in body["message"]
    assert set(alarms("churn")) == KINDS


@pytest.mark.parametrize("call", ["cloudwatch.DescribeAlarms", "cloudwatch.PutMetricAlarm"])
@pytest.mark.parametrize("fault", [faults.THROTTLING, faults.ACCESS_DENIED, faults.TIMEOUT], ids=lambda f: f.name)
def test_faults_model_alarms_failed_write_never_undoes_the_release_and_the_next_step_repairs(
    stores: Stores, topic: str, call: str, fault: faults.Fault
) -> None:
    # Given an approved version; When its promotion's alarm call fails (every attempt)
    approved(stores, "churn")
    with faults.inject(call, fault, times=100) as rule:
        result = step("promote", "churn", 1)
    assert rule.fired
    # Then the promotion stands and answers as usual; the alarms are missing
    assert result["production_version"] == 1
    assert releases.read_state(get_settings(), "churn").versions[1].status == S.PRODUCTION
    assert len(alarms("churn")) < len(KINDS)
    # And the next release step of the model (here a canary of version 2) creates them
    approved(stores, "churn")
    step("start_canary", "churn", 2)
    assert set(alarms("churn")) == KINDS


def test_faults_model_alarms_failed_delete_is_repaired_by_retiring_again(stores: Stores, topic: str) -> None:
    # Given the production version withdrawn while DeleteAlarms was refused: the alarms outlived it
    approved(stores, "churn")
    step("promote", "churn", 1)
    with faults.inject("cloudwatch.DeleteAlarms", faults.ACCESS_DENIED, times=100):
        status, _ = retire("churn", 1, withdraw=True)
    assert status == 200 and set(alarms("churn")) == KINDS
    # When the retirement is repeated (it writes nothing the second time)
    status, body = retire("churn", 1, withdraw=True)
    # Then the model's alarms are gone
    assert status == 200 and body["status"] == "RETIRED"
    assert alarms("churn") == {}


def test_faults_model_alarms_crash_propagates_after_the_release_committed(stores: Stores, topic: str) -> None:
    # Given an approved version; When the process dies in the alarm write
    approved(stores, "churn")
    with faults.inject("cloudwatch.PutMetricAlarm", faults.CRASH), pytest.raises(faults.Crash):
        step("promote", "churn", 1)
    # Then the promotion is written, and the workflow's retry of the step ends with the alarms
    assert releases.read_state(get_settings(), "churn").versions[1].status == S.PRODUCTION
    assert step("promote", "churn", 1)["production_version"] == 1
    assert set(alarms("churn")) == KINDS


def test_model_alarms_off_without_a_prefix(stores: Stores) -> None:
    # Given no alarm prefix in the environment (a stack without per-model alarms)
    approved(stores, "churn")
    step("promote", "churn", 1)
    assert model_alarms.sync(get_settings(), "churn", OPS, "check").outcome == "off"
    assert alarms("churn") == {}
