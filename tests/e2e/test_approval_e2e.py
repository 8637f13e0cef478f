"""Approvals on the local cloud (the real template): the lifecycle waits at the approval state;
deciding over signed HTTPS continues it (-> PRODUCTION) or fails it (ApprovalRejected)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

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

    # When the identity that started the run approves it: 403 (four-eyes)
    trainer = request["started_by"].rsplit("/", 1)[-1]  # locally "s3:upload": moto's events name nobody
    assert trainer
    reply = local.api("POST", "/v1/approvals/toy-model-1/approve", {"reason": "mine"}, identity=trainer)
    assert reply.status == 403, (trainer, reply.body)
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

    # Given a second version waiting; When rejected; Then REJECTED and the execution fails typed
    _upload(local, tmp_path, 700, "two.parquet")
    wait_for(lambda: any(a["version"] == 2 for a in local.api("GET", "/v1/approvals").body["approvals"]))
    reply = local.api("POST", "/v1/approvals/toy-model-2/reject", {"reason": "not better"}, identity="alice")
    assert reply.status == 200 and reply.body["status"] == "REJECTED"
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
