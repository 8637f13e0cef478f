"""The inference handler on moto: predictions, aliases and their TTL, canary and shadow routing,
artifact verification, capture and feedback."""

from __future__ import annotations

import gzip
import json
import math
import re
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pyarrow.json as pj
import pytest

from functions.dal.releases import canary_metrics
from functions.handlers import predict
from functions.logic import releases
from functions.logic.routing import bucket
from functions.models.approvals import CanaryCheck, CanaryMetrics
from functions.models.serving import CaptureLine
from functions.models.settings import Settings, get_settings
from functions.observability import NAMESPACE, SERVICE
from stepwise.local import emf
from tests import faults
from tests.integration.conftest import Stores
from tests.integration.test_predict_support import (
    NAME,
    TTL,
    Clock,
    Context,
    Served,
    TrainedModel,
    breast_cancer_classifier,
    churn_instances,
    churn_pipeline,
    diabetes_regressor,
    failing_at_run_time,
    feedback_event,
    fresh_state,
    predict_event,
    put_model,
    put_version,
)

CAPTURE_KEY = re.compile(r"^captures/breast-cancer/dt=\d{4}-\d{2}-\d{2}/hour=\d{2}/\d{13}-[0-9a-f]{32}\.jsonl\.gz$")


def emf_values(out: str, name: str) -> list[tuple[float, dict[str, str]]]:
    """Each value of metric `name` in the Powertools EMF lines of `out`, with the line's dimensions."""
    found = []
    for text in out.splitlines():
        if not (text.startswith("{") and '"_aws"' in text):
            continue
        line = json.loads(text)
        (directive,) = line["_aws"]["CloudWatchMetrics"]
        if name in line:
            values = line[name] if isinstance(line[name], list) else [line[name]]
            dimensions = {d: line[d] for d in directive["Dimensions"][0]}
            found += [(float(v), dimensions) for v in values]
    return found


def emf_sum(out: str, name: str) -> float:
    return sum(v for v, _ in emf_values(out, name))


def captured_lines(stores: Stores, model: str = NAME) -> list[dict[str, Any]]:
    s3 = boto3.client("s3")
    prefix = f"captures/{model}/"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=stores.data_bucket, Prefix=prefix).get("Contents", [])]
    lines = []
    for key in keys:
        assert model != NAME or CAPTURE_KEY.match(key), key
        body = s3.get_object(Bucket=stores.data_bucket, Key=key)["Body"].read()
        lines += [json.loads(line) for line in gzip.decompress(body).decode().splitlines()]
    return lines


# -- predictions -------------------------------------------------------------------------------
def test_predict_answers_from_production_with_sklearn_predictions(served: Served) -> None:
    # Given v1 in production; When three rows are posted with a request id
    status, body = served.call({"instances": served.model.instances(0, 3), "request_id": "req-1"})
    # Then v1 answers with scikit-learn's labels and one probability pair per row
    assert status == 200
    assert body["model"] == NAME and body["version"] == 1 and body["request_id"] == "req-1"
    assert body["predictions"] == served.model.expected[:3]
    assert len(body["probabilities"]) == 3
    assert all(math.isclose(sum(p), 1.0, abs_tol=1e-5) for p in body["probabilities"])


def test_predict_matches_sklearn_on_the_whole_dataset(served: Served) -> None:
    # Given all 569 rows; When posted in one request; Then every label equals scikit-learn's
    count = len(served.model.x)
    status, body = served.call({"instances": served.model.instances(0, count)})
    assert status == 200
    assert body["predictions"] == served.model.expected
    assert re.fullmatch(r"[0-9a-f]{32}", body["request_id"])  # generated when not given


def test_predict_loads_each_version_once_per_environment(served: Served) -> None:
    for i in range(5):
        assert served.call({"instances": served.model.instances(i)})[0] == 200
    assert served.state.models.loads == 1


def test_predict_unknown_model_is_404(served: Served) -> None:
    status, body = served.call({"instances": served.model.instances()}, name="no-such-model")
    assert status == 404
    assert body["error"] == "NotFound"


def test_predict_model_without_production_is_503(served: Served) -> None:
    put_model(served.stores, "unreleased", production=None)
    status, body = served.call({"instances": served.model.instances()}, name="unreleased")
    assert status == 503
    assert "no production version" in body["message"]


# -- aliases: promotion and rollback within the TTL ---------------------------------------------
def test_predict_promotion_and_rollback_take_effect_after_the_ttl(served: Served) -> None:
    # Given v2 registered while v1 answers
    put_version(served.stores, NAME, 2, breast_cancer_classifier("rf", 20, 1))
    body = {"instances": served.model.instances()}
    assert served.call(body)[1]["version"] == 1
    # When v2 is promoted (the release rewrites the ModelRecord)
    put_model(served.stores, NAME, production=2, revision=1)
    # Then v1 still answers within the TTL, and v2 from the TTL on, with no restart
    served.clock.now += TTL - 0.5
    assert served.call(body)[1]["version"] == 1
    served.clock.now += 0.5
    assert served.call(body)[1]["version"] == 2
    # When rolled back; Then v1 answers again after the TTL (still cached: no reload)
    put_model(served.stores, NAME, production=1, revision=2)
    served.clock.now += TTL
    assert served.call(body)[1]["version"] == 1
    assert served.state.models.loads == 2


def test_predict_keeps_at_most_the_configured_number_of_versions(stores: Stores) -> None:
    # Given a cache of 2 versions and 3 models in production
    clock = Clock()
    state = fresh_state(clock, model_cache_size=2)
    trained = breast_cancer_classifier()
    for name in ("m-a", "m-b", "m-c"):
        put_version(stores, name, 1, trained)
        put_model(stores, name, production=1)
    try:
        for name in ("m-a", "m-b", "m-c", "m-a"):
            reply = predict.lambda_handler(predict_event(name, {"instances": trained.instances()}), Context())
            assert reply["statusCode"] == 200
        # Then the least recently used was evicted and reloaded
        assert ("m-b", 1) not in state.models and ("m-a", 1) in state.models
        assert state.models.loads == 4
    finally:
        predict.reset(None)


# -- canary and shadow -------------------------------------------------------------------------
def test_predict_canary_answers_its_weight_of_requests(served: Served) -> None:
    # Given v2 as a 10% canary
    put_version(served.stores, NAME, 2, breast_cancer_classifier("rf", 20, 1))
    put_model(served.stores, NAME, production=1, candidate=2, weight=0.1)
    served.clock.now += TTL
    instances = served.model.instances()
    # When 2,000 requests with distinct ids are served
    versions = Counter(served.call({"instances": instances, "request_id": f"r-{i}"})[1]["version"] for i in range(2000))
    # Then about 10% are answered by v2: within 4.5 sd of Binomial(2000, 0.1) (mean 200, sd 13.4)
    assert set(versions) == {1, 2}
    assert 140 <= versions[2] <= 260
    # And a request id always gets the same version
    for rid in ("r-1", "r-7", "r-42", "r-1999"):
        seen = {served.call({"instances": instances, "request_id": rid})[1]["version"] for _ in range(10)}
        assert len(seen) == 1


def test_predict_canary_without_request_id_draws_at_random(served: Served) -> None:
    put_version(served.stores, NAME, 2, breast_cancer_classifier("rf", 20, 1))
    put_model(served.stores, NAME, production=1, candidate=2, weight=0.5)
    served.clock.now += TTL
    versions = Counter(served.call({"instances": served.model.instances()})[1]["version"] for _ in range(400))
    assert 140 <= versions[2] <= 260  # Binomial(400, 0.5): mean 200, sd 10


def test_predict_shadow_scores_the_candidate_but_production_answers(served: Served) -> None:
    # Given v2 in shadow mode
    put_version(served.stores, NAME, 2, breast_cancer_classifier("rf", 20, 1))
    put_model(served.stores, NAME, production=1, candidate=2, weight=0.5, shadow=True)
    served.clock.now += TTL
    # When 50 requests are served
    for i in range(50):
        status, body = served.call({"instances": served.model.instances(i), "request_id": f"s-{i}"})
        assert (status, body["version"]) == (200, 1)
    # Then both versions scored every request: captured as production and shadow
    predict.reset(None)
    variants = Counter((line["variant"], line["version"]) for line in captured_lines(served.stores))
    assert variants == {("production", 1): 50, ("shadow", 2): 50}


# -- artifact verification ---------------------------------------------------------------------
def test_predict_refuses_a_tampered_artifact(served: Served) -> None:
    # Given v3 whose bytes in S3 differ from the registered sha256 (one byte changed)
    tampered = bytearray(served.model.onnx)
    tampered[len(tampered) // 2] ^= 0xFF
    put_version(served.stores, NAME, 3, served.model, content=bytes(tampered))
    put_model(served.stores, NAME, production=3, revision=1)
    served.clock.now += TTL
    # When requests arrive; Then each gets a 503 naming the failed verification, none is served
    for _ in range(3):
        status, body = served.call({"instances": served.model.instances()})
        assert status == 503
        assert body["error"] == "ModelUnavailable"
        assert "failed verification" in body["message"]
        assert "arn:" not in json.dumps(body) and "Traceback" not in json.dumps(body)
    assert ("breast-cancer", 3) not in served.state.models


def test_predict_tampered_candidate_never_answers(served: Served) -> None:
    # Given a tampered v3 as a 50% canary
    put_version(served.stores, NAME, 3, served.model, content=served.model.onnx + b"\x00")
    put_model(served.stores, NAME, production=1, candidate=3, weight=0.5)
    served.clock.now += TTL
    # When 100 requests are served; Then production answers all of them
    versions = {
        served.call({"instances": served.model.instances(), "request_id": f"t-{i}"})[1]["version"] for i in range(100)
    }
    assert versions == {1}


def candidate_metrics(out: str, version: int) -> CanaryMetrics:
    """What the canary check reads for `version`, once the handler's EMF output (what CloudWatch
    Logs turns into metrics on AWS, stepwise/local/emf.py locally) is in moto's CloudWatch."""
    emf.deliver(out.splitlines(), emf.cloudwatch_put(boto3.client("cloudwatch")))
    now = datetime.now(UTC)
    window = (now - timedelta(minutes=10), now + timedelta(minutes=1))
    return canary_metrics(NAMESPACE, SERVICE, NAME, version, *window, latency_stat="Maximum")


def test_predict_tampered_candidate_counts_candidate_errors_and_production_answers(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a tampered v3 as a 50% canary of v1
    put_version(served.stores, NAME, 3, served.model, content=served.model.onnx + b"\x00")
    put_model(served.stores, NAME, production=1, candidate=3, weight=0.5)
    served.clock.now += TTL
    capsys.readouterr()
    # When 40 requests are served, about half of them routed to the candidate
    ids = [f"t-{i}" for i in range(40)]
    to_candidate = sum(bucket(NAME, rid) < 0.5 for rid in ids)
    assert 5 <= to_candidate <= 35
    for rid in ids:
        status, body = served.call({"instances": served.model.instances(), "request_id": rid})
        # Then production answers every one of them
        assert (status, body["version"]) == (200, 1)
    # And every request the candidate should have answered is a candidate error in the metrics
    # the canary check reads, so the check fails
    observed = candidate_metrics(capsys.readouterr().out, 3)
    assert (observed.requests, observed.error_rate) == (to_candidate, 1.0)
    assert releases.judge_canary(observed, CanaryCheck(latency_stat="Maximum"))[0] == "fail"
    # while production's own metrics count all 40 answers
    assert candidate_metrics("", 1).requests == 40


def test_predict_candidate_failing_at_run_time_counts_candidate_errors_and_production_answers(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a v4 canary whose artifact verifies and loads but fails to run on every request
    put_version(served.stores, NAME, 4, failing_at_run_time(served.model))
    put_model(served.stores, NAME, production=1, candidate=4, weight=0.5)
    served.clock.now += TTL
    capsys.readouterr()
    ids = [f"r-{i}" for i in range(30)]
    to_candidate = sum(bucket(NAME, rid) < 0.5 for rid in ids)
    assert 3 <= to_candidate <= 27
    # When the requests are served, Then production answers each with its own predictions
    for i, rid in enumerate(ids):
        status, body = served.call({"instances": served.model.instances(i), "request_id": rid})
        assert (status, body["version"], body["predictions"]) == (200, 1, served.model.expected[i : i + 1])
    # And the candidate's failures are candidate errors in what the canary check reads
    observed = candidate_metrics(capsys.readouterr().out, 4)
    assert (observed.requests, observed.error_rate) == (to_candidate, 1.0)


# -- capture -----------------------------------------------------------------------------------
def test_capture_files_are_readable_by_pyarrow_with_the_documented_schema(served: Served) -> None:
    # Given 20 served requests of 3 rows
    for i in range(20):
        assert served.call({"instances": served.model.instances(i, 3), "request_id": f"c-{i}"})[0] == 200
    # Then they made no S3 write yet (batched); When the environment shuts down
    assert served.state.capture.objects_written == 0
    predict.reset(None)
    # Then the rows are in S3 under captures/<model>/dt=/hour=/, readable by pyarrow.json
    s3 = boto3.client("s3")
    objects = s3.list_objects_v2(Bucket=served.stores.data_bucket, Prefix="captures/")["Contents"]
    assert len(objects) == 1 and CAPTURE_KEY.match(objects[0]["Key"])
    local = served.stores  # read through pyarrow from a local copy of the object
    body = s3.get_object(Bucket=local.data_bucket, Key=objects[0]["Key"])["Body"].read()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "part.jsonl.gz"
        path.write_bytes(body)
        table = pj.read_json(str(path))
    assert table.num_rows == 60
    # (`lookups` is written only for versions trained through feature views)
    assert set(table.column_names) == set(CaptureLine.model_fields) - {"lookups"}
    rows = table.to_pylist()
    for row in rows:
        CaptureLine.model_validate(row)
    assert {r["variant"] for r in rows} == {"production"}
    assert rows[0]["request_id"] == "c-0" and rows[0]["version"] == 1
    assert set(rows[0]["features"]) == set(served.model.names)
    assert rows[0]["prediction"] == served.model.expected[0]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", rows[0]["time"])


def test_capture_flushes_by_size_during_traffic(stores: Stores) -> None:
    # Given a buffer of 10 rows
    trained = breast_cancer_classifier()
    put_version(stores, NAME, 1, trained)
    put_model(stores, NAME, production=1)
    state = fresh_state(Clock(), capture_flush_rows=10)
    try:
        for i in range(25):
            predict.lambda_handler(predict_event(NAME, {"instances": trained.instances(i)}), Context())
        # Then every 10th request wrote one object
        assert state.capture.objects_written == 2 and state.capture.pending_rows == 5
    finally:
        predict.reset(None)


def test_capture_flushes_by_age(served: Served) -> None:
    served.call({"instances": served.model.instances()})
    served.clock.now += get_settings().capture_flush_seconds
    served.call({"instances": served.model.instances()})
    assert served.state.capture.objects_written == 1 and served.state.capture.rows_written == 2


def test_capture_failure_does_not_fail_predictions(stores: Stores) -> None:
    # Given captures go to a bucket that does not exist, flushed on every request
    trained = breast_cancer_classifier()
    put_version(stores, NAME, 1, trained)
    put_model(stores, NAME, production=1)
    state = fresh_state(Clock(), data_bucket="no-such-bucket", capture_flush_rows=1)
    try:
        # When requests are served; Then they all succeed and the failures are counted
        for i in range(5):
            reply = predict.lambda_handler(predict_event(NAME, {"instances": trained.instances(i)}), Context())
            assert reply["statusCode"] == 200
        assert state.capture.failures == 5 and state.capture.rows_dropped == 5
    finally:
        predict.reset(None)


@pytest.mark.parametrize("kind", ["refused request", "unknown model", "feedback"])
def test_capture_an_invocation_past_the_age_bound_writes_before_returning_whatever_its_outcome(
    served: Served, kind: str
) -> None:
    # Given 3 captured rows pending in the buffer
    assert served.call({"instances": served.model.instances(0, 3)})[0] == 200
    assert served.state.capture.pending_rows == 3 and captured_lines(served.stores) == []
    # When the age bound has passed and the next invocation captures nothing
    served.clock.now += get_settings().capture_flush_seconds
    event = {
        "refused request": predict_event(NAME, {"instances": []}),
        "unknown model": predict_event("no-such-model", {"instances": served.model.instances()}),
        "feedback": feedback_event(NAME, {"labels": [{"request_id": "r-1", "label": 1}]}),
    }[kind]
    predict.lambda_handler(event, Context())
    # Then that invocation wrote the rows before returning: nothing waits for a request that may never come
    assert served.state.capture.pending_rows == 0
    assert len(captured_lines(served.stores)) == 3


def test_capture_idle_environment_holds_nothing_older_than_the_age_bound(served: Served) -> None:
    # Given traffic every 7 s for 10 minutes, every fourth request refused (400), 10 rows a request
    bound = get_settings().capture_flush_seconds
    good, refused = {"instances": served.model.instances(0, 10)}, {"instances": []}
    captured, last_good = 0, 0.0
    for i in range(90):
        served.clock.now += 7
        status, _ = served.call(refused if i % 4 == 3 else good)
        if status == 200:
            captured, last_good = captured + 10, served.clock.now
        # Then no invocation returns leaving a row older than the age bound pending
        assert served.state.capture.pending_age_s < bound, (i, served.state.capture.pending_age_s)
    # When the last request is refused once the bound has passed, and the environment then idles
    # for 15 minutes and is recycled (no code runs: Lambda delivers no SHUTDOWN without an extension)
    served.clock.now = last_good + bound
    assert served.call(refused)[0] == 400
    # Then every captured row is in S3 before that idle period: nothing is left to lose
    assert served.state.capture.pending_rows == 0
    assert len(captured_lines(served.stores)) == captured == served.state.capture.rows_written


def test_capture_write_failure_emits_capture_errors_and_dropped_rows(
    stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given captures go to a bucket that does not exist, flushed on every request
    trained = breast_cancer_classifier()
    put_version(stores, NAME, 1, trained)
    put_model(stores, NAME, production=1)
    fresh_state(Clock(), data_bucket="no-such-bucket", capture_flush_rows=1)
    try:
        capsys.readouterr()
        # When a request of 2 rows is served
        reply = predict.lambda_handler(predict_event(NAME, {"instances": trained.instances(0, 2)}), Context())
        out = capsys.readouterr().out
        # Then it succeeds, and that invocation emitted one CaptureErrors and 2 CaptureRowsDropped
        # with the service dimension only (what the alarm watches), and no rows written
        assert reply["statusCode"] == 200
        assert emf_values(out, "CaptureErrors") == [(1.0, {"service": "stepwise"})]
        assert emf_values(out, "CaptureRowsDropped") == [(2.0, {"service": "stepwise"})]
        assert emf_values(out, "CaptureRowsWritten") == []
    finally:
        predict.reset(None)


def test_capture_rows_written_counts_rows_in_s3(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a buffer of 10 rows, requests of 3 rows
    fresh_state(served.clock, capture_flush_rows=10)
    capsys.readouterr()
    body = {"instances": served.model.instances(0, 3)}
    # When 4 requests fill it (written), 4 more fill it while S3 refuses the write (dropped),
    # and 2 more are pending when the environment shuts down (written)
    for _ in range(4):
        served.call(body)
    with faults.inject("s3.PutObject", faults.THROTTLING) as rule:
        for _ in range(4):
            served.call(body)
    assert rule.fired == ["s3.PutObject"]
    for _ in range(2):
        served.call(body)
    predict.reset(None)
    out = capsys.readouterr().out
    # Then CaptureRowsWritten counts the rows in S3, CaptureRowsDropped the refused ones, and
    # CaptureRows every row put in the buffer
    assert len(captured_lines(served.stores)) == 18
    assert emf_sum(out, "CaptureRowsWritten") == 18
    assert emf_sum(out, "CaptureRowsDropped") == 12
    assert emf_sum(out, "CaptureErrors") == 1
    assert emf_sum(out, "CaptureRows") == 30


def test_capture_sampling_keeps_about_the_rate(stores: Stores) -> None:
    trained = breast_cancer_classifier()
    put_version(stores, NAME, 1, trained)
    put_model(stores, NAME, production=1)
    state = fresh_state(Clock(), capture_sample_rate=0.25, capture_flush_rows=10_000)
    try:
        for i in range(400):
            predict.lambda_handler(predict_event(NAME, {"instances": trained.instances(i % 100)}), Context())
        assert 60 <= state.capture.pending_rows <= 140  # Binomial(400, 0.25): mean 100, sd 8.7
    finally:
        predict.reset(None)


# -- feedback ----------------------------------------------------------------------------------
def test_feedback_is_stored_as_json_lines_for_monitoring(served: Served) -> None:
    labels = [{"request_id": f"req-{i}", "label": i % 2} for i in range(10)]
    reply = predict.lambda_handler(feedback_event(NAME, {"labels": labels}), Context())
    body = json.loads(reply["body"])
    assert reply["statusCode"] == 200 and body["accepted"] == 10
    assert re.fullmatch(r"feedback/breast-cancer/dt=\d{4}-\d{2}-\d{2}/\d{13}-[0-9a-f]{32}\.jsonl\.gz", body["key"])
    raw = boto3.client("s3").get_object(Bucket=served.stores.data_bucket, Key=body["key"])["Body"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.jsonl.gz"
        path.write_bytes(raw.read())
        rows = pj.read_json(str(path)).to_pylist()
    assert [(r["request_id"], r["label"], r["model"]) for r in rows] == [(f"req-{i}", i % 2, NAME) for i in range(10)]


def test_feedback_for_an_unknown_model_is_404(served: Served) -> None:
    reply = predict.lambda_handler(feedback_event("nope", {"labels": [{"request_id": "a", "label": 1}]}), Context())
    assert reply["statusCode"] == 404


@pytest.mark.parametrize(
    "body",
    [{"labels": []}, {"labels": [{"request_id": "a"}]}, {"labels": [{"request_id": "a", "label": 1, "x": 2}]}, []],
)
def test_feedback_rejects_malformed_labels(served: Served, body: Any) -> None:
    reply = predict.lambda_handler(feedback_event(NAME, body), Context())
    assert reply["statusCode"] == 400
    assert json.loads(reply["body"])["details"]


# -- the input contract ------------------------------------------------------------------------
def _bad_requests(model: TrainedModel) -> list[tuple[str, Any, str | None, int, str]]:
    good = model.instances()[0]
    first = model.names[0]
    missing = {k: v for k, v in good.items() if k != first}
    return [
        ("unknown field", {"instances": [good | {"colour": 1.0}]}, None, 400, "instances.0.colour"),
        ("missing feature", {"instances": [missing]}, None, 400, f"instances.0.{first}"),
        ("wrong type", {"instances": [good | {first: "12.5"}]}, None, 400, f"instances.0.{first}"),
        ("bool for float", {"instances": [good | {first: True}]}, None, 400, f"instances.0.{first}"),
        ("null", {"instances": [good | {first: None}]}, None, 400, f"instances.0.{first}"),
        ("overflow", {"instances": [good | {first: 1e39}]}, None, 400, f"instances.0.{first}"),
        (
            "infinity",
            None,
            json.dumps({"instances": [good | {first: 0.123456}]}).replace("0.123456", "1e999"),
            400,
            f"instances.0.{first}",
        ),
        ("NaN token", None, json.dumps({"instances": [good | {first: float("nan")}]}), 400, ""),
        ("no rows", {"instances": []}, None, 400, "instances"),
        ("too many rows", {"instances": [good] * 1001}, None, 400, "instances"),
        ("no instances", {"rows": [good]}, None, 400, "instances"),
        ("not an object", [good], None, 400, "body"),
        ("bad request id", {"instances": [good], "request_id": "x" * 500}, None, 400, "request_id"),
        ("not json", None, "{instances: ", 400, ""),
        ("empty", None, "", 400, ""),
    ]


@pytest.mark.parametrize("case", range(15))
def test_predict_rejects_a_bad_request_naming_the_field(served: Served, case: int) -> None:
    label, body, raw, status, field = _bad_requests(served.model)[case]
    got, reply = served.call(body, raw=raw)
    assert got == status, (label, reply)
    assert reply["error"] == "InvalidInput" and reply["message"]
    if field:
        assert field in [d["field"] for d in reply["details"]], (label, reply)
        assert all(d["reason"] for d in reply["details"])


def test_predict_rejects_a_malformed_model_name(served: Served) -> None:
    status, body = served.call({"instances": served.model.instances()}, name="Bad_Name!")
    assert status == 400
    assert body["error"] == "InvalidInput" and body["details"][0]["field"] == "path.name"


def test_predict_respects_the_configured_row_limit(stores: Stores) -> None:
    trained = breast_cancer_classifier()
    put_version(stores, NAME, 1, trained)
    put_model(stores, NAME, production=1)
    fresh_state(Clock(), max_instances=5)
    try:
        ok = predict.lambda_handler(predict_event(NAME, {"instances": trained.instances(0, 5)}), Context())
        too_many = predict.lambda_handler(predict_event(NAME, {"instances": trained.instances(0, 6)}), Context())
        assert (ok["statusCode"], too_many["statusCode"]) == (200, 400)
    finally:
        predict.reset(None)


def test_settings_carry_the_serving_knobs() -> None:
    settings = Settings.model_validate({"STEPWISE_CAPTURE_FLUSH_ROWS": "10", "STEPWISE_CAPTURE_FLUSH_SECONDS": "2.5"})
    assert (settings.capture_flush_rows, settings.capture_flush_seconds) == (10, 2.5)


def test_predict_serves_a_per_feature_export_with_categories_and_string_labels(stores: Stores) -> None:
    # Given a lifecycle-style export: one input per feature, a category, string labels
    trained = churn_pipeline()
    put_version(stores, "churn", 1, trained)
    put_model(stores, "churn", production=1)
    fresh_state(Clock())
    try:
        # When 50 rows are posted (one with a null charge)
        instances = churn_instances(trained, 50)
        instances[0]["charges"] = None
        reply = predict.lambda_handler(predict_event("churn", {"instances": instances}), Context())
        body = json.loads(reply["body"])
        # Then the labels are scikit-learn's (strings), with probabilities in class_labels order
        assert reply["statusCode"] == 200
        assert body["predictions"][1:] == trained.expected[1:50]
        assert body["predictions"][0] in {"yes", "no"}
        assert len(body["probabilities"][0]) == len(trained.class_labels or [])
        # And an unknown category is refused, naming the field
        bad = predict.lambda_handler(
            predict_event("churn", {"instances": [instances[1] | {"plan": "gold"}]}), Context()
        )
        assert bad["statusCode"] == 400
        assert json.loads(bad["body"])["details"][0]["field"] == "instances.0.plan"
    finally:
        predict.reset(None)


def test_predict_serves_a_regressor_without_probabilities(stores: Stores) -> None:
    # Given a regressor in production
    trained = diabetes_regressor()
    put_version(stores, "diabetes", 1, trained)
    put_model(stores, "diabetes", production=1)
    fresh_state(Clock())
    try:
        # When 20 rows are posted; Then the predictions are scikit-learn's (float32 precision)
        reply = predict.lambda_handler(predict_event("diabetes", {"instances": trained.instances(0, 20)}), Context())
        body = json.loads(reply["body"])
        assert reply["statusCode"] == 200 and "probabilities" not in body
        assert all(
            math.isclose(a, b, rel_tol=1e-4) for a, b in zip(body["predictions"], trained.expected[:20], strict=True)
        )
        # And the capture lines carry probabilities null
        predict.reset(None)
        lines = captured_lines(stores, "diabetes")
        assert len(lines) == 20 and all(line["probabilities"] is None for line in lines)
    finally:
        predict.reset(None)


def test_predict_store_outage_is_a_503_without_internals(served: Served) -> None:
    # Given the registry table is gone (a store outage) and the alias cache has expired
    boto3.client("dynamodb").delete_table(TableName=served.stores.registry_table)
    served.clock.now += TTL
    # When a request arrives; Then a JSON 503 that names no ARN, table or stack trace
    status, body = served.call({"instances": served.model.instances()})
    assert status == 503 and body["error"] == "StoreUnavailable"
    text = json.dumps(body)
    assert "arn:" not in text and served.stores.registry_table not in text and "Traceback" not in text
