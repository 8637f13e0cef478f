"""Inference Lambda: POST /v1/models/{name}/predict and POST /v1/models/{name}/feedback.

Thin: parse the JSON body, call functions/logic/serving.py, shape the reply, emit metrics.
Import graph: Powertools, pydantic, boto3, numpy, onnxruntime only (no scikit-learn, scipy or
pyarrow; tests/unit/test_serving_imports.py holds it to that).

Metrics (namespace Stepwise; dimensions service, model, version once the model is resolved):
    Invocations, Rows, Latency (ms), ModelCacheHits, ModelCacheMisses, ClientErrors,
    ServerErrors, ShadowErrors, CaptureRows (rows sampled into the capture buffer), FeedbackLabels;
    for versions trained through feature views, LookupMissing and LookupExpired ((row, view)
    lookups whose values were null for that reason) and LookupRequests (BatchGetItem calls).
With the service and model dimensions: ModelLatency, ModelServerErrors, and LookupMissShare (% of
the request's lookups missing or expired); with the service and view dimensions, LookupMissShare of
each looked-up view (% of that view's lookups in the request missing or expired).
With the service dimension only, each emitted in the invocation it happens in (the alarms watch them):
    IntegrityFailures; CaptureRowsWritten (rows written to S3), CaptureRowsDropped (rows lost to a
    failed write or serialization) and CaptureErrors (the failures that dropped them).
A request the canary could not answer (refused, or failed to load or score) is answered by
production, tagged with production's version, and counts one ServerErrors of the candidate
version: the canary check sees it as a candidate error.
"""

from __future__ import annotations

import atexit
import math
import signal
import threading
import time
import warnings
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext
from aws_lambda_powertools.warnings import PowertoolsUserWarning

from functions.handlers.errors import JSON, install_error_handlers, json_error, parse_json_object
from functions.logic.capture import CaptureCounts
from functions.logic.lookups import LookedUp
from functions.logic.serving import Serving
from functions.models.errors import IntegrityError
from functions.models.registry import NAME_PATTERN
from functions.models.serving import FeedbackRequest, ModelUnavailable
from functions.models.settings import get_settings
from functions.observability import NAMESPACE, SERVICE, logger, metrics, tracer

ModelName = Annotated[str, Path(pattern=NAME_PATTERN, max_length=63)]

app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=parse_json_object)
_serving: Serving | None = None


def serving() -> Serving:
    """The execution environment's serving state (caches, capture buffer), made on first use."""
    global _serving
    if _serving is None:
        _serving = Serving(get_settings())
    return _serving


def reset(state: Serving | None = None) -> Serving | None:
    """Replace the execution environment's state (tests: a fresh cache, a controllable clock).
    Returns the previous state, flushed (its capture metrics emitted)."""
    global _serving
    previous, _serving = _serving, state
    if previous is not None:
        _emit_capture_counts(previous.shutdown())
    return previous


def parse_body(raw: str | None) -> Any:
    """The JSON object body (a Rust parser: twice as fast as json.loads). NaN and Infinity are not
    JSON and are refused here; numbers too large for a float become inf and fail validation."""
    return parse_json_object(raw)


@app.post("/v1/models/<name>/predict")
def predict(name: ModelName):  # type: ignore[no-untyped-def]  # no return annotation: no response re-validation
    started = time.perf_counter()
    payload = parse_body(app.current_event.decoded_body)
    state = serving()
    routed = state.route(name, payload)
    if routed.refused_version is not None:
        _count_candidate_error(name, routed.refused_version)
        if isinstance(routed.refusal, IntegrityError):
            _count_integrity_failure()
    metrics.add_dimension("model", name)  # only names the registry knows: bounded cardinality
    metrics.add_dimension("version", str(routed.route.version))
    tracer.put_annotation(key="model", value=name)
    tracer.put_annotation(key="version", value=str(routed.route.version))
    outcome = state.score(routed, payload)
    if outcome.candidate_failed is not None:  # production answered instead: its metrics say so
        _count_candidate_error(name, outcome.candidate_failed)
        with warnings.catch_warnings():  # the re-tag is the point; Powertools warns on any overwrite
            warnings.simplefilter("ignore", PowertoolsUserWarning)
            metrics.add_dimension("version", str(outcome.route.version))
        tracer.put_annotation(key="version", value=str(outcome.route.version))
    metrics.add_metric("Rows", MetricUnit.Count, outcome.rows)
    metrics.add_metric("ModelCacheHits" if outcome.cache_hit else "ModelCacheMisses", MetricUnit.Count, 1)
    if outcome.captured:
        metrics.add_metric("CaptureRows", MetricUnit.Count, outcome.rows)
    if outcome.shadow_error:
        metrics.add_metric("ShadowErrors", MetricUnit.Count, 1)
    if outcome.looked_up is not None:
        _count_lookups(name, outcome.looked_up)
    reply = outcome.reply
    body = reply.model_dump_json(
        exclude_none=reply.probabilities is None, exclude={"lookups"} if reply.lookups is None else None
    )
    latency_ms = (time.perf_counter() - started) * 1e3
    metrics.add_metric("Latency", MetricUnit.Milliseconds, latency_ms)
    _model_metric("ModelLatency", name, MetricUnit.Milliseconds, latency_ms)
    return Response(status_code=200, content_type=JSON, body=body)


@app.post("/v1/models/<name>/feedback")
def feedback(name: ModelName, request: Annotated[FeedbackRequest, Body()]):  # type: ignore[no-untyped-def]
    result = serving().feedback(name, request)
    metrics.add_dimension("model", name)
    metrics.add_metric("FeedbackLabels", MetricUnit.Count, result.accepted)
    return Response(status_code=200, content_type=JSON, body=result.model_dump_json())


# -- errors: typed errors keep their status; bodies never carry stack traces or ARNs ----------
def _count_error(status: int) -> None:
    metrics.add_metric("ServerErrors" if status >= 500 else "ClientErrors", MetricUnit.Count, 1)
    name = (app.current_event.path_parameters or {}).get("name") if status >= 500 else None
    if name:
        _model_metric("ModelServerErrors", name, MetricUnit.Count, 1)


def _model_metric(metric: str, model: str, unit: MetricUnit, value: float) -> None:
    """A metric with the service and model dimensions only, what the model's own alarms watch
    (functions/logic/model_alarms.py); the invocation's metrics also carry the version."""
    with single_metric(name=metric, unit=unit, value=value, namespace=NAMESPACE) as one:
        one.add_dimension("service", SERVICE)
        one.add_dimension("model", model)


install_error_handlers(app, on_error=_count_error)


def _count_lookups(name: str, looked_up: LookedUp) -> None:
    """A version trained through feature views: its (row, view) lookups that missed or expired,
    and the BatchGetItem requests they took; the model's LookupMissShare (% of its lookups missing
    or expired) is what its `lookups` alarm watches (functions/logic/model_alarms.py), each view's
    what the view's `lookups` alarm watches (functions/logic/view_alarms.py)."""
    metrics.add_metric("LookupMissing", MetricUnit.Count, looked_up.missing)
    metrics.add_metric("LookupExpired", MetricUnit.Count, looked_up.expired)
    metrics.add_metric("LookupRequests", MetricUnit.Count, looked_up.requests)
    if looked_up.lookups:
        share = 100.0 * (looked_up.missing + looked_up.expired) / looked_up.lookups
        _model_metric("LookupMissShare", name, MetricUnit.Percent, share)
        rows = looked_up.lookups // max(1, len(looked_up.view_missed))  # each view is looked up once per row
        for view, missed in looked_up.view_missed.items():
            _view_metric("LookupMissShare", view, MetricUnit.Percent, 100.0 * missed / rows)


def _view_metric(metric: str, view: str, unit: MetricUnit, value: float) -> None:
    """A metric with the service and view dimensions only, what the view's own alarms watch
    (functions/logic/view_alarms.py)."""
    with single_metric(name=metric, unit=unit, value=value, namespace=NAMESPACE) as one:
        one.add_dimension("service", SERVICE)
        one.add_dimension("view", view)


def _service_metric(name: str, value: float) -> None:
    """One metric with the service dimension only (what the alarms watch), emitted now rather than
    with the invocation's other metrics, which carry the model and version dimensions."""
    with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=NAMESPACE) as metric:
        metric.add_dimension("service", SERVICE)


def _count_integrity_failure() -> None:
    _service_metric("IntegrityFailures", 1)


def _emit_capture_counts(counts: CaptureCounts) -> None:
    """CaptureRowsWritten, CaptureRowsDropped and CaptureErrors, each only when non-zero (a
    missing datapoint is zero to the dropped-rows alarm)."""
    if not counts:
        return
    for name, value in (
        ("CaptureRowsWritten", counts.rows_written),
        ("CaptureRowsDropped", counts.rows_dropped),
        ("CaptureErrors", counts.errors),
    ):
        if value:
            _service_metric(name, value)


def _count_candidate_error(name: str, version: int) -> None:
    """A request the canary should have answered and could not (refused, or failed to load or
    score; production answered it): a ServerErrors of the candidate version, with the dimensions
    the canary check reads (functions/dal/releases.py canary_metrics)."""
    with single_metric(name="ServerErrors", unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as metric:
        metric.add_dimension("service", SERVICE)
        metric.add_dimension("model", name)
        metric.add_dimension("version", str(version))


@app.exception_handler(IntegrityError)
def handle_integrity(exc: IntegrityError) -> Response:
    logger.error("model artifact refused", extra={"reason": exc.message})
    _count_integrity_failure()
    _count_error(503)
    return json_error(503, "ModelUnavailable", exc.message)


@app.exception_handler(ModelUnavailable)
def handle_unavailable(exc: ModelUnavailable) -> Response:
    _count_error(exc.status_code)
    logger.warning("request failed", extra={"error": type(exc).__name__, "reason": exc.message})
    retry = math.ceil(serving().models.retry_after)  # retry when the model cache looks again
    return json_error(exc.status_code, type(exc).__name__, exc.message, retry_after=retry)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    metrics.add_metric("Invocations", MetricUnit.Count, 1)
    try:
        return app.resolve(event, context)
    finally:
        _end_invocation()


def _end_invocation() -> None:
    """Before any invocation returns: write the capture buffer if it is due and report what became
    of captured rows. Lambda may freeze the environment after this and recycle it without running
    any more of our code, so this is the last point that is sure to run."""
    if _serving is not None:
        _emit_capture_counts(_serving.end_invocation())


# -- shutdown: flush captured rows when the runtime is told to stop ----------------------------
def _flush_on_exit() -> None:
    if _serving is not None:
        counts = _serving.shutdown()
        _emit_capture_counts(counts)
        if counts:
            logger.info(
                "capture flushed at shutdown",
                extra={"rows_written": counts.rows_written, "rows_dropped": counts.rows_dropped},
            )


def _on_sigterm(signum: int, frame: object) -> None:
    _flush_on_exit()
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
    else:
        raise SystemExit(0)


atexit.register(_flush_on_exit)
_previous_sigterm: Any = None
if threading.current_thread() is threading.main_thread():
    # Lambda sends SIGTERM to the runtime at SHUTDOWN only when an external extension is
    # registered (none is deployed here; an internal one may not register for SHUTDOWN), and the
    # local cloud runs the atexit hook at its SHUTDOWN phase. Neither is relied on: the flush at
    # the end of each invocation (_end_invocation) bounds what an environment can hold.
    _previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)
