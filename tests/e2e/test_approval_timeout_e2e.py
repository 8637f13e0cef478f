"""An approval nobody decides, on the local cloud with a short approval timeout: the version becomes
REJECTED (expired) and the execution fails with ApprovalExpired."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from infra import constants as c
from stepwise.commands.data import upload
from stepwise.local.session import LocalSession
from stepwise.target import Target
from tests.e2e.test_lifecycle_e2e import CONTRACT, SPEC, wait_for
from tests.unit.lifecycle_data import classification_table

pytestmark = pytest.mark.slow
TIMEOUT_SECONDS = 5


@pytest.fixture(scope="module")
def local_session() -> Iterator[LocalSession]:
    session = LocalSession(port=0, context={"stepwise:approval_timeout_seconds": TIMEOUT_SECONDS})
    session.start()
    yield session
    session.stop()


def test_approval_e2e_timeout_rejects_as_expired(local: Target, tmp_path: Path) -> None:
    # Given a trained version whose approval nobody decides
    assert local.api("PUT", "/v1/specs/toy", SPEC).status == 201
    assert local.api("PUT", "/v1/datasets/toy/contract", CONTRACT).ok
    path = tmp_path / "toy.parquet"
    buf = io.BytesIO()
    pq.write_table(classification_table(600), buf)
    path.write_bytes(buf.getvalue())
    assert upload(local, path, "toy", timeout=120).passed
    # When the approval's timeout passes
    version = wait_for(
        lambda: (
            (r := local.api("GET", "/v1/models/toy-model/versions/1")).ok and r.body["status"] == "REJECTED" and r.body
        )
    )
    # Then the version is REJECTED (expired), the request EXPIRED, and the execution failed typed
    assert any("approval expired" in reason for reason in version["reasons"]), version["reasons"]
    assert local.api("GET", "/v1/approvals/toy-model-1").body["status"] == "EXPIRED"
    assert local.api("GET", "/v1/approvals").body["approvals"] == []
    sf = local.client("stepfunctions")
    machine = local.output(c.OUT_LIFECYCLE_SM_ARN)
    done = wait_for(
        lambda: [e for e in sf.list_executions(stateMachineArn=machine)["executions"] if e["status"] != "RUNNING"]
    )
    described = sf.describe_execution(executionArn=done[0]["executionArn"])
    assert (described["status"], described.get("error")) == ("FAILED", "ApprovalExpired"), described
    # and a late decision is 410
    late = local.api("POST", "/v1/approvals/toy-model-1/approve", {"reason": "late"}, identity="alice")
    assert late.status == 410
