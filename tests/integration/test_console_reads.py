"""The API reads the console's pages need, on moto through the real API handler: a model's drift
checks (newest first), one check with its verdict per section and its HTML report, and a dataset's
validation reports (passed and quarantined uploads, with failed rules and example rows)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from functions.dal import monitoring
from functions.models.drift import (
    DataQuality,
    DriftConfig,
    DriftReport,
    ModelVerdict,
    Overall,
    PerformanceMetric,
    PerformanceReport,
)
from tests.integration.conftest import Stores
from tests.integration.release_support import register
from tests.integration.test_validate_api_routes import call
from tests.integration.test_validate_handler import good_columns, invoke, parquet_bytes, upload

MARKUP = '<img src=x onerror="alert(1)">'


def _check(stores: Stores, check_id: str, at: datetime, verdict: ModelVerdict, share: float) -> None:
    report = DriftReport(
        check_id=check_id,
        model="churn",
        version=1,
        window_start=at - timedelta(hours=1),
        window_end=at,
        created_at=at,
        verdict=verdict,
        reason=f"{verdict.value} in the window",
        row_count=500,
        drift_share=share,
        config=DriftConfig(),
        data_quality=DataQuality(verdict="pass", reason="every rule holds"),
        overall=Overall(verdict="fail" if verdict == ModelVerdict.DRIFT else "pass", reason="overall"),
        performance=PerformanceReport(
            verdict="ok", reason="labels joined", metrics=[PerformanceMetric(name="accuracy", value=1 - share)]
        ),
    )
    json_uri = monitoring.put(
        stores.artifacts_bucket,
        f"reports/drift/churn/{check_id}.json",
        report.model_dump_json().encode(),
        "application/json",
    )
    html = f"<html><body><h1>Report {check_id}</h1><p>{MARKUP}</p></body></html>"
    html_uri = monitoring.put(
        stores.artifacts_bucket, f"reports/drift/churn/{check_id}.html", html.encode(), "text/html"
    )
    monitoring.put_check_summary(stores.metadata_table, report, json_uri, html_uri)


def test_console_reads_drift_checks_newest_first_with_sections_and_report(stores: Stores) -> None:
    # Given a model with two stored checks
    register(stores, "churn")
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    _check(stores, "first", now - timedelta(hours=2), ModelVerdict.NO_DRIFT, 0.0)
    _check(stores, "second", now, ModelVerdict.DRIFT, 0.5)
    # When the checks are listed
    status, listed = call("GET", "/v1/models/churn/drift/checks")
    # Then the newest comes first, with its verdict and drift share
    assert status == 200, listed
    assert [(c["check_id"], c["verdict"], c["drift_share"], c["performance_value"]) for c in listed["checks"]] == [
        ("second", "drift", 0.5, 0.5),
        ("first", "no_drift", 0.0, 1.0),
    ]
    assert call("GET", "/v1/models/churn/drift/checks", query={"limit": "1"})[1]["checks"][0]["check_id"] == "second"
    # When one check is read: its verdict per section (overall last) and its HTML report as text
    status, detail = call("GET", "/v1/models/churn/drift/checks/second")
    assert status == 200, detail
    assert [(s["section"], s["verdict"]) for s in detail["sections"]] == [
        ("inputs", "drift"),
        ("data_quality", "pass"),
        ("performance", "ok"),
        ("overall", "fail"),
    ]
    assert MARKUP in detail["html"] and detail["check"]["window_end"].startswith("2026-12-01T12:00")


def test_console_reads_drift_unknown_model_check_or_bad_id_are_json_errors(stores: Stores) -> None:
    register(stores, "churn")
    assert call("GET", "/v1/models/nosuch/drift/checks")[0] == 404
    status, body = call("GET", "/v1/models/churn/drift/checks/nosuch")
    assert status == 404 and "nosuch" in body["message"]
    status, body = call("GET", "/v1/models/churn/drift/checks/bad%20id!")
    assert status == 400 and body["details"][0]["field"] == "path.check_id", body
    assert call("GET", "/v1/models/churn/drift/checks", query={"limit": "0"})[0] == 400


def test_console_reads_dataset_reports_name_quarantined_uploads_with_failed_rules(wine: Stores) -> None:
    # Given one good upload and one with a negative alcohol and an unexpected column named with markup
    assert invoke(upload(wine, "raw/wine/good.parquet", parquet_bytes(good_columns())))["verdict"] == "passed"
    bad = {**good_columns(), "alcohol": [12.5, -3.0, None, 14.1], MARKUP: [1, 2, 3, 4]}
    assert invoke(upload(wine, "raw/wine/bad.parquet", parquet_bytes(bad)))["verdict"] == "failed"
    # When the dataset's reports are read
    status, body = call("GET", "/v1/datasets/wine/reports")
    # Then both are there, the quarantined one with its failed rules, example rows and the column name as stored
    assert status == 200, body
    assert sorted(r["quarantined"] for r in body["reports"]) == [False, True]
    quarantined = next(r for r in body["reports"] if r["quarantined"])
    failed = [rule for rule in quarantined["report"]["rules"] if not rule["passed"]]
    assert any(rule["column"] == "alcohol" and rule["examples"][0]["row"] == 1 for rule in failed), failed
    assert MARKUP in str(failed)
    assert quarantined["uri"].startswith(f"s3://{wine.artifacts_bucket}/reports/validation/wine/")
    assert len(call("GET", "/v1/datasets/wine/reports", query={"limit": "1"})[1]["reports"]) == 1


def test_console_reads_dataset_reports_of_an_unknown_dataset_is_404(stores: Stores) -> None:
    assert call("GET", "/v1/datasets/nosuch/reports")[0] == 404
    assert call("GET", "/v1/datasets/wine/reports", query={"limit": "101"})[0] == 400
