"""`stepwise contract/upload/datasets` against the handlers on moto.

The target signs nothing: its API calls go to the API Lambda's handler in-process, and its S3
client delivers the ObjectCreated notification to the validation handler after each put, as S3
does (the local cloud does the same from the template; tests/e2e cover that path).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

from functions.handlers import api, validate
from infra import constants as c
from stepwise.cli import main
from stepwise.demo_data import BAD_RULES, write_demo_files
from stepwise.target import ApiReply, Target
from tests.conftest import load_event
from tests.integration.conftest import Stores
from tests.integration.test_validate_api_routes import ApiContext
from tests.integration.test_validate_handler import Context, s3_event


class NotifyingS3:
    """boto3's S3 client; a put under raw/ is followed by its notification to the validation handler."""

    def __init__(self) -> None:
        self._s3 = boto3.client("s3")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)

    def put_object(self, **kwargs: Any) -> dict[str, Any]:
        reply = self._s3.put_object(**kwargs)
        if kwargs["Key"].startswith("raw/"):
            event = s3_event(kwargs["Bucket"], kwargs["Key"], reply["VersionId"], reply["ETag"].strip('"'), 0)
            validate.lambda_handler(event, Context())
        return reply  # type: ignore[no-any-return]


class InProcessTarget(Target):
    def client(self, service: str) -> Any:
        return NotifyingS3() if service == "s3" else boto3.client(service)

    def api(self, method: str, path: str, body: Any = None, *, identity: str | None = None) -> ApiReply:
        url = urlsplit(path)
        event = copy.deepcopy(load_event("apigw/health.json"))
        query = dict(p.split("=", 1) for p in url.query.split("&")) if url.query else None
        event.update(
            httpMethod=method,
            path=url.path,
            resource=url.path,
            body=None if body is None else json.dumps(body),
            queryStringParameters=query,
            multiValueQueryStringParameters={k: [v] for k, v in (query or {}).items()} or None,
        )
        reply = api.lambda_handler(event, ApiContext())
        return ApiReply(status=reply["statusCode"], body=json.loads(reply["body"]))


@pytest.fixture
def cli(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> Any:
    target = InProcessTarget(
        api_url="http://in-process",
        outputs={c.OUT_DATA_BUCKET: stores.data_bucket, c.OUT_ARTIFACTS_BUCKET: stores.artifacts_bucket},
    )
    monkeypatch.setattr("stepwise.cli.resolve", lambda *a, **k: target)
    return lambda *argv: main(list(argv))


def test_cli_demo_files_good_registers_and_bad_is_quarantined(
    cli: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the wine demo files and their contract put through the CLI
    files = write_demo_files(tmp_path)
    assert cli("contract", "put", "wine", str(files.contract_path)) == 0
    assert "contract wine version 1 stored" in capsys.readouterr().out
    # When the good file and the bad file are uploaded
    assert cli("upload", str(files.good), "--dataset", "wine") == 0
    good_out = capsys.readouterr().out
    assert cli("upload", str(files.bad), "--dataset", "wine") == 1
    bad_out = capsys.readouterr().out
    # Then the good one is wine@1 and the bad one is quarantined naming its four rules
    assert "verdict: passed" in good_out and "registered wine@1: 178 rows" in good_out
    assert "verdict: failed" in bad_out and "quarantined under quarantine/wine/" in bad_out
    for rule in BAD_RULES:
        assert f"FAIL {rule}:" in bad_out
    # and `stepwise datasets wine` shows both
    assert cli("datasets", "wine") == 0
    listing = capsys.readouterr().out
    assert "wine@1" in listing and "quarantined" in listing and "quarantine/wine/wine-bad.parquet" in listing
    assert cli("datasets") == 0
    assert "wine" in capsys.readouterr().out


def test_cli_contract_put_refuses_bad_contract_with_field(
    cli: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"columns": [{"name": "x", "type": "decimal"}]}))
    with pytest.raises(SystemExit) as refused:
        cli("contract", "put", "wine", str(path))
    assert "columns.0.type" in str(refused.value.code)


def test_cli_contract_show_prints_the_requested_version(
    cli: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = write_demo_files(tmp_path)
    cli("contract", "put", "wine", str(files.contract_path))
    cli("contract", "put", "wine", str(files.contract_path))
    capsys.readouterr()
    assert cli("contract", "show", "wine", "--version", "1") == 0
    out = capsys.readouterr().out
    assert out.startswith("contract wine version 1") and '"key": "id"' in out
    assert cli("contract", "show", "nosuch") == 1


def test_demo_data_steps_register_one_version_and_quarantine_one(cli: Any, tmp_path: Path) -> None:
    # Given the demo's data steps and a context like stepwise/demo.py's
    from stepwise.cli import resolve  # the fixture's in-process target
    from stepwise.demo_data import data_steps

    class Ctx:
        target = resolve()
        state: dict[str, Any] = {}
        said: list[str] = []

        def say(self, text: str) -> None:
            self.said.append(text)

    ctx = Ctx()
    # When every step runs
    for _, step in data_steps(tmp_path):
        step(ctx)
    # Then one version is registered and the bad file is quarantined
    assert ctx.state["wine_version"] == 1
    assert any("quarantined under quarantine/wine/" in s for s in ctx.said)
