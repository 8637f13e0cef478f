"""Serving use cases: resolve a model's aliases (short TTL cache), load versions (verified, LRU),
route, validate against the answering version's contract, score, capture; and store feedback.

One `Serving` lives per execution environment (the handler module holds it); nothing here knows
about Lambda or HTTP.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pydantic import ValidationError

from functions.dal import artifacts, online_lookup
from functions.dal import registry as registry_dal
from functions.dal.captures import put_jsonl_gz
from functions.logic.capture import (
    FEEDBACK_PREFIX,
    CaptureBuffer,
    CaptureCounts,
    CapturedRequest,
    encode,
    iso_ms,
    partition_key,
)
from functions.logic.lookups import Fetch, LookedUp, look_up, refuse_overrides
from functions.logic.routing import Route, choose
from functions.logic.serving_runtime import OnnxModel
from functions.models.errors import IntegrityError, NotFound, StepwiseError, StoreUnavailable
from functions.models.registry import ModelRecord
from functions.models.serving import (
    REQUEST_ID_PATTERN,
    FeedbackReply,
    FeedbackRequest,
    ModelUnavailable,
    PredictReply,
    RequestInvalid,
    error_details,
)
from functions.models.settings import Settings
from functions.observability import logger, tracer

MAX_ARTIFACT_BYTES = 512 * 1024 * 1024
_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)


class AliasCache:
    """ModelRecord per model name, re-read from the registry after `ttl` seconds (also caches
    "no such model", so a flood of unknown names costs one read per name per TTL)."""

    def __init__(self, table: str, ttl: float, clock: Callable[[], float]) -> None:
        self.table = table
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[float, ModelRecord | None]] = {}

    def get(self, name: str) -> ModelRecord:
        now = self._clock()
        entry = self._entries.get(name)
        if entry is None or now >= entry[0]:
            record = registry_dal.get_model(self.table, name)
            if len(self._entries) > 1_000:
                self._entries.clear()
            entry = (now + self.ttl, record)
            self._entries[name] = entry
        if entry[1] is None:
            raise NotFound(f"no model named {name!r}")
        return entry[1]


class ModelCache:
    """Loaded versions, at most `capacity`, least recently used evicted. A version whose artifact
    fails verification (or is missing) is remembered as refused for `retry_after` seconds, the
    retry hint its 503 carries, and never served. A store that throttled or did not answer is not
    remembered: the next request tries again."""

    def __init__(
        self,
        *,
        table: str,
        artifacts_bucket: str,
        capacity: int,
        max_instances: int,
        retry_after: float,
        clock: Callable[[], float],
    ) -> None:
        self.table = table
        self.artifacts_bucket = artifacts_bucket
        self.capacity = capacity
        self.max_instances = max_instances
        self.retry_after = retry_after
        self._clock = clock
        self._models: OrderedDict[tuple[str, int], OnnxModel] = OrderedDict()
        self._refused: dict[tuple[str, int], tuple[float, StepwiseError]] = {}
        self._lock = threading.Lock()
        self.loads = 0

    def __contains__(self, key: tuple[str, int]) -> bool:
        return key in self._models

    def get(self, name: str, version: int) -> tuple[OnnxModel, bool]:
        """(model, cache hit)."""
        key = (name, version)
        model = self._models.get(key)
        if model is not None:
            self._models.move_to_end(key)
            return model, True
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                return model, True
            refused = self._refused.get(key)
            if refused is not None and self._clock() < refused[0]:
                raise type(refused[1])(refused[1].message)  # a fresh error: no traceback growth
            try:
                model = self._load(name, version)
            except (IntegrityError, ModelUnavailable) as exc:
                self._refused[key] = (self._clock() + self.retry_after, exc)
                raise
            self._refused.pop(key, None)
            self._models[key] = model
            while len(self._models) > self.capacity:
                evicted, _ = self._models.popitem(last=False)
                logger.info("model evicted from cache", extra={"model": evicted[0], "version": evicted[1]})
            return model, False

    @tracer.capture_method(capture_response=False)
    def _load(self, name: str, version: int) -> OnnxModel:
        record = registry_dal.get_version(self.table, name, version)
        if record is None:
            raise ModelUnavailable(f"{name} v{version} is aliased but not registered")
        artifact = record.artifacts.get("onnx")
        if artifact is None:
            raise ModelUnavailable(f"{name} v{version} has no ONNX artifact")
        bucket, _ = artifacts.split_uri(artifact.uri)
        if bucket != self.artifacts_bucket:
            raise IntegrityError(f"{name} v{version}: the artifact is outside the artifacts bucket; not served")
        started = time.perf_counter()
        try:
            content = artifacts.read_bounded(artifact.uri, max_bytes=min(MAX_ARTIFACT_BYTES, artifact.size_bytes))
        except IntegrityError as exc:
            raise IntegrityError(f"{name} v{version}: {exc.message} (failed verification); not served") from exc
        if content is None:  # refused for `retry_after` seconds, then looked for again
            raise ModelUnavailable(f"{name} v{version}: the model artifact is missing from the artifacts bucket")
        model = OnnxModel.load(record, content, max_instances=self.max_instances)
        self.loads += 1
        logger.info(
            "model loaded",
            extra={
                "model": name,
                "version": version,
                "bytes": len(content),
                "ms": (time.perf_counter() - started) * 1e3,
            },
        )
        return model


@dataclass
class Routed:
    """A request's answering version, loaded."""

    name: str
    request_id: str | None
    route: Route
    model: OnnxModel
    cache_hit: bool
    refused_version: int | None = None  # a canary whose artifact was refused (production answered)
    refusal: StepwiseError | None = None  # why it was refused
    production_version: int | None = None  # who answers if the candidate fails to score


@dataclass
class Outcome:
    """What a predict call did: the reply, and facts for metrics."""

    reply: PredictReply
    route: Route
    rows: int
    cache_hit: bool
    shadow_error: bool = False
    captured: bool = False
    candidate_failed: int | None = None  # the canary failed to score this request; production answered
    looked_up: LookedUp | None = None  # a version trained through feature views: its lookups


def _request_id(payload: Any) -> str | None:
    """The caller's request id, checked before routing (the version's model re-checks it)."""
    if not isinstance(payload, dict):
        raise RequestInvalid(
            "the body must be a JSON object",
            [{"field": "body", "reason": "must be a JSON object", "type": "dict_type"}],
        )
    value = payload.get("request_id")
    if value is None:
        return None
    if not isinstance(value, str) or _REQUEST_ID.fullmatch(value) is None:
        raise RequestInvalid(
            "request_id is not valid",
            [{"field": "request_id", "reason": f"must be a string matching {REQUEST_ID_PATTERN}", "type": "pattern"}],
        )
    return value


# looked-up rows of a validated request for a version with lookups, as of the request time (µs)
LookUp = Callable[[OnnxModel, list[Any], int], LookedUp]


@dataclass
class _Scored:
    rows: list[list[Any]]
    predictions: list[Any]
    probabilities: list[list[float]] | None
    derived: list[np.ndarray]
    looked_up: LookedUp | None = None


def _run(model: OnnxModel, payload: Any, now_us: int, lookups: LookUp) -> _Scored:
    """The rows of `payload` validated against `model`'s contract (with their looked-up features,
    for a version trained through feature views), scored; derived: what a derived-feature graph fed
    its pipeline, see OnnxModel.score_and_derive."""
    if model.lookup is not None:
        refuse_overrides(model.lookup, payload)
    try:
        request = model.request_model.model_validate(payload)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        raise RequestInvalid(f"{len(errors)} field(s) do not match the input contract", error_details(errors)) from None
    instances = request.instances  # type: ignore[attr-defined]
    looked_up = None
    if model.lookup is None:
        rows = model.rows(instances)
    else:
        looked_up = lookups(model, instances, now_us)
        rows = looked_up.rows
    predictions, probabilities, derived = model.score_and_derive(rows)
    return _Scored(rows, predictions, probabilities, derived, looked_up)


def _fetch(table: str, keys: Sequence[str], views: Sequence[str]) -> tuple[dict[str, dict[str, Any]], int]:
    fetched = online_lookup.batch_get(table, keys, views)
    return fetched.items, fetched.requests


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat() + "Z"


class Serving:
    """The inference use cases of one execution environment."""

    def __init__(
        self,
        settings: Settings,
        *,
        capture: CaptureBuffer | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        draw: Callable[[], float] = random.random,
        online_fetch: Fetch | None = None,
    ) -> None:
        self.settings = settings
        self._wall_ms = wall_ms
        self.online_fetch = online_fetch
        self._draw = draw
        self.aliases = AliasCache(settings.registry_table, settings.alias_cache_ttl_seconds, clock)
        self.models = ModelCache(
            table=settings.registry_table,
            artifacts_bucket=settings.artifacts_bucket,
            capacity=settings.model_cache_size,
            max_instances=settings.max_instances,
            retry_after=max(settings.alias_cache_ttl_seconds, 1.0),
            clock=clock,
        )
        self.capture = capture or CaptureBuffer(
            settings.data_bucket,
            sample_rate=settings.capture_sample_rate,
            max_rows=settings.capture_flush_rows,
            max_age_s=settings.capture_flush_seconds,
            clock=clock,
            wall_ms=wall_ms,
            draw=draw,
        )

    # -- predict ---------------------------------------------------------------------------
    def route(self, name: str, payload: Any) -> Routed:
        """Resolve the aliases, choose the answering version and load it (404, 422 or 503 here)."""
        record = self.aliases.get(name)
        request_id = _request_id(payload)
        route = choose(record, request_id, self._draw)
        try:
            model, hit = self.models.get(name, route.version)
        except (IntegrityError, ModelUnavailable) as exc:
            if route.variant != "candidate" or record.production_version is None:
                raise
            # a refused canary never answers: production does; the refusal is logged, and the
            # handler counts it as a candidate error (what the canary check reads) and, for a
            # failed verification, an integrity failure (what the integrity alarm watches)
            logger.error("candidate refused; production answers", extra={"model": name, "version": route.version})
            refused = route.version
            route = Route(record.production_version, "production")
            model, hit = self.models.get(name, route.version)
            return Routed(name, request_id, route, model, hit, refused_version=refused, refusal=exc)
        return Routed(
            name=name,
            request_id=request_id,
            route=route,
            model=model,
            cache_hit=hit,
            production_version=record.production_version,
        )

    def predict(self, name: str, payload: Any) -> Outcome:
        return self.score(self.route(name, payload), payload)

    def score(self, routed: Routed, payload: Any) -> Outcome:
        """Validate against the answering version's contract, score, capture, shadow-score. A
        canary that fails to score (its session raises) never answers: production does, and the
        outcome names the failed candidate."""
        failed = None
        now_ms = self._wall_ms()
        try:
            scored = _run(routed.model, payload, now_ms * 1000, self.look_up)
        except (RequestInvalid, StoreUnavailable):  # the caller's, or the online store's: not the canary's
            raise
        except Exception:
            if routed.route.variant != "candidate" or routed.production_version is None:
                raise
            failed = routed.route.version
            logger.exception("candidate failed to score; production answers", extra={"model": routed.name})
            route = Route(routed.production_version, "production")
            model, hit = self.models.get(routed.name, route.version)
            routed = Routed(routed.name, routed.request_id, route, model, hit)
            scored = _run(model, payload, now_ms * 1000, self.look_up)
        model, route, name = routed.model, routed.route, routed.name
        rows, predictions, derived = scored.rows, scored.predictions, scored.derived
        probabilities = scored.probabilities
        rid = routed.request_id or uuid.uuid4().hex
        provenance = None if scored.looked_up is None else scored.looked_up.provenance
        outcome = Outcome(
            reply=PredictReply.model_construct(
                model=name,
                version=route.version,
                predictions=predictions,
                probabilities=probabilities,
                request_id=rid,
                lookups=provenance,
            ),
            route=route,
            rows=len(rows),
            cache_hit=routed.cache_hit,
            candidate_failed=failed,
            looked_up=scored.looked_up,
        )
        capture = self.capture
        sampled = capture.sampled()
        if sampled:
            capture.add(
                CapturedRequest(
                    name,
                    route.version,
                    route.variant,
                    rid,
                    now_ms,
                    model.capture_names,
                    model.capture_rows(rows, derived),
                    predictions,
                    probabilities,
                    model.capture_template,
                    provenance,
                )
            )
            outcome.captured = True
        if route.shadow_version is not None:
            outcome.shadow_error = not self._shadow(name, route.shadow_version, payload, rid, now_ms, sampled)
        return outcome

    def _shadow(self, name: str, version: int, payload: Any, rid: str, now_ms: int, sampled: bool) -> bool:
        """Score with the shadow version; its failures never reach the caller. True if it scored."""
        try:
            model, _ = self.models.get(name, version)
            scored = _run(model, payload, now_ms * 1000, self.look_up)
        except Exception:
            logger.warning("shadow scoring failed", extra={"model": name, "version": version}, exc_info=True)
            return False
        if sampled:
            self.capture.add(
                CapturedRequest(
                    name,
                    version,
                    "shadow",
                    rid,
                    now_ms,
                    model.capture_names,
                    model.capture_rows(scored.rows, scored.derived),
                    scored.predictions,
                    scored.probabilities,
                    model.capture_template,
                    None if scored.looked_up is None else scored.looked_up.provenance,
                )
            )
        return True

    def look_up(self, model: OnnxModel, instances: list[Any], now_us: int) -> LookedUp:
        """The looked-up rows of a version trained through feature views (one BatchGetItem per 100
        distinct entity keys of the request, across its views)."""
        assert model.lookup is not None
        table = self.settings.online_table
        if not table:
            raise ModelUnavailable(
                f"{model.version.model} v{model.version.version} looks up feature views, but this function has "
                "no online store (STEPWISE_ONLINE_TABLE)"
            )
        fetch = self.online_fetch or (lambda keys, views: _fetch(table, keys, views))
        return look_up(model.lookup, instances, now_us, fetch)

    # -- feedback --------------------------------------------------------------------------
    def feedback(self, name: str, request: FeedbackRequest) -> FeedbackReply:
        """Ground-truth labels, one gzip JSON Lines object per call under feedback/<model>/dt=.../."""
        self.aliases.get(name)  # 404 for unknown models
        now_ms = self._wall_ms()
        received = iso_ms(now_ms)
        text = [
            json.dumps(
                {
                    "request_id": label.request_id,
                    "model": name,
                    "label": label.label,
                    "time": received,
                    "event_time": _iso(label.event_time),
                },
                separators=(",", ":"),
                allow_nan=False,
            )
            for label in request.labels
        ]
        key = partition_key(FEEDBACK_PREFIX, name, now_ms, hourly=False, now_ms=now_ms)
        put_jsonl_gz(self.settings.data_bucket, key, encode(text))
        return FeedbackReply(model=name, accepted=len(text), key=key)

    # -- the end of an invocation and of the environment ------------------------------------
    def end_invocation(self) -> CaptureCounts:
        """Called before every invocation returns, whatever its outcome: write the capture buffer
        if it is due (full, or its oldest row at the age bound), so an environment that is frozen
        now and recycled later loses only rows younger than the bound. Returns what became of
        captured rows during the invocation, for its metrics."""
        capture = self.capture
        if capture.due():
            capture.flush()
        return capture.take_counts()

    def shutdown(self) -> CaptureCounts:
        """Flush the capture buffer (the runtime is going away); returns what became of the rows
        not yet reported."""
        self.capture.flush()
        return self.capture.take_counts()
