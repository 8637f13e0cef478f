"""Fault injection for prediction: each AWS call a predict or feedback request makes (the alias
read, the version read, the artifact GetObject, the capture and feedback writes) fails in turn the
way AWS fails it, and the request is then retried without the fault.

What is faked and why: AWS does not throttle, refuse, time out or lose an object on demand and moto
always answers, so tests/faults.py answers the chosen call with AWS's error (or raises the timeout
or the crash) before the request is made. The handler and its model cache run unchanged on moto;
the cache's clock is the test's, so "after the retry hint" takes no real time.

Checked: the caller gets 429 (throttled) or 503 (refused, timed out, artifact missing) with a
Retry-After header and `retry_after_seconds`, in a JSON body naming the error that carries no ARN,
AccessDenied, bucket, table or traceback; a transient failure is not remembered by the model cache
beyond its retry hint (the retry after that hint succeeds); capture failures never fail a prediction.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from functions.handlers import predict
from functions.logic.serving import Serving
from functions.models.settings import get_settings
from tests import faults
from tests.integration.conftest import Stores
from tests.integration.test_predict_support import (
    Context,
    breast_cancer_classifier,
    feedback_event,
    predict_event,
    put_model,
    put_version,
)

NAME = "breast-cancer"
LEAKS = ("arn:", "AccessDenied", "Traceback", "stepwise-", 'File "', "ThrottlingException")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(stores: Stores) -> Iterator[Clock]:
    """breast-cancer v1 in production; a fresh serving state on the test's clock, capturing every
    request and flushing on each (so each predict makes its capture write)."""
    model = breast_cancer_classifier()
    put_version(stores, NAME, 1, model)
    put_model(stores, NAME, production=1)
    c = Clock()
    fresh(c)
    yield c
    predict.reset(None)


def fresh(clock: Clock) -> Serving:
    settings = get_settings().model_copy(
        update={"alias_cache_ttl_seconds": 5.0, "capture_sample_rate": 1.0, "capture_flush_rows": 1}
    )
    state = Serving(settings, clock=clock)
    predict.reset(state)
    return state


def request() -> dict[str, Any]:
    return {"instances": breast_cancer_classifier().instances(0, 2)}


def send(event: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, Any]]:
    reply = predict.lambda_handler(event, Context())
    return reply["statusCode"], json.loads(reply["body"]), reply


def assert_retryable(reply: dict[str, Any], body: dict[str, Any], status: int, case: str) -> int:
    assert reply["statusCode"] == status, f"{case}: {reply['statusCode']} {body}"
    for leak in LEAKS:
        assert leak not in reply["body"], f"{case}: the body leaks {leak!r}: {reply['body']}"
    assert body["error"] and body["message"], case
    if status == 409:
        return 0
    retry = int(body["retry_after_seconds"])
    assert faults.reply_header(reply, "Retry-After") == str(retry), case
    return retry


def expected_status(fault: faults.Fault) -> int:
    if fault is faults.CONDITIONAL_CHECK_FAILED:  # store_error's reading of a failed condition
        return 409
    return 429 if fault is faults.THROTTLING else 503


def predict_matrix(stores: Stores, clock: Clock, chosen: tuple[faults.Fault, ...]) -> int:
    """A cold predict (alias read, version read, artifact read, capture write): each call x fault."""
    fresh(clock)
    with faults.recording() as recorded:
        status, clean, _ = send(predict_event(NAME, request()))
    assert status == 200
    calls = list(recorded)
    assert calls[-1] == "s3.PutObject"  # the capture write comes last
    cases = 0
    for index, call in enumerate(calls):
        for fault in chosen:
            if fault is faults.NO_SUCH_KEY and not call.startswith("s3."):
                continue
            case = f"predict: call {index} ({call}) {fault.name}"
            state = fresh(clock)
            with faults.inject_at(index, fault) as rule:
                try:
                    status, body, reply = send(predict_event(NAME, request()))
                except faults.Crash:
                    status = -1
            assert rule.fired == [call], f"{case}: fired {rule.fired}"
            if fault is faults.CRASH:
                assert status == -1, f"{case}: the crash was swallowed"
                fresh(clock)  # the process died: a new execution environment answers the retry
            elif call == "s3.PutObject":  # capture: never fails the prediction
                assert status == 200 and body["predictions"] == clean["predictions"], case
                assert state.capture.failures == 1, case
                continue
            else:
                retry = assert_retryable(reply, body, expected_status(fault), case)
                clock.now += retry  # the caller waits as told
            status, body, _ = send(predict_event(NAME, request()))
            assert status == 200, f"{case}: the retry got {status} {body}"
            assert body["predictions"] == clean["predictions"], case
            cases += 1
    return cases


def test_faults_predict_answers_429_or_503_with_a_hint_and_the_retry_succeeds(stores: Stores, clock: Clock) -> None:
    # Given a cold execution environment; When each AWS call of a predict throttles, is refused,
    # times out or (the artifact) is missing; Then 429/503 with Retry-After (capture: 200), and a
    # request after the hint is answered as a clean run's
    assert predict_matrix(stores, clock, (faults.THROTTLING, faults.ACCESS_DENIED, faults.TIMEOUT)) >= 9


@pytest.mark.full
def test_faults_predict_every_call_every_fault(stores: Stores, clock: Clock) -> None:
    assert predict_matrix(stores, clock, faults.EVERY_FAULT) >= 12


@pytest.mark.parametrize("fault", [faults.THROTTLING, faults.TIMEOUT, faults.ACCESS_DENIED])
def test_faults_predict_transient_artifact_failure_does_not_poison_the_cache(
    stores: Stores, clock: Clock, fault: faults.Fault
) -> None:
    # Given the artifact read fails transiently once
    with faults.inject("s3.GetObject", fault):
        status, body, reply = send(predict_event(NAME, request()))
    assert_retryable(reply, body, expected_status(fault), fault.name)
    # When the next request comes at once (no time passes), Then the model loads and answers
    status, body, _ = send(predict_event(NAME, request()))
    assert status == 200 and body["version"] == 1


def test_faults_predict_missing_artifact_is_refused_no_longer_than_its_retry_hint(stores: Stores, clock: Clock) -> None:
    # Given the registered artifact is missing once (S3 NoSuchKey)
    with faults.inject("s3.GetObject", faults.NO_SUCH_KEY):
        status, body, reply = send(predict_event(NAME, request()))
    retry = assert_retryable(reply, body, 503, "NoSuchKey")
    assert body["error"] == "ModelUnavailable"
    # When the caller waits the hint, Then the model is looked for again and answers
    clock.now += retry
    status, body, _ = send(predict_event(NAME, request()))
    assert status == 200 and body["version"] == 1


@pytest.mark.parametrize("fault", [faults.THROTTLING, faults.ACCESS_DENIED, faults.TIMEOUT, faults.CRASH])
def test_faults_feedback_write_fails_typed_and_the_retry_stores_it(
    stores: Stores, clock: Clock, fault: faults.Fault
) -> None:
    labels = {"labels": [{"request_id": "r-1", "label": "1"}]}
    send(predict_event(NAME, request()))  # the alias is cached
    # When the feedback object's write fails
    with faults.inject("s3.PutObject", fault):
        try:
            status, body, reply = send(feedback_event(NAME, labels))
        except faults.Crash:
            status = -1
    # Then the caller is told to retry (or the process died), and the retry stores the labels
    if fault is faults.CRASH:
        assert status == -1
    else:
        assert_retryable(reply, body, expected_status(fault), fault.name)
    status, body, _ = send(feedback_event(NAME, labels))
    assert status == 200 and body["accepted"] == 1
