from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from functions.logic.drift import check_drift
from functions.logic.profile import build_reference_profile
from stepwise.cli import main
from stepwise.commands.drift import parse_window
from stepwise.target import ApiReply
from tests.unit.test_drift import FEATURES, make_table

END = datetime(2026, 11, 26, 12, tzinfo=UTC)


@pytest.mark.parametrize(("text", "hours"), [("24h", 24.0), ("90m", 1.5), ("2d", 48.0), ("6", 6.0)])
def test_drift_cli_window_parses_units(text: str, hours: float) -> None:
    assert parse_window(text) == hours


@pytest.mark.parametrize("text", ["", "h", "-1h", "40d", "1w"])
def test_drift_cli_window_refuses_nonsense(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_window(text)


class _S3:
    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        import io

        return {"Body": io.BytesIO(self.objects[f"s3://{Bucket}/{Key}"])}


class _Target:
    def __init__(self, objects: dict[str, bytes]) -> None:
        self.s3 = _S3(objects)
        self.calls: list[tuple[str, str, Any]] = []

    def api(self, method: str, path: str, body: Any = None) -> ApiReply:
        self.calls.append((method, path, body))
        return ApiReply(
            202,
            {
                "check_id": "abc",
                "model": "churn",
                "window_start": "2026-11-25T12:00:00Z",
                "window_end": "2026-11-26T12:00:00Z",
                "report_json": "s3://art/reports/drift/churn/x-abc.json",
                "report_html": "s3://art/reports/drift/churn/x-abc.html",
            },
        )

    def client(self, service: str) -> _S3:
        return self.s3


def test_drift_cli_prints_the_verdict_and_writes_the_html(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a finished check whose reports are in the (fake) artifacts bucket
    profile = build_reference_profile(make_table(5_000, 1), FEATURES)
    report = check_drift(profile, [make_table(5_000, 2, "mean")], model="churn", version=3, check_id="abc")
    target = _Target(
        {
            "s3://art/reports/drift/churn/x-abc.json": report.model_dump_json().encode(),
            "s3://art/reports/drift/churn/x-abc.html": b"<html></html>",
        }
    )
    monkeypatch.setattr("stepwise.cli.resolve", lambda *a: target)
    monkeypatch.chdir(tmp_path)
    # When the command runs
    code = main(["drift", "churn", "--window", "6h", "--no-retrain", "--open"])
    # Then it posted the window, printed the drifted feature and wrote the HTML
    out = capsys.readouterr().out
    assert code == 0
    assert target.calls == [("POST", "/v1/models/churn/drift", {"window_hours": 6.0, "retrain": False})]
    assert "x3" in out and "drift" in out
    assert (tmp_path / "drift-churn-abc.html").read_bytes() == b"<html></html>"
