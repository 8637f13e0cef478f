"""Capture lines and objects: the format the monitoring drift check reads."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.json as pj

from functions.logic.capture import (
    CaptureBuffer,
    CaptureCounts,
    CapturedRequest,
    encode,
    iso_ms,
    lines,
    numbers_template,
    partition_key,
)
from functions.models.serving import CaptureLine

T = 1_795_000_000_123  # 2026-11-19T...Z


def request(variant: str = "production", probabilities: bool = True) -> CapturedRequest:
    return CapturedRequest(
        model="churn",
        version=3,
        variant=variant,  # type: ignore[arg-type]
        request_id="r-1",
        time_ms=T,
        feature_names=("age", "plan", "active", "signup"),
        rows=[[41.5, "pro", True, datetime(2026, 1, 2, tzinfo=UTC)], [None, "free", False, None]],
        predictions=[1, 0],
        probabilities=[[0.2, 0.8], [0.9, float("nan")]] if probabilities else None,
    )


def test_capture_time_is_iso_utc_with_milliseconds() -> None:
    assert iso_ms(T) == datetime.fromtimestamp(T / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.123Z")


def test_capture_lines_follow_the_documented_schema() -> None:
    out = [json.loads(line) for line in lines(request())]
    assert [CaptureLine.model_validate(line).variant for line in out] == ["production", "production"]
    assert out[0]["features"] == {"age": 41.5, "plan": "pro", "active": True, "signup": "2026-01-02T00:00:00+00:00"}
    assert out[1]["probabilities"] == [0.9, None]  # never a NaN token
    assert out[0]["version"] == 3 and out[0]["request_id"] == "r-1"


def test_capture_objects_are_readable_by_pyarrow_json(tmp_path: Path) -> None:
    # Given a classifier's and a regressor's rows in one object
    body = encode(lines(request()) + lines(request("shadow", probabilities=False)))
    path = tmp_path / "x.jsonl.gz"
    path.write_bytes(body)
    # When pyarrow.json reads it; Then every documented column is there
    table = pj.read_json(str(path))
    assert table.num_rows == 4
    # (`lookups` is written only for versions trained through feature views)
    assert set(table.column_names) == set(CaptureLine.model_fields) - {"lookups"}
    assert table.column("variant").to_pylist() == ["production", "production", "shadow", "shadow"]
    assert gzip.decompress(body).endswith(b"\n")


def test_capture_keys_are_partitioned_by_model_day_and_hour() -> None:
    key = partition_key("captures/", "churn", T, hourly=True, now_ms=T + 5)
    moment = datetime.fromtimestamp(T / 1000, tz=UTC)
    assert key.startswith(f"captures/churn/dt={moment:%Y-%m-%d}/hour={moment:%H}/{T + 5}-")
    assert key.endswith(".jsonl.gz")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_capture_buffer_is_due_by_rows_or_age() -> None:
    clock = Clock()
    buffer = CaptureBuffer("bucket", sample_rate=1.0, max_rows=5, max_age_s=60, clock=clock)
    assert not buffer.due()
    buffer.add(request())
    assert not buffer.due()
    clock.now = 60
    assert buffer.due()
    buffer2 = CaptureBuffer("bucket", sample_rate=1.0, max_rows=4, max_age_s=60, clock=clock)
    buffer2.add(request())
    buffer2.add(request())
    assert buffer2.due() and buffer2.pending_rows == 4


def test_capture_sampling_rate_bounds() -> None:
    never = CaptureBuffer("b", sample_rate=0.0, max_rows=1, max_age_s=1)
    always = CaptureBuffer("b", sample_rate=1.0, max_rows=1, max_age_s=1)
    assert not any(never.sampled() for _ in range(100))
    assert all(always.sampled() for _ in range(100))


def test_capture_without_bucket_drops_and_counts() -> None:
    buffer = CaptureBuffer("", sample_rate=1.0, max_rows=1, max_age_s=1)
    buffer.add(request())
    assert buffer.flush() == 0 and buffer.rows_dropped == 2 and buffer.failures == 1
    assert buffer.take_counts() == CaptureCounts(rows_written=0, rows_dropped=2, errors=1)


def test_capture_counts_are_reported_once() -> None:
    # Given a write that fails, then one that succeeds
    written: list[str] = []

    def writer(bucket: str, key: str, body: bytes) -> None:
        if not written:
            written.append("refused")
            raise OSError("refused")
        written.append(key)

    clock = Clock()
    buffer = CaptureBuffer("bucket", sample_rate=1.0, max_rows=100, max_age_s=60, writer=writer, clock=clock)
    assert not buffer.take_counts() and buffer.pending_age_s == 0.0
    buffer.add(request())
    clock.now = 5
    assert buffer.pending_age_s == 5
    buffer.flush()
    # Then each span's counts are handed out once: the failure, then the write
    assert buffer.take_counts() == CaptureCounts(rows_written=0, rows_dropped=2, errors=1)
    assert not buffer.take_counts()
    buffer.add(request())
    buffer.add(request())
    assert buffer.flush() == 4
    assert buffer.take_counts() == CaptureCounts(rows_written=4, rows_dropped=0, errors=0)
    assert (buffer.rows_written, buffer.rows_dropped, buffer.failures) == (4, 2, 1)


def test_capture_numbers_template_encodes_exactly_like_json() -> None:
    # Given numeric rows (validated, finite) and names that need escaping
    names = ("mean radius", 'quote"d', "50%", "n")
    rows = [[17.99, 0.1, -3.5e-07, 41], [1e300, -0.0, 2.0, -(2**53)]]
    plain = CapturedRequest("m", 1, "production", "r", T, names, rows, [1, 0], None)
    fast = CapturedRequest("m", 1, "production", "r", T, names, rows, [1, 0], None, numbers_template(names))
    # Then the template gives the same lines as the JSON encoder
    assert lines(fast) == lines(plain)
    assert [json.loads(line)["features"] for line in lines(fast)] == [dict(zip(names, r, strict=True)) for r in rows]
