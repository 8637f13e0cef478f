"""Serving end to end on the local cloud (the synthesized template deployed into moto, the API on
localhost, signed HTTP): production answers, promotion and rollback within the alias TTL, a 10%
canary over 2,000 requests, a tampered artifact refused, capture files in the data bucket.
Slow (a whole local cloud): run with --slow."""

from __future__ import annotations

import gzip
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from infra import constants as c
from stepwise.target import Target
from tests.integration.conftest import Stores
from tests.integration.test_predict_support import breast_cancer_classifier, put_model, put_version

pytestmark = pytest.mark.slow
TTL = 0.5
NAME = "bc-local"


SESSION: list[object] = []


@pytest.fixture(scope="module")
def local() -> Iterator[tuple[Target, Stores]]:
    from stepwise.local.session import LocalSession

    patch = pytest.MonkeyPatch()
    for key, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        patch.setenv(key, value)
    session = LocalSession(port=0, context={"stepwise:inference_alias_cache_ttl_seconds": TTL})
    target = session.start()
    SESSION[:] = [session]
    outputs = target.outputs
    stores = Stores(
        outputs[c.OUT_DATA_BUCKET],
        outputs[c.OUT_ARTIFACTS_BUCKET],
        outputs[c.OUT_REGISTRY_TABLE],
        outputs[c.OUT_METADATA_TABLE],
    )
    model = breast_cancer_classifier()
    put_version(stores, NAME, 1, model)
    put_version(stores, NAME, 2, breast_cancer_classifier("rf", 20, 1))
    put_model(stores, NAME, production=1)
    yield target, stores
    session.stop()
    patch.undo()


def _predict(target: Target, request_id: str | None = None) -> tuple[int, dict]:
    body: dict = {"instances": breast_cancer_classifier().instances()}
    if request_id:
        body["request_id"] = request_id
    reply = target.api("POST", f"/v1/models/{NAME}/predict", body)
    return reply.status, reply.body


def test_local_cloud_serves_production_and_follows_promotion_and_rollback(local: tuple[Target, Stores]) -> None:
    target, stores = local
    status, body = _predict(target)
    assert (status, body["version"], body["model"]) == (200, 1, NAME)
    put_model(stores, NAME, production=2, revision=1)
    time.sleep(TTL + 0.2)
    assert _predict(target)[1]["version"] == 2
    put_model(stores, NAME, production=1, revision=2)
    time.sleep(TTL + 0.2)
    assert _predict(target)[1]["version"] == 1


def test_local_cloud_canary_answers_about_ten_percent(local: tuple[Target, Stores]) -> None:
    target, stores = local
    put_model(stores, NAME, production=1, candidate=2, weight=0.1, revision=3)
    time.sleep(TTL + 0.2)
    versions = Counter(_predict(target, f"lc-{i}")[1]["version"] for i in range(2000))
    assert 140 <= versions[2] <= 260  # Binomial(2000, 0.1): mean 200, sd 13.4
    assert len({_predict(target, "lc-5")[1]["version"] for _ in range(5)}) == 1
    put_model(stores, NAME, production=1, revision=4)


def test_local_cloud_refuses_a_tampered_artifact(local: tuple[Target, Stores]) -> None:
    target, stores = local
    model = breast_cancer_classifier()
    put_version(stores, "bc-tampered", 1, model, content=model.onnx[:-1] + b"\x01")
    put_model(stores, "bc-tampered", production=1)
    reply = target.api("POST", "/v1/models/bc-tampered/predict", {"instances": model.instances()})
    assert reply.status == 503 and "failed verification" in reply.body["message"]


def test_local_cloud_rejects_bad_bodies_with_json_4xx(local: tuple[Target, Stores]) -> None:
    target, _ = local
    reply = target.api("POST", f"/v1/models/{NAME}/predict", {"instances": [{"x": 1}]})
    assert reply.status == 400 and reply.body["details"]


def test_local_cloud_capture_lands_in_the_data_bucket(local: tuple[Target, Stores]) -> None:
    import boto3

    _, stores = local
    # the runtime shuts down: the inference function's module (its own copy) flushes its buffer
    (runtime,) = [
        fn
        for fn in SESSION[0].cloud.router.functions.values()  # type: ignore[attr-defined]
        if fn.handler == "functions.handlers.predict.lambda_handler"
    ]
    with runtime._execution_environment():
        sys.modules["functions.handlers.predict"]._flush_on_exit()
    s3 = boto3.client("s3")
    keys = [
        o["Key"] for o in s3.list_objects_v2(Bucket=stores.data_bucket, Prefix=f"captures/{NAME}/").get("Contents", [])
    ]
    assert keys
    first = gzip.decompress(s3.get_object(Bucket=stores.data_bucket, Key=keys[0])["Body"].read()).splitlines()[0]
    assert json.loads(first)["model"] == NAME
