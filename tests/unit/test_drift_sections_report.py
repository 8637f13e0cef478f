"""The three sections (inputs, outputs, data quality) and the overall verdict in the HTML report and
in `stepwise drift`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from functions.logic.drift_report import render_html
from functions.logic.drift_sections import check_window
from functions.models.contracts import ColumnSpec, DataContract
from functions.models.drift import DriftReport
from stepwise.cli import main
from tests.unit.test_drift_cli import _Target
from tests.unit.test_drift_sections import _profile, _window

CONTRACT = DataContract(
    columns=[ColumnSpec(name="x", type="float", min=-6.0, max=6.0), ColumnSpec(name="c", type="category")]
)


def _report() -> DriftReport:
    # x shifted by 0.5 (outputs move), and about 3% of rows above the contract's max of 6.0
    table = _window("regression", 5_000, 2, 0.5)
    x = table.column("x").to_numpy().copy()
    x[np.arange(0, 5_000, 33)] = 7.5
    table = table.set_column(0, "x", pa.array(x))
    report = check_window(
        _profile("regression", 1), [table], model="churn", version=1, contract=CONTRACT, dataset="churn"
    )
    return report.model_copy(update={"check_id": "abc"})


def test_drift_report_html_has_the_three_sections_and_the_overall_verdict() -> None:
    report = _report()
    html = render_html(report)
    assert report.overall is not None and report.overall.verdict == "fail"
    assert "Outputs (prediction drift)" in html and "Data quality" in html and "<h2>Inputs" in html
    assert "range:x" in html and "r0, r33, r66" in html and "7.5" in html
    assert "outputs: drift" in html and "data quality: fail" in html


def test_drift_cli_prints_each_section_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    report = _report()
    target = _Target({"s3://art/reports/drift/churn/x-abc.json": report.model_dump_json().encode()})
    monkeypatch.setattr("stepwise.cli.resolve", lambda *a: target)
    monkeypatch.chdir(tmp_path)
    assert main(["drift", "churn", "--window", "6h"]) == 0
    out = capsys.readouterr().out
    assert "overall: fail" in out and "inputs: drift" in out
    assert "outputs: drift" in out and "prediction" in out
    assert "data quality: fail" in out and "range:x" in out and "FAIL" in out and "r0, r33, r66" in out


def test_drift_metrics_publish_output_drift_and_data_quality(capsys: pytest.CaptureFixture[str]) -> None:
    import json
    from datetime import UTC, datetime

    from functions.handlers.drift import publish_metrics
    from functions.models.drift import DriftCheckResult

    # Given a report whose outputs drifted and whose data quality failed (range:x on ~3% of rows)
    report = _report()
    now = datetime.now(UTC)
    result = DriftCheckResult(
        check_id="abc",
        model="churn",
        version=1,
        verdict=report.verdict,
        reason=report.reason,
        row_count=report.row_count,
        drift_share=report.drift_share,
        window_start=now,
        window_end=now,
        report_json="s3://a/b.json",
        report_html="s3://a/b.html",
    )
    capsys.readouterr()
    # When the handler publishes its metrics
    publish_metrics(result, report)
    # Then the service-level counts the alarms watch, and the per-model violation rate, are in the EMF
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    values = {k: v for blob in blobs for k, v in blob.items() if not k.startswith("_")}
    assert values["OutputDriftedModels"] in ([1.0], 1.0)
    assert values["DataQualityFailures"] in ([1.0], 1.0)
    rate = values["DataQualityViolationRate"]
    assert (rate[0] if isinstance(rate, list) else rate) == pytest.approx(100 * 152 / 5_000)
    scores = [b for b in blobs if b.get("Feature") == "prediction"]
    assert scores and scores[0]["Model"] == "churn"
