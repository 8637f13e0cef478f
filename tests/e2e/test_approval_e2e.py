"""Approvals on the local cloud (the real template): the lifecycle waits at the approval state;
deciding over signed HTTPS continues it (-> PRODUCTION) or fails it (ApprovalRejected)."""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from functions.logic.routing import bucket
from infra import constants as c
from stepwise.cli import main
from stepwise.commands.data import upload
from stepwise.local.session import LocalSession
from stepwise.target import Target
from tests.e2e.test_lifecycle_e2e import CONTRACT, SPEC, wait_for
from tests.unit.lifecycle_data import classification_table

pytestmark = pytest.mark.slow


def _upload(local: Target, tmp_path: Path, rows: int, name: str) -> None:
    path = tmp_path / name
    buf = io.BytesIO()
    pq.write_table(classification_table(rows), buf)
    path.write_bytes(buf.getvalue())
    uploaded = upload(local, path, "toy", timeout=120)
    assert uploaded.passed, uploaded.report


def _status(local: Target, version: int) -> str:
    reply = local.api("GET", f"/v1/models/toy-model/versions/{version}")
    return str(reply.body.get("status", "")) if reply.ok else ""


def _executions(local: Target) -> list[dict[str, Any]]:
    sf = local.client("stepfunctions")
    arn = local.output(c.OUT_LIFECYCLE_SM_ARN)
    return list(sf.list_executions(stateMachineArn=arn)["executions"])


def test_approval_e2e_wait_decide_release(
    local: Target, local_session: LocalSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a trained version waiting for approval
    assert local.api("PUT", "/v1/specs/toy", SPEC).status == 201
    assert local.api("PUT", "/v1/datasets/toy/contract", CONTRACT).ok
    _upload(local, tmp_path, 600, "one.parquet")
    pending = wait_for(lambda: local.api("GET", "/v1/approvals").body.get("approvals"))
    request = pending[0]
    assert (request["model"], request["version"], request["status"]) == ("toy-model", 1, "PENDING")
    assert _status(local, 1) == "PENDING_APPROVAL"
    assert any(e["status"] == "RUNNING" for e in _executions(local))  # the workflow waits

    # The uploader started the run: the local cloud's S3 notification names it, as S3's do
    assert request["started_by"] == f"AWS:{local.identity}", request
    lineage = local.api("GET", "/v1/models/toy-model/versions/1/lineage")
    assert lineage.ok and f"AWS:{local.identity}" in str(lineage.body), lineage.body
    # When the uploader approves the run its upload started: 403 (four-eyes)
    reply = local.api("POST", "/v1/approvals/toy-model-1/approve", {"reason": "mine"}, identity=local.identity)
    assert reply.status == 403 and "four-eyes" in reply.body["message"], reply.body
    # an empty reason: 400
    assert local.api("POST", "/v1/approvals/toy-model-1/approve", {"reason": " "}, identity="alice").status == 400
    # the CLI lists it, and alice approves with it: recorded with her identity
    endpoint = ["--endpoint", local_session.api.url] if local_session.api else []
    assert main([*endpoint, "approvals"]) == 0
    assert "toy-model" in capsys.readouterr().out
    assert main([*endpoint, "--as", "alice", "approve", "toy-model", "1", "--reason", "gates pass"]) == 0
    assert "APPROVED by arn:aws:iam::123456789012:user/alice (gates pass)" in capsys.readouterr().out
    # a second decision: 409
    assert local.api("POST", "/v1/approvals/toy-model-1/reject", {"reason": "no"}, identity="bob").status == 409

    # Then the execution continues and the version reaches PRODUCTION
    wait_for(lambda: _status(local, 1) == "PRODUCTION")
    models = local.api("GET", "/v1/models").body["models"]
    assert next(m for m in models if m["name"] == "toy-model")["production_version"] == 1
    wait_for(lambda: all(e["status"] != "RUNNING" for e in _executions(local)))
    assert {e["status"] for e in _executions(local)} == {"SUCCEEDED"}

    # Given a second version waiting, its run started over the API by carol (a new spec version on
    # the same data: the same spec version on the same data is the run that already ran)
    assert local.api("PUT", "/v1/specs/toy", {**SPEC, "split": {"holdout_fraction": 0.25, "seed": 2}}).ok
    started = local.api("POST", "/v1/models/toy-model/train", {"spec": "toy", "dataset_version": 1}, identity="carol")
    assert started.body.get("started") is True, started.body
    assert started.status == 202, started.body
    wait_for(lambda: any(a["version"] == 2 for a in local.api("GET", "/v1/approvals").body["approvals"]))
    # When carol decides her own run: 403 (four-eyes)
    reply = local.api("POST", "/v1/approvals/toy-model-2/reject", {"reason": "mine"}, identity="carol")
    assert reply.status == 403 and "four-eyes" in reply.body["message"], reply.body
    # When alice and bob reject it at once (two requests in flight together); Then exactly one
    # decision stands (200) and the other is a 409, the version is REJECTED and the execution fails typed
    with ThreadPoolExecutor(max_workers=2) as pool:
        racing = list(
            pool.map(
                lambda who: local.api(
                    "POST", "/v1/approvals/toy-model-2/reject", {"reason": "not better"}, identity=who
                ),
                ("alice", "bob"),
            )
        )
    assert sorted(r.status for r in racing) == [200, 409], [(r.status, r.body) for r in racing]
    won = next(r for r in racing if r.status == 200)
    assert won.body["status"] == "REJECTED"
    decided = local.api("GET", "/v1/approvals/toy-model-2").body["decision"]["who"]
    assert decided == won.body["decision"]["who"] and decided.split("/")[-1] in ("alice", "bob"), decided
    assert _status(local, 2) == "REJECTED"
    wait_for(lambda: all(e["status"] != "RUNNING" for e in _executions(local)))
    failed = [e for e in _executions(local) if e["status"] == "FAILED"]
    assert len(failed) == 1
    described = local.client("stepfunctions").describe_execution(executionArn=failed[0]["executionArn"])
    assert described.get("error") == "ApprovalRejected", described

    # And with one production version only, rollback has nothing to return to: 409
    body = {"reason": "test", "expected_production_version": 1}
    reply = local.api("POST", "/v1/models/toy-model/rollback", body, identity="alice")
    assert reply.status == 409, reply.body
    assert main([*endpoint, "--as", "alice", "rollback", "toy-model", "--reason", "test"]) == 1
    assert "HTTP 409" in capsys.readouterr().out


# -- a canary whose artifact fails verification never takes production down -------------------
CANARY: dict[str, Any] = {
    "kind": "canary",
    "weight": 0.5,
    "bake_seconds": 45,  # the window in which the test tampers with the candidate and sends traffic
    # "pass" on no data, so only the candidate errors serving counts can fail this check;
    # moto computes no percentiles, hence Maximum
    "check": {"on_no_data": "pass", "latency_stat": "Maximum"},
}
INSTANCE = {"a": 0.3, "b": 4, "c": "red"}


def _predict(local: Target, request_id: str) -> int:
    """One prediction over HTTP; it must be a 200 answered by production (version 1)."""
    reply = local.api("POST", "/v1/models/toy-model/predict", {"instances": [INSTANCE], "request_id": request_id})
    assert (reply.status, reply.body.get("version")) == (200, 1), reply.body
    return 1


def _tamper(local: Target, version: int) -> None:
    uri = local.api("GET", f"/v1/models/toy-model/versions/{version}").body["artifacts"]["onnx"]["uri"]
    bucket, key = uri[5:].split("/", 1)
    local.client("s3").put_object(Bucket=bucket, Key=key, Body=b"not the registered model")


def _approve_next(local: Target, tmp_path: Path, version: int, rows: int) -> str:
    """Upload data, wait for `version` to wait for approval, approve it; returns the execution."""
    _upload(local, tmp_path, rows, f"v{version}.parquet")
    request = wait_for(lambda: (r := local.api("GET", f"/v1/approvals/toy-model-{version}")).ok and r.body)
    assert request["status"] == "PENDING" and _status(local, version) == "PENDING_APPROVAL"
    return str(request["execution"])


def _alias_cache_seconds(local: Target) -> float:
    """How long the inference function may keep serving the aliases it read (its own setting)."""
    for fn in local.client("lambda").list_functions()["Functions"]:
        ttl = fn.get("Environment", {}).get("Variables", {}).get("STEPWISE_ALIAS_CACHE_TTL")
        if ttl:
            return float(ttl)
    raise AssertionError("no function has an alias cache")


def _decide(local: Target, version: int) -> None:
    reply = local.api("POST", f"/v1/approvals/toy-model-{version}/approve", {"reason": "canary"}, identity="alice")
    assert reply.status == 200, reply.body


def _finished(local: Target, execution: str) -> dict[str, Any]:
    sf = local.client("stepfunctions")
    return dict(wait_for(lambda: (d := sf.describe_execution(executionArn=execution))["status"] != "RUNNING" and d))


def _aliases(local: Target) -> tuple[Any, Any]:
    model = next(m for m in local.api("GET", "/v1/models").body["models"] if m["name"] == "toy-model")
    return model["production_version"], model.get("candidate_version")


def _metric_sum(local: Target, name: str, dims: dict[str, str]) -> float:
    now = datetime.now(UTC)
    reply = local.client("cloudwatch").get_metric_data(
        MetricDataQueries=[
            {
                "Id": "m",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "Stepwise",
                        "MetricName": name,
                        "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
                    },
                    "Period": 3600,
                    "Stat": "Sum",
                },
            }
        ],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=5),
    )
    return float(sum(reply["MetricDataResults"][0]["Values"]))


def test_approval_e2e_canary_with_a_bad_artifact_is_refused_or_rolled_back_and_production_answers(
    local: Target, tmp_path: Path
) -> None:
    # Given toy-model version 1 in production (the test above) and a spec that releases by canary
    assert _aliases(local) == (1, None)
    spec = local.api("GET", "/v1/specs/toy").body
    spec = {**spec.get("spec", spec), "release": CANARY}
    assert local.api("PUT", "/v1/specs/toy", spec).ok
    served = _predict(local, "before-0")

    # When version 3 is approved after its artifact was tampered with
    execution = _approve_next(local, tmp_path, 3, 800)
    _tamper(local, 3)
    _decide(local, 3)
    # Then the canary is refused at its start: the execution fails typed, nothing changed
    done = _finished(local, execution)
    assert (done["status"], done.get("error")) == ("FAILED", "IntegrityError"), done
    assert "failed verification" in done.get("cause", "")
    assert _aliases(local) == (1, None) and _status(local, 3) == "APPROVED"
    trail = local.api("GET", "/v1/audit?model=toy-model").body["events"]
    refused = [e for e in trail if e["action"] == "release.refused"]
    assert [(e["version"], e["after"]["step"]) for e in refused] == [(3, "start canary")]
    served += sum(_predict(local, f"after-refusal-{i}") for i in range(5))

    # When version 4 (sound) starts its canary and its artifact is tampered with during the bake
    execution = _approve_next(local, tmp_path, 4, 900)
    _decide(local, 4)
    wait_for(lambda: _aliases(local) == (1, 4))
    _tamper(local, 4)
    time.sleep(_alias_cache_seconds(local) + 1)  # serving has read the canary's aliases by now
    ids = [f"canary-{i}" for i in range(30)]
    to_candidate = sum(bucket("toy-model", rid) < CANARY["weight"] for rid in ids)
    assert to_candidate >= 5
    # Then production answers every request, including those routed to the candidate
    served += sum(_predict(local, rid) for rid in ids)
    # and the candidate's failures are its errors in CloudWatch, where the check reads them
    candidate = {"service": "stepwise", "model": "toy-model", "version": "4"}
    assert _metric_sum(local, "ServerErrors", candidate) == to_candidate
    # so the check fails and rolls the canary back; production is untouched
    done = _finished(local, execution)
    assert (done["status"], done.get("error")) == ("FAILED", "CanaryCheckFailed"), done
    assert "error rate 100.00%" in done.get("cause", "")
    assert _aliases(local) == (1, None) and _status(local, 4) == "ROLLED_BACK"
    served += sum(_predict(local, f"after-rollback-{i}") for i in range(5))
    assert served == 41

    # And the alarm signal: the rollback's CanaryRollbacks data point, which the canary alarm
    # (stored in moto's CloudWatch, not evaluated there) watches and sends to the alarm topic
    assert _metric_sum(local, "CanaryRollbacks", {"service": "stepwise"}) == 1
    alarms = local.client("cloudwatch").describe_alarms()["MetricAlarms"]
    (alarm,) = [a for a in alarms if a.get("MetricName") == "CanaryRollbacks"]
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "stepwise"}] and alarm["Threshold"] == 1
    assert alarm["AlarmActions"] == [local.output(c.OUT_ALARM_TOPIC_ARN)]
    # and the refused artifact counted for the integrity alarm too
    assert _metric_sum(local, "IntegrityFailures", {"service": "stepwise"}) >= 1
