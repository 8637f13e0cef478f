"""Running a compiled transformation graph (functions/logic/expressions_onnx.py): its feeds from
request values, and an ONNX Runtime session. Serving imports only this module of the expression
language, so it needs numpy and onnxruntime and nothing from training (no onnx, no pyarrow).

Feeds, per declared input type (shape [N, 1]):
- float, int, bool: float64; bool True/False -> 1/0; None (or NaN, +-inf) -> NaN (null);
- timestamp: float64 seconds since the Unix epoch, UTC, computed as whole seconds + the fraction
  (as training does from a column's ticks, so both give the same float64); a request gives a
  datetime, an ISO 8601 string (no zone means UTC) or a number of seconds; None -> NaN;
- string: the value; None and "" are the null string "".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import onnxruntime as ort

from functions.models.errors import InvalidInput
from functions.models.expressions import InputField, ValueType

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def feed_kind(kind: ValueType) -> str:
    """The ONNX element type a field of this type is fed as."""
    return "string" if kind == "string" else "double"


def timestamp_seconds(value: Any) -> float:
    """Seconds since the epoch (UTC) of a request's timestamp value; NaN for None."""
    if value is None:
        return math.nan
    if isinstance(value, bool):
        raise ValueError("a bool is not a timestamp")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        # whole seconds + the fraction: the same float64 the training side computes from ticks
        delta = value - _EPOCH
        return float(delta.days * 86_400 + delta.seconds) + delta.microseconds / 1_000_000

    raise ValueError(f"{type(value).__name__} is not a timestamp")


def _number(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool | int | float):
        return float(value)
    raise ValueError(f"{type(value).__name__} is not a number")


def request_feeds(inputs: Sequence[InputField], rows: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """The graph's feeds for request rows (dicts of field -> value; a missing field is null)."""
    feeds: dict[str, np.ndarray] = {}
    for field in inputs:
        try:
            if field.type == "string":
                strings = []
                for row in rows:
                    value = row.get(field.name)
                    if value is not None and not isinstance(value, str):
                        raise ValueError(f"{type(value).__name__} is not a string")
                    strings.append(value or "")
                feeds[field.name] = np.array(strings, dtype=object).reshape(-1, 1)
            elif field.type == "timestamp":
                times = [timestamp_seconds(row.get(field.name)) for row in rows]
                feeds[field.name] = np.array(times, dtype=np.float64).reshape(-1, 1)
            else:
                numbers = [_number(row.get(field.name)) for row in rows]
                feeds[field.name] = np.array(numbers, dtype=np.float64).reshape(-1, 1)
        except (ValueError, OverflowError) as exc:
            raise InvalidInput(f"field {field.name!r} ({field.type}): {exc}") from exc
    return feeds


# ONNX Runtime optimizers every Stepwise session turns off. NoopElimination drops `x + c`, `x - c`,
# `x * 1` and `x / 1` when it judges the constant neutral, and it judges a float64 constant after
# rounding it to float32: `f - 1e-50` becomes `f`, so at f = 0 a bucket edge at 0 flips. Graphs keep
# float64 semantics only with it off; it saves one elementwise op, nothing measurable.
DISABLED_OPTIMIZERS = ["NoopElimination"]


class TransformRunner:
    """An ONNX Runtime session over a transformation graph (or a model that starts with one)."""

    def __init__(self, content: bytes) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            content, options, providers=["CPUExecutionProvider"], disabled_optimizers=DISABLED_OPTIMIZERS
        )
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self.session.run(self.output_names, dict(feeds))
        return dict(zip(self.output_names, results, strict=True))
