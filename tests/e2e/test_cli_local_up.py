"""`stepwise local up` in its own process, used by other `stepwise` processes, as a person would."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    return port


@pytest.fixture(scope="module")
def local_up() -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stepwise", "local", "up", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    lines: list[str] = []
    deadline = time.monotonic() + 300
    assert proc.stdout is not None
    ready = False
    while time.monotonic() < deadline and not ready:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        ready = line.startswith(f"API: {url}")
    if ready:  # the console's line follows the API's
        lines.append(proc.stdout.readline())
    if not ready or not lines[-1].startswith(f"Console: {url}/console/"):
        proc.kill()
        pytest.fail("local up did not print its API and Console lines:\n" + "".join(lines[-40:]))
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_local_up_serves_health_to_plain_http(local_up: str) -> None:
    with urllib.request.urlopen(local_up + "/v1/health", timeout=30) as resp:
        body = json.loads(resp.read())
    assert resp.status == 200 and body["status"] == "ok"


def test_local_up_serves_the_console_with_its_csp(local_up: str) -> None:
    with urllib.request.urlopen(local_up + "/console/", timeout=30) as resp:
        body = resp.read()
    assert resp.status == 200 and b"js/app.js" in body
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]


def test_other_stepwise_processes_find_the_local_cloud_by_endpoint(local_up: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STEPWISE_ENDPOINT": local_up}
    result = subprocess.run(
        [sys.executable, "-m", "stepwise", "status"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "AWS::DynamoDB::Table" in result.stdout
    assert "health: HTTP 200" in result.stdout
