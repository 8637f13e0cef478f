from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from functions.dal import artifacts, monitoring
from functions.dal import audit as audit_dal
from functions.dal import registry as registry_dal
from functions.handlers import drift as drift_handler
from functions.logic import drift_check
from functions.logic.profile import build_reference_profile
from functions.logic.retraining import TrainingTarget
from functions.models.drift import DriftCheckRequest, DriftReport, ModelVerdict, RetrainingPolicy
from functions.models.errors import NotFound
from functions.models.registry import Feature, ModelRecord, ModelVersion, VersionStatus
from functions.models.settings import get_settings
from tests.integration.conftest import Stores
from tests.lambda_context import FakeContext

FEATURES = [Feature(name="x", type="float"), Feature(name="y", type="float"), Feature(name="c", type="category")]
NOW = datetime(2026, 11, 26, 12, 30, tzinfo=UTC)


class Context(FakeContext):
    """The drift function's context."""

    function = "drift"


def _rows(n: int, seed: int, shift: float = 0.0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "x": rng.normal(size=n) + shift,
            "y": rng.normal(size=n),
            "c": pa.array(np.array(["a", "b", "c"])[rng.choice(3, size=n, p=[0.2, 0.5, 0.3])]),
        }
    )


def _register(stores: Stores, model: str = "churn", with_profile: bool = True) -> None:
    now = NOW - timedelta(days=1)
    arts = {}
    if with_profile:
        profile = build_reference_profile(_rows(5_000, 1), FEATURES).to_bytes()
        arts["profile"] = artifacts.put_artifact(stores.artifacts_bucket, f"models/{model}/1/profile.json", profile)
    version = ModelVersion(
        model=model,
        version=1,
        status=VersionStatus.PRODUCTION,
        created_at=now,
        updated_at=now,
        task="regression",
        features=FEATURES,
        target="t",
        artifacts=arts,
        spec_name=f"{model}-spec",
        dataset=model,
        dataset_version=1,
    )
    record = ModelRecord(
        name=model,
        latest_version=1,
        production_version=1,
        candidate_weight=0.0,
        revision=0,
        created_at=now,
        updated_at=now,
    )
    ddb = boto3.client("dynamodb")
    ddb.put_item(TableName=stores.registry_table, Item=registry_dal.version_item(version))
    ddb.put_item(TableName=stores.registry_table, Item=registry_dal.model_item(record))


def _capture(stores: Stores, hour: datetime, table: pa.Table, extra_lines: list[str] | None = None) -> None:
    rows = table.to_pylist()
    lines = [
        json.dumps(
            {
                "request_id": f"r{i}",
                "model": "churn",
                "version": 1,
                "variant": "production",
                "time": (hour + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "features": row,
                "prediction": 0.5,
                "probabilities": None,
            }
        )
        for i, row in enumerate(rows)
    ] + (extra_lines or [])
    key = f"{monitoring.capture_prefix('churn', hour)}{int(hour.timestamp() * 1000)}-abc.jsonl.gz"
    boto3.client("s3").put_object(Bucket=stores.data_bucket, Key=key, Body=gzip.compress("\n".join(lines).encode()))


def _fake_start(calls: list[TrainingTarget]) -> Any:
    def starter(settings: object) -> Any:
        def start(target: TrainingTarget) -> tuple[str, bool]:
            calls.append(target)
            return f"arn:aws:states:us-east-1:123456789012:execution:lifecycle:run-{len(calls)}", True

        return start

    return starter


def test_drift_check_compacts_checks_reports_and_decides(
    stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a model with a profile, shifted captures in a closed hour (with one bad line) and the open hour
    _register(stores)
    _capture(stores, datetime(2026, 11, 26, 10, tzinfo=UTC), _rows(3_000, 2, shift=0.5), ['{"broken": '])
    _capture(stores, datetime(2026, 11, 26, 12, tzinfo=UTC), _rows(1_000, 3, shift=0.5))
    monkeypatch.setattr(drift_check, "_training_target", lambda s, v: TrainingTarget("churn-spec", "churn", 4))
    calls: list[TrainingTarget] = []
    req = DriftCheckRequest(model="churn", window_hours=3, end=NOW)
    # When the check runs
    result, report = drift_check.run_drift_check(
        req, get_settings(), workdir=tmp_path, now=NOW, starter=_fake_start(calls)
    )
    # Then x drifts, rows of both hours were read, the bad line is counted
    assert result.verdict == ModelVerdict.DRIFT and result.drifted_features == ["x"]
    assert result.row_count == 4_000 and result.rejected_rows == 1 and result.hours_compacted == 1
    s3 = boto3.client("s3")
    # the closed hour is compacted once (with its rejected line kept aside), the open hour is not
    hour10 = datetime(2026, 11, 26, 10, tzinfo=UTC)
    head = s3.head_object(Bucket=stores.data_bucket, Key=monitoring.compacted_key("churn", hour10))
    assert head["Metadata"]["rejected-rows"] == "1"
    rejected = s3.get_object(Bucket=stores.data_bucket, Key=monitoring.rejected_key("churn", hour10))["Body"].read()
    assert gzip.decompress(rejected).rstrip(b"\n") == b'{"broken": '
    compacted = s3.get_object(Bucket=stores.data_bucket, Key=monitoring.compacted_key("churn", hour10))["Body"].read()
    assert pq.read_table(io.BytesIO(compacted)).num_rows == 3_000
    assert monitoring.head_metadata(stores.data_bucket, monitoring.compacted_key("churn", NOW)) is None
    # the reports are in the artifacts bucket, the summary in the metadata table
    key = result.report_json.split("/", 3)[3]
    stored = DriftReport.model_validate_json(s3.get_object(Bucket=stores.artifacts_bucket, Key=key)["Body"].read())
    assert stored == report
    html = s3.get_object(Bucket=stores.artifacts_bucket, Key=result.report_html.split("/", 3)[3])
    assert html["ContentType"].startswith("text/html") and b"<svg" in html["Body"].read()
    assert monitoring.recent_checks(stores.metadata_table, "churn")[0]["verdict"] == "drift"
    # retraining started once and was recorded
    assert result.retraining is not None and result.retraining.started and len(calls) == 1

    # When a second check runs inside the cooldown
    again, _ = drift_check.run_drift_check(
        DriftCheckRequest(model="churn", window_hours=3, end=NOW, policy=RetrainingPolicy(cooldown_hours=24)),
        get_settings(),
        workdir=tmp_path,
        now=NOW + timedelta(hours=1),
        starter=_fake_start(calls),
    )
    # Then hour 10 is read as compacted (its rejected count from the object's metadata), hour 12, now
    # closed, is compacted; and the decision is a skip with the reason
    assert again.hours_compacted == 1 and again.rejected_rows == 1 and again.row_count == 4_000
    assert again.retraining is not None and again.retraining.action == "skip"
    assert "cooldown" in again.retraining.reason and len(calls) == 1
    decisions = monitoring.recent_decisions(stores.metadata_table, "churn")
    assert [d.action for d in decisions] == ["skip", "start"]
    # and both decisions are in the audit trail, with their reasons
    audited = [
        e for e in audit_dal.list_events(stores.metadata_table, target="model/churn") if "retraining" in e.action
    ]
    assert [e.action for e in audited] == ["retraining.start", "retraining.skip"]
    assert "cooldown" in audited[-1].reason


def test_drift_check_empty_window_writes_a_no_data_report(stores: Stores, tmp_path: Path) -> None:
    _register(stores)
    result, report = drift_check.run_drift_check(
        DriftCheckRequest(model="churn", window_hours=2, end=NOW), get_settings(), workdir=tmp_path, now=NOW
    )
    assert result.verdict == ModelVerdict.NO_DATA and report.row_count == 0
    assert result.retraining is None
    assert monitoring.recent_checks(stores.metadata_table, "churn")[0]["verdict"] == "no_data"


def test_drift_check_without_profile_is_not_found(stores: Stores, tmp_path: Path) -> None:
    _register(stores, with_profile=False)
    with pytest.raises(NotFound, match="reference profile"):
        drift_check.run_drift_check(DriftCheckRequest(model="churn"), get_settings(), workdir=tmp_path, now=NOW)


def test_drift_check_tampered_profile_is_refused(stores: Stores, tmp_path: Path) -> None:
    _register(stores)
    boto3.client("s3").put_object(Bucket=stores.artifacts_bucket, Key="models/churn/1/profile.json", Body=b"{}")
    with pytest.raises(Exception, match="sha256"):
        drift_check.run_drift_check(DriftCheckRequest(model="churn"), get_settings(), workdir=tmp_path, now=NOW)


def test_drift_handler_schedule_checks_every_production_model(stores: Stores) -> None:
    # Given two models, one without a profile, and captures of the current hour for the first
    _register(stores, "churn")
    _register(stores, "fraud", with_profile=False)
    now = datetime.now(UTC)
    _capture(stores, now.replace(minute=0, second=0, microsecond=0), _rows(1_500, 5))
    # When the schedule fires
    reply = drift_handler.lambda_handler({"all_models": True, "window_hours": 1}, Context())
    # Then churn is checked and fraud's problem is reported without stopping the run
    assert [r["model"] for r in reply["results"]] == ["churn"]
    assert reply["results"][0]["verdict"] == "no_drift" and reply["results"][0]["row_count"] == 1_500
    assert reply["errors"][0]["model"] == "fraud" and reply["errors"][0]["error"] == "NotFound"


def test_drift_handler_on_demand_returns_the_result(stores: Stores) -> None:
    _register(stores)
    reply = drift_handler.lambda_handler({"model": "churn", "window_hours": 24, "retrain": False}, Context())
    assert reply["verdict"] == "no_data" and reply["report_html"].endswith(".html")


def test_drift_route_starts_an_async_check(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a registered model and the drift function's name in the API's environment
    from functions.handlers import api
    from tests.conftest import load_event

    _register(stores)
    monkeypatch.setenv("STEPWISE_DRIFT_FUNCTION", "stepwise-drift")
    get_settings.cache_clear()
    invoked: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(monitoring, "invoke_async", lambda name, payload: invoked.append((name, payload)))
    # When the route is called
    reply = api.lambda_handler(load_event("apigw/drift.json"), Context())
    # Then it answers 202 with the report locations and invoked the drift function with a valid request
    assert reply["statusCode"] == 202
    body = json.loads(reply["body"])
    (name, payload) = invoked[0]
    req = DriftCheckRequest.model_validate(payload)
    assert name == "stepwise-drift" and req.model == "churn" and req.window_hours == 24 and not req.retrain
    assert req.requested_by == "arn:aws:iam::123456789012:user/operator"
    assert body["check_id"] == req.check_id and body["report_html"].endswith(f"{req.check_id}.html")


def test_drift_route_unknown_model_is_404(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.handlers import api
    from tests.conftest import load_event

    monkeypatch.setenv("STEPWISE_DRIFT_FUNCTION", "stepwise-drift")
    get_settings.cache_clear()
    reply = api.lambda_handler(load_event("apigw/drift.json"), Context())
    assert reply["statusCode"] == 404


def test_drift_check_recompacts_an_hour_when_late_captures_arrive(stores: Stores, tmp_path: Path) -> None:
    # Given an hour compacted by a first check
    _register(stores)
    hour = datetime(2026, 11, 26, 9, tzinfo=UTC)
    _capture(stores, hour, _rows(1_000, 2))
    req = DriftCheckRequest(model="churn", window_hours=4, end=NOW, retrain=False)
    first, _ = drift_check.run_drift_check(req, get_settings(), workdir=tmp_path, now=NOW)
    # When a capture object of that hour lands late and the next check runs
    key = f"{monitoring.capture_prefix('churn', hour)}{int(hour.timestamp() * 1000) + 1}-late.jsonl.gz"
    late = json.dumps({"request_id": "late", "features": {"x": 0.1, "y": 0.2, "c": "a"}, "version": 1})
    boto3.client("s3").put_object(Bucket=stores.data_bucket, Key=key, Body=gzip.compress(late.encode()))
    second, _ = drift_check.run_drift_check(req, get_settings(), workdir=tmp_path, now=NOW)
    third, _ = drift_check.run_drift_check(req, get_settings(), workdir=tmp_path, now=NOW)
    # Then the hour is compacted again with the late row, once
    assert (first.row_count, first.hours_compacted) == (1_000, 1)
    assert (second.row_count, second.hours_compacted) == (1_001, 1)
    assert (third.row_count, third.hours_compacted) == (1_001, 0)


def _route_event(method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
    from tests.conftest import load_event

    event = load_event("apigw/drift.json")
    resource = "/v1/models/{name}/drift" + ("/settings" if path.endswith("/settings") else "")
    event.update(resource=resource, path=path, httpMethod=method, body=json.dumps(body) if body else None)
    event["requestContext"].update(resourcePath=resource, httpMethod=method)
    return event


def test_drift_settings_route_stores_what_the_schedule_uses(stores: Stores) -> None:
    # Given a model with default settings
    from functions.handlers import api

    _register(stores)
    reply = api.lambda_handler(_route_event("GET", "/v1/models/churn/drift/settings", None), Context())
    assert reply["statusCode"] == 200 and json.loads(reply["body"])["config"]["critical_features"] == []
    # When x is declared critical and a tiny drift share is set
    settings = {"config": {"critical_features": ["x"]}, "policy": {"enabled": False}}
    reply = api.lambda_handler(_route_event("PUT", "/v1/models/churn/drift/settings", settings), Context())
    assert reply["statusCode"] == 200, reply["body"]
    assert json.loads(reply["body"])["updated_by"] == "arn:aws:iam::123456789012:user/operator"
    # and the configuration change is in the audit trail, with before and after
    change = [
        e for e in audit_dal.list_events(stores.metadata_table, target="model/churn") if e.action == "drift.settings"
    ]
    assert len(change) == 1 and change[0].who == "arn:aws:iam::123456789012:user/operator"
    assert change[0].before["critical_features"] == [] and change[0].after["critical_features"] == ["x"]
    # Then the schedule checks with them: x alone drifts, the model drifts, retraining is disabled
    now = datetime.now(UTC)
    _capture(stores, now.replace(minute=0, second=0, microsecond=0), _rows(2_000, 5, shift=0.5))
    result = drift_handler.lambda_handler({"all_models": True, "window_hours": 1}, Context())["results"][0]
    assert result["verdict"] == "drift" and "critical" in result["reason"]
    assert result["retraining"]["action"] == "skip" and "disabled" in result["retraining"]["reason"]


def test_drift_settings_route_refuses_unknown_fields(stores: Stores) -> None:
    from functions.handlers import api

    _register(stores)
    bad = {"config": {"alpha": 2}}
    reply = api.lambda_handler(_route_event("PUT", "/v1/models/churn/drift/settings", bad), Context())
    assert reply["statusCode"] == 400


def test_drift_check_scores_labelled_traffic_and_retrains_on_a_drop(
    stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given unshifted traffic whose predictions (0.5) are far from the labels, RMSE 0.1 at registration
    _register(stores)
    ddb = boto3.client("dynamodb")
    item = ddb.get_item(
        TableName=stores.registry_table, Key={"pk": {"S": "MODEL#churn"}, "sk": {"S": "VERSION#00000001"}}
    )
    version = ModelVersion.model_validate(registry_dal.from_item(item["Item"])).model_copy(
        update={"metrics": {"rmse": 0.1, "mae": 0.1}}
    )
    ddb.put_item(TableName=stores.registry_table, Item=registry_dal.version_item(version))
    hour = datetime(2026, 11, 26, 10, tzinfo=UTC)
    _capture(stores, hour, _rows(2_000, 2))
    labels = "\n".join(json.dumps({"request_id": f"r{i}", "model": "churn", "label": 2.5}) for i in range(300))
    boto3.client("s3").put_object(
        Bucket=stores.data_bucket,
        Key="feedback/churn/dt=2026-11-26/1-a.jsonl.gz",
        Body=gzip.compress(labels.encode()),
    )
    monkeypatch.setattr(drift_check, "_training_target", lambda s, v: TrainingTarget("churn-spec", "churn", 4))
    calls: list[TrainingTarget] = []
    # When checked
    result, report = drift_check.run_drift_check(
        DriftCheckRequest(model="churn", window_hours=3, end=NOW),
        get_settings(),
        workdir=tmp_path,
        now=NOW,
        starter=_fake_start(calls),
    )
    # Then the features do not drift but performance dropped, and that starts retraining
    assert result.verdict == ModelVerdict.NO_DRIFT
    assert report.performance is not None and report.performance.verdict == "drop"
    assert report.performance.matched == 300
    rmse = next(m for m in report.performance.metrics if m.name == "rmse")
    assert rmse.value == pytest.approx(2.0) and rmse.dropped
    assert result.retraining is not None and result.retraining.verdict == "performance_drop" and len(calls) == 1


def test_drift_check_feature_captured_all_null_drifts_and_the_reports_say_why(stores: Stores, tmp_path: Path) -> None:
    # Given a model whose reference has x filled, and a closed hour of captures where x is always null
    _register(stores)
    rows = _rows(1_500, 2)
    rows = rows.set_column(0, "x", pa.nulls(1_500, pa.float64()))
    _capture(stores, datetime(2026, 11, 26, 10, tzinfo=UTC), rows)
    req = DriftCheckRequest(model="churn", window_hours=3, end=NOW, retrain=False)
    # When the check runs
    result, report = drift_check.run_drift_check(req, get_settings(), workdir=tmp_path, now=NOW)
    # Then x drifts on its null fraction, is counted as checked, and the model drifts
    assert result.verdict == ModelVerdict.DRIFT and result.drifted_features == ["x"]
    assert report.checked_features == 3
    x = report.features[0]
    assert x.current_null_fraction == 1.0 and x.current_count == 0 and x.numeric is None
    assert x.distribution_skipped == "0 current / 5,000 reference non-null values, minimum 1,000"
    # and the stored JSON and HTML reports show it, with the reason the distribution was not tested
    s3 = boto3.client("s3")
    key = result.report_json.split("/", 3)[3]
    stored = DriftReport.model_validate_json(s3.get_object(Bucket=stores.artifacts_bucket, Key=key)["Body"].read())
    assert stored.features[0] == x
    html_key = result.report_html.split("/", 3)[3]
    html = s3.get_object(Bucket=stores.artifacts_bucket, Key=html_key)["Body"].read().decode()
    assert "null fraction only" in html and f"not run: {x.distribution_skipped}" in html
