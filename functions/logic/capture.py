"""Capture of served rows for monitoring: buffered per execution environment, written to S3 as
gzip JSON Lines in batches, so most requests make no S3 call.

Each captured request's rows are serialized to JSON lines at once (a steady few microseconds per
row); `flush()` compresses (gzip level 1) and writes one object per (model, hour):
    captures/<model>/dt=YYYY-MM-DD/hour=HH/<epoch ms>-<uuid>.jsonl.gz
(line format: functions/models/serving.py). The caller checks `due()` at the end of every
invocation and flushes then: when the buffer holds `max_rows` rows or its oldest row is `max_age_s`
old. So once an invocation returns, fewer than `max_rows` rows are pending and none is older than
`max_age_s`: that is all an environment recycled while idle can lose (Lambda runs no code in a
frozen environment, and delivers no SHUTDOWN to a function without an external extension).
A failed write is logged and counted, its rows are dropped, and nothing is raised: capture never
fails a prediction. `take_counts()` hands the invocation what to report as metrics.
"""

from __future__ import annotations

import gzip
import json
import math
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from functions.dal.captures import put_jsonl_gz
from functions.models.serving import Variant
from functions.observability import logger

CAPTURES_PREFIX = "captures/"
FEEDBACK_PREFIX = "feedback/"

GZIP_LEVEL = 1  # fastest: the flush (compression + PUT) is paid by the request that triggers it
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
    features_template: str | None = None  # numbers_template(): a faster, identical encoding
    lookups: list[dict[str, Any]] | None = None  # per row: where its looked-up values came from


def numbers_template(names: tuple[str, ...]) -> str:
    """`{"a":%r,"b":%r}` for rows whose values are all finite ints and floats (validated,
    non-nullable int/float features): `%r` of those is their JSON text, 40% faster than encoding a
    dict."""
    return "{" + ",".join(json.dumps(n).replace("%", "%%") + ":%r" for n in names) + "}"


def iso_ms(epoch_ms: int) -> str:
    """`2026-11-26T12:00:00.123Z`"""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=_json_default).encode


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def lines(request: CapturedRequest) -> list[str]:
    """The request's capture lines (functions/models/serving.py documents the format)."""
    head = (
        f'{{"request_id":{_dumps(request.request_id)},"model":{_dumps(request.model)},'
        f'"version":{int(request.version)},"variant":"{request.variant}","time":"{iso_ms(request.time_ms)}",'
        '"features":'
    )
    names = request.feature_names
    template = request.features_template
    probabilities = request.probabilities
    out = []
    for i, row in enumerate(request.rows):
        if probabilities is None:
            probs = "null"
        else:
            p = probabilities[i]
            probs = _dumps(p if math.isfinite(sum(p)) else [_finite_or_none(v) for v in p])
        features = template % tuple(row) if template else _dumps(dict(zip(names, row, strict=True)))
        prediction = _dumps(_finite_or_none(request.predictions[i]))
        tail = "" if request.lookups is None else f',"lookups":{_dumps(request.lookups[i])}'
        out.append(f'{head}{features},"prediction":{prediction},"probabilities":{probs}{tail}}}')
    return out


def partition_key(prefix: str, model: str, epoch_ms: int, *, hourly: bool, now_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    hour = f"hour={moment:%H}/" if hourly else ""
    return f"{prefix}{model}/dt={moment:%Y-%m-%d}/{hour}{now_ms}-{uuid.uuid4().hex}.jsonl.gz"


def encode(text_lines: list[str]) -> bytes:
    return gzip.compress(("\n".join(text_lines) + "\n").encode(), compresslevel=6, mtime=0)


@dataclass(frozen=True, slots=True)
class CaptureCounts:
    """What became of captured rows over some span: rows written to S3, rows dropped (a failed
    write or serialization, or no bucket), and the failures that dropped them."""

    rows_written: int = 0
    rows_dropped: int = 0
    errors: int = 0

    def __bool__(self) -> bool:
        return bool(self.rows_written or self.rows_dropped or self.errors)


NO_COUNTS = CaptureCounts()


@dataclass(slots=True)
class _Stream:
    """One object being built: the serialized lines of one (model, hour)."""

    model: str
    first_ms: int
    parts: list[str] = field(default_factory=list)
    rows: int = 0

    def finish(self) -> bytes:
        return gzip.compress("".join(self.parts).encode(), compresslevel=GZIP_LEVEL, mtime=0)


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
        self._streams: dict[tuple[str, int], _Stream] = {}
        self._rows = 0
        self._oldest = 0.0
        # counters since start (tests and the shutdown log read them)
        self.rows_written = 0
        self.rows_dropped = 0
        self.objects_written = 0
        self.failures = 0
        self._reported = NO_COUNTS

    @property
    def pending_rows(self) -> int:
        return self._rows

    @property
    def pending_age_s(self) -> float:
        """How long the oldest pending row has waited (0 when nothing is pending)."""
        return self._clock() - self._oldest if self._streams else 0.0

    def sampled(self) -> bool:
        """Whether this request is captured (one draw per request keeps a request's rows together)."""
        rate = self.sample_rate
        return rate >= 1.0 or (rate > 0.0 and self._draw() < rate)

    def add(self, request: CapturedRequest) -> None:
        """Serialize the request's rows now (values are final; a steady few microseconds per row);
        compression waits for the flush. A request that cannot be serialized is dropped, counted."""
        try:
            text = "\n".join(lines(request)) + "\n"
        except (TypeError, ValueError):
            self.failures += 1
            self.rows_dropped += len(request.rows)
            logger.exception("capture rows not serializable; dropped", extra={"model": request.model})
            return
        if not self._streams:
            self._oldest = self._clock()
        key = (request.model, request.time_ms // 3_600_000)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream(request.model, request.time_ms)
        stream.parts.append(text)
        stream.rows += len(request.rows)
        self._rows += len(request.rows)

    def due(self) -> bool:
        return bool(self._streams) and (self._rows >= self.max_rows or self._clock() - self._oldest >= self.max_age_s)

    def take_counts(self) -> CaptureCounts:
        """The counts since the previous call (what the current invocation has to report)."""
        reported = self._reported
        if (self.rows_written, self.rows_dropped, self.failures) == (
            reported.rows_written,
            reported.rows_dropped,
            reported.errors,
        ):
            return NO_COUNTS
        now = CaptureCounts(self.rows_written, self.rows_dropped, self.failures)
        self._reported = now
        return CaptureCounts(
            now.rows_written - reported.rows_written,
            now.rows_dropped - reported.rows_dropped,
            now.errors - reported.errors,
        )

    def flush(self) -> int:
        """Write everything pending, one object per (model, hour); return the rows written.
        Never raises: a failed write is logged and counted, and its rows are dropped."""
        streams, self._streams, self._rows = self._streams, {}, 0
        if not streams:
            return 0
        if not self.bucket:
            dropped = sum(s.rows for s in streams.values())
            self.failures += 1
            self.rows_dropped += dropped
            logger.error("no data bucket configured; captured rows dropped", extra={"rows": dropped})
            return 0
        written = 0
        now_ms = self._wall_ms()
        for stream in streams.values():
            try:
                key = partition_key(CAPTURES_PREFIX, stream.model, stream.first_ms, hourly=True, now_ms=now_ms)
                self._writer(self.bucket, key, stream.finish())
            except Exception:  # capture must never fail a prediction, whatever went wrong
                self.failures += 1
                self.rows_dropped += stream.rows
                logger.exception(
                    "capture write failed; rows dropped", extra={"model": stream.model, "rows": stream.rows}
                )
                continue
            written += stream.rows
            self.objects_written += 1
        self.rows_written += written
        return written
