"""`stepwise predict` against the real inference handler (in-process, on moto)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from functions.handlers import predict
from functions.logic.serving import Serving
from functions.models.settings import get_settings
from stepwise.cli import main
from stepwise.commands.predict import cell, rows_from_json
from stepwise.target import ApiReply, Target
from tests.integration.conftest import Stores
from tests.integration.test_predict_support import (
    Context,
    breast_cancer_classifier,
    predict_event,
    put_model,
    put_version,
)

NAME = "breast-cancer"


def printed(capsys: pytest.CaptureFixture[str]) -> str:
    """The CLI's stdout without the handler's metric lines (EMF JSON, which Lambda writes too)."""
    out = capsys.readouterr().out
    return "".join(line for line in out.splitlines(keepends=True) if not line.startswith('{"_aws"'))


class HandlerTarget(Target):
    """Sends the CLI's API calls to the inference handler in this process, as API Gateway would."""

    calls: list[Any]

    def api(self, method: str, path: str, body: Any = None, *, identity: str | None = None) -> ApiReply:
        name = path.split("/")[3]
        self.calls.append(body)
        reply = predict.lambda_handler(predict_event(name, body), Context())
        return ApiReply(status=reply["statusCode"], body=json.loads(reply["body"]))


@pytest.fixture
def target(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> Iterator[HandlerTarget]:
    put_version(stores, NAME, 1, breast_cancer_classifier())
    put_model(stores, NAME, production=1)
    predict.reset(Serving(get_settings()))
    handler_target = HandlerTarget(api_url="http://local", outputs={})
    handler_target.calls = []
    monkeypatch.setattr("stepwise.cli.resolve", lambda *a: handler_target)
    yield handler_target
    predict.reset(None)


def test_cli_predict_json_row_prints_a_table(target: HandlerTarget, capsys: pytest.CaptureFixture[str]) -> None:
    row = breast_cancer_classifier().instances()[0]
    assert main(["predict", NAME, "--json", json.dumps(row), "--request-id", "cli-1"]) == 0
    out = printed(capsys)
    assert "version" in out and "cli-1" in out
    assert out.splitlines()[2].split()[1] == "1"  # the version column of the first row


def test_cli_predict_csv_file_is_batched_and_printed_as_csv(
    target: HandlerTarget, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = breast_cancer_classifier()
    rows = model.instances(0, 25)
    path = tmp_path / "rows.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=model.names)
        writer.writeheader()
        writer.writerows(rows)
    assert main(["predict", NAME, "--file", str(path), "--batch-size", "10", "--format", "csv"]) == 0
    assert [len(b["instances"]) for b in target.calls] == [10, 10, 5]
    lines = list(csv.DictReader(io.StringIO(printed(capsys))))
    assert len(lines) == 25
    assert [int(r["prediction"]) for r in lines] == model.expected[:25]
    assert {"version", "probability_0", "probability_1"} <= set(lines[0])


def test_cli_predict_reports_the_servers_validation_errors(
    target: HandlerTarget, capsys: pytest.CaptureFixture[str]
) -> None:
    row = breast_cancer_classifier().instances()[0] | {"colour": 1}
    assert main(["predict", NAME, "--json", json.dumps(row)]) == 1
    err = capsys.readouterr().err
    assert "HTTP 400" in err and "instances.0.colour" in err


def test_cli_predict_parses_cells_and_json_shapes() -> None:
    assert [cell(v, False) for v in ("1", "2.5", "", "true", "x", "nan")] == [1, 2.5, None, True, "x", "nan"]
    assert cell("007", True) == "007"
    assert rows_from_json('{"instances": [{"a": 1}], "request_id": "r"}') == ([{"a": 1}], "r")
    assert rows_from_json('[{"a": 1}, {"a": 2}]') == ([{"a": 1}, {"a": 2}], None)
