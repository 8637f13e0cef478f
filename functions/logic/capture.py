"""Capture of served rows for monitoring: buffered per execution environment, written to S3 as
gzip JSON Lines in batches, so most requests make no S3 call.

A request's rows are kept as references (no serialization on the request path); `flush()` turns
them into lines, groups them by (model, day, hour) and writes one object per group:
    captures/<model>/dt=YYYY-MM-DD/hour=HH/<epoch ms>-<uuid>.jsonl.gz
(line format: functions/models/serving.py). The buffer is flushed when it holds `max_rows` rows,
when its oldest row is `max_age_s` old (checked on each request), and on the runtime's shutdown.
A failed write is logged and counted, its rows are dropped, and nothing is raised: capture never
fails a prediction.
"""

from __future__ import annotations

import gzip
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from functions.dal.captures import put_jsonl_gz
from functions.models.serving import Variant
from functions.observability import logger

CAPTURES_PREFIX = "captures/"
FEEDBACK_PREFIX = "feedback/"

Writer = Callable[[str, str, bytes], None]


@dataclass(slots=True)
class CapturedRequest:
    """The rows of one scored request, as references (serialized only at flush time)."""

    model: str
    version: int
    variant: Variant
    request_id: str
    time_ms: int
    feature_names: tuple[str, ...]
    rows: list[list[Any]]
    predictions: list[Any]
    probabilities: list[list[float]] | None


def iso_ms(epoch_ms: int) -> str:
    """`2026-11-26T12:00:00.123Z`"""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value


def lines(request: CapturedRequest) -> list[str]:
    moment = iso_ms(request.time_ms)
    names = request.feature_names
    out = []
    for i, row in enumerate(request.rows):
        probabilities = request.probabilities[i] if request.probabilities is not None else None
        if probabilities is not None:
            probabilities = [_finite_or_none(p) for p in probabilities]
        line = {
            "request_id": request.request_id,
            "model": request.model,
            "version": request.version,
            "variant": request.variant,
            "time": moment,
            "features": dict(zip(names, row, strict=True)),
            "prediction": _finite_or_none(request.predictions[i]),
            "probabilities": probabilities,
        }
        out.append(json.dumps(line, separators=(",", ":"), default=_json_default, allow_nan=False))
    return out


def partition_key(prefix: str, model: str, epoch_ms: int, *, hourly: bool, now_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    hour = f"hour={moment:%H}/" if hourly else ""
    return f"{prefix}{model}/dt={moment:%Y-%m-%d}/{hour}{now_ms}-{uuid.uuid4().hex}.jsonl.gz"


def encode(text_lines: list[str]) -> bytes:
    return gzip.compress(("\n".join(text_lines) + "\n").encode(), compresslevel=6, mtime=0)


class CaptureBuffer:
    """Per-execution-environment buffer of captured rows. Not thread-safe by design: a Lambda
    environment serves one request at a time; the local cloud serializes handler calls."""

    def __init__(
        self,
        bucket: str,
        *,
        sample_rate: float,
        max_rows: int,
        max_age_s: float,
        writer: Writer = put_jsonl_gz,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.bucket = bucket
        self.sample_rate = sample_rate
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        self._writer = writer
        self._clock = clock
        self._wall_ms = wall_ms
        self._draw = draw
        self._pending: list[CapturedRequest] = []
        self._rows = 0
        self._oldest = 0.0
        # counters since start (tests and the shutdown log read them)
        self.rows_written = 0
        self.rows_dropped = 0
        self.objects_written = 0
        self.failures = 0

    @property
    def pending_rows(self) -> int:
        return self._rows

    def sampled(self) -> bool:
        """Whether this request is captured (one draw per request keeps a request's rows together)."""
        rate = self.sample_rate
        return rate >= 1.0 or (rate > 0.0 and self._draw() < rate)

    def add(self, request: CapturedRequest) -> None:
        if not self._pending:
            self._oldest = self._clock()
        self._pending.append(request)
        self._rows += len(request.rows)

    def due(self) -> bool:
        return bool(self._pending) and (self._rows >= self.max_rows or self._clock() - self._oldest >= self.max_age_s)

    def flush(self) -> int:
        """Write everything pending; return the rows written. Never raises."""
        pending, self._pending, self._rows = self._pending, [], 0
        if not pending or not self.bucket:
            self.rows_dropped += sum(len(p.rows) for p in pending)
            return 0
        groups: dict[tuple[str, str], list[CapturedRequest]] = {}
        for request in pending:
            hour = iso_ms(request.time_ms)[:13]
            groups.setdefault((request.model, hour), []).append(request)
        written = 0
        now_ms = self._wall_ms()
        for (model, _), requests in groups.items():
            rows = sum(len(r.rows) for r in requests)
            try:
                body = encode([line for r in requests for line in lines(r)])
                key = partition_key(CAPTURES_PREFIX, model, requests[0].time_ms, hourly=True, now_ms=now_ms)
                self._writer(self.bucket, key, body)
            except Exception:  # capture must never fail a prediction, whatever went wrong
                self.failures += 1
                self.rows_dropped += rows
                logger.exception("capture write failed; rows dropped", extra={"model": model, "rows": rows})
                continue
            written += rows
            self.objects_written += 1
        self.rows_written += written
        return written
