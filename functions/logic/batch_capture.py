"""Capture of batch-scored rows for monitoring: a bounded, deterministic sample of one chunk's
scored rows, written in serving's capture format so the drift check reads them as it reads served
traffic.

Each chunk keeps at most `cap` of its scored rows (STEPWISE_BATCH_CAPTURE_ROWS, 10,000 by default):
every scored row gets a pseudo-random priority from (job, chunk, row index) and the `cap` rows of
lowest priority are kept, piece after piece, so memory holds at most `cap` rows and a retried
chunk keeps the same rows. A 10,000,000-row job in 80 chunks so adds at most 800,000 rows to
monitoring, a uniform sample of what it scored.

The sample becomes one gzip JSON Lines object, serving's capture line per row
(functions/models/serving.py), under the hour partition of the job's request time:
    captures/<model>/dt=YYYY-MM-DD/hour=HH/batch-<job id>-<chunk:05d>.jsonl.gz
`request_id` is `batch:<job id>:<chunk>:<row>` (the row's 0-based index among the chunk's data
rows, as in the rejects part), `version` the job's version and `variant` "production" (the drift
check keeps every variant but shadow and compares outputs of the version it checks only). The
key, the rows and the bytes depend only on the job and the chunk: a retried chunk overwrites its
object with the same bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from functions.logic.capture import CAPTURES_PREFIX, CapturedRequest, encode, lines
from functions.logic.serving_runtime import OnnxModel

DEFAULT_ROWS_PER_CHUNK = 10_000
_MIX = np.uint64(0x9E3779B97F4A7C15)


def _priority(seed: np.uint64, rows: np.ndarray) -> np.ndarray:
    """splitmix64 of (seed + row): a fixed pseudo-random order of the rows (vectorised)."""
    with np.errstate(over="ignore"):
        z = rows.astype(np.uint64) * _MIX + seed
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def capture_key(model: str, job_id: str, chunk: int, at: datetime) -> str:
    return f"{CAPTURES_PREFIX}{model}/dt={at:%Y-%m-%d}/hour={at:%H}/batch-{job_id}-{chunk:05d}.jsonl.gz"


@dataclass
class CaptureSample:
    """At most `cap` scored rows of one chunk: their feature values as read, row index, prediction
    and probabilities."""

    model: OnnxModel
    job_id: str
    chunk: int
    cap: int
    _kept: pa.Table | None = None
    _keys: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))

    def __post_init__(self) -> None:
        digest = hashlib.sha256(f"{self.job_id}\n{self.chunk}".encode()).digest()
        self._seed = np.uint64(int.from_bytes(digest[:8], "little"))

    def offer(
        self, table: pa.Table, rows: np.ndarray, predictions: np.ndarray, probabilities: np.ndarray | None
    ) -> None:
        """Scored rows (`table` holds their feature columns, one row per prediction) as candidates."""
        if self.cap <= 0 or not len(rows):
            return
        features = self.model.version.features
        columns: dict[str, Any] = {}
        for f in features:
            if f.name in table.column_names:
                column = table.column(f.name)
                if pa.types.is_dictionary(column.type):
                    column = column.cast(column.type.value_type)
                columns[f.name] = column
            else:  # a nullable feature the input does not carry
                columns[f.name] = pa.nulls(len(rows))
        columns["__row"] = pa.array(rows, pa.int64())
        columns["__prediction"] = pa.array(predictions)
        if probabilities is not None:
            width = probabilities.shape[1]
            flat = pa.array(np.ascontiguousarray(probabilities, dtype=np.float64).ravel())
            columns["__probabilities"] = pa.FixedSizeListArray.from_arrays(flat, width)
        candidates = pa.table(columns)
        keys = _priority(self._seed, rows)
        if self._kept is not None:
            candidates = pa.concat_tables([self._kept, candidates], promote_options="permissive")
            keys = np.concatenate([self._keys, keys])
        if len(keys) > self.cap:
            keep = np.argpartition(keys, self.cap - 1)[: self.cap]
            candidates, keys = candidates.take(pa.array(keep)), keys[keep]
        self._kept, self._keys = candidates, keys

    @property
    def rows(self) -> int:
        return 0 if self._kept is None else self._kept.num_rows

    def encode(self, model_name: str, version: int, at: datetime) -> bytes | None:
        """The sample as one gzip JSON Lines capture object (rows in chunk order); None if empty."""
        if self._kept is None or not self._kept.num_rows:
            return None
        kept = self._kept.take(np.argsort(self._kept.column("__row").to_numpy(), kind="stable"))
        names = [f.name for f in self.model.version.features]
        values = [kept.column(n).to_pylist() for n in names]
        rows = [list(r) for r in zip(*values, strict=True)]
        predictions = kept.column("__prediction").to_pylist()
        probabilities = kept.column("__probabilities").to_pylist() if "__probabilities" in kept.column_names else None
        capture_names = tuple(names)
        if self.model.derived_outputs:  # the derived values the graph fed its pipeline, as serving records them
            _, _, derived = self.model.score_and_derive(rows)
            rows = self.model.capture_rows(rows, derived)
            capture_names = self.model.capture_names
        stamp = int(at.timestamp() * 1000)
        out: list[str] = []
        for row_id, row, prediction, probs in zip(
            kept.column("__row").to_pylist(), rows, predictions, probabilities or [None] * len(rows), strict=True
        ):
            request = CapturedRequest(
                model=model_name,
                version=version,
                variant="production",
                request_id=f"batch:{self.job_id}:{self.chunk}:{row_id}",
                time_ms=stamp,
                feature_names=capture_names,
                rows=[row],
                predictions=[prediction],
                probabilities=None if probs is None else [probs],
            )
            out += lines(request)
        return encode(out)
