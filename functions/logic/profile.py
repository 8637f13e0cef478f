"""Build the reference profile of a training table, and the binning the drift check shares with it.

`build_reference_profile(table, features)` is called by the lifecycle at training time; the drift
check bins captured values with `bin_numeric` / `category_codes` so both sides use identical bins.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.models.profile import (
    DEFAULT_BINS,
    MAX_CATEGORIES,
    QUANTILE_LEVELS,
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
)
from functions.models.registry import Feature

NUMERIC_TYPES = frozenset({"int", "float", "timestamp"})
CATEGORICAL_TYPES = frozenset({"bool", "string", "category"})
_RANGE_SLACK = 1e-6  # the edges sit a millionth of a bin outside min and max, so both are in range


def is_numeric(feature: Feature) -> bool:
    return feature.type in NUMERIC_TYPES


def numeric_values(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Non-null values of a numeric column as float64 (timestamps as epoch seconds).

    NaN stays NaN (callers count it as null); raises pa.ArrowInvalid / ArrowNotImplementedError
    when the column cannot be read as numbers.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_timestamp(column.type):
        unit_seconds = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}[column.type.unit]
        column = pc.multiply(column.cast(pa.int64()).cast(pa.float64()), unit_seconds)
    elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        raise pa.ArrowInvalid(f"a {column.type} column is not numeric")
    elif column.type != pa.float64():
        column = column.cast(pa.float64())
    if column.null_count:
        column = column.drop_null()
    return column.to_numpy(zero_copy_only=False)


def bin_edges(low: float, high: float, n_bins: int) -> tuple[float, float]:
    """(bin_low, bin_width) of n_bins fixed-width bins covering [low, high]."""
    span = high - low
    if span == 0:  # a constant: it sits mid-bin in the first bin
        width = 1.0 / n_bins
        return low - width / 2, width
    if not math.isfinite(span) or span < 0:
        raise ValueError(f"cannot bin the range [{low}, {high}]")
    # a bin never narrower than 1e-9 of the values' magnitude (nor 1e-300): float rounding of
    # (x - low) / width then stays far inside the slack, so min and max land in range
    floor = max(1e-9 * max(abs(low), abs(high)), 1e-300)
    width = max(span / (n_bins - 2 * _RANGE_SLACK), floor)
    return low - _RANGE_SLACK * width, width


class BinScratch:
    """Reusable buffers for bin_numeric: fresh 1 MB temporaries per call cost more in page faults
    than the arithmetic itself."""

    def __init__(self) -> None:
        self._pos = np.empty(0, dtype=np.float64)
        self._idx = np.empty(0, dtype=np.intp)

    def buffers(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if self._pos.size < n:
            self._pos = np.empty(n, dtype=np.float64)
            self._idx = np.empty(n, dtype=np.intp)
        return self._pos[:n], self._idx[:n]


def bin_numeric(
    values: np.ndarray, bin_low: float, bin_width: float, n_bins: int, scratch: BinScratch | None = None
) -> np.ndarray:
    """Counts over n_bins + 2 bins: [below range, bin 0 .. bin n-1, at/above range end]; NaNs ignored.

    Vectorised: one subtract, one multiply, one clip, one truncation, one bincount, in place.
    """
    if values.size == 0:
        return np.zeros(n_bins + 2, dtype=np.int64)
    if math.isnan(float(np.sum(values))):  # NaN present (or +inf and -inf): drop NaN first
        values = values[~np.isnan(values)]
    pos, idx = (scratch or BinScratch()).buffers(values.size)
    # shift by one bin so that "below range" lands in [0, 1) and truncates to 0
    np.subtract(values, bin_low - bin_width, out=pos)
    np.multiply(pos, 1.0 / bin_width, out=pos)
    np.clip(pos, 0.0, n_bins + 1, out=pos)
    np.copyto(idx, pos, casting="unsafe")  # truncation == floor for values >= 0
    return np.bincount(idx, minlength=n_bins + 2)


def _numeric_profile(feature: Feature, column: pa.ChunkedArray, n_bins: int) -> NumericProfile:
    values = numeric_values(column)
    finite = values[np.isfinite(values)]
    nulls = len(column) - finite.size
    levels = list(QUANTILE_LEVELS)
    if finite.size == 0:
        low = high = mean = std = 0.0
        quantiles = [0.0] * len(levels)
    else:
        low, high = float(finite.min()), float(finite.max())
        mean, std = float(finite.mean()), float(finite.std())
        quantiles = [float(q) for q in np.quantile(finite, levels)]
    bin_low, bin_width = bin_edges(low, high, n_bins)
    counts = bin_numeric(finite, bin_low, bin_width, n_bins)
    # finite training values are all in range by construction
    return NumericProfile(
        name=feature.name,
        type=feature.type,
        count=int(finite.size),
        null_count=int(nulls),
        min=low,
        max=high,
        mean=mean,
        std=std,
        quantile_levels=levels,
        quantile_values=quantiles,
        bin_low=bin_low,
        bin_width=bin_width,
        n_bins=n_bins,
        counts=counts[1:-1],
    )


def category_strings(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A categorical column as strings (bool as "true"/"false", dictionaries decoded)."""
    if not pa.types.is_string(column.type):
        column = column.cast(pa.string())
    return column


def _categorical_profile(feature: Feature, column: pa.ChunkedArray, max_categories: int) -> CategoricalProfile:
    strings = category_strings(column)
    nulls = strings.null_count
    counted = pc.value_counts(strings.drop_null()) if len(strings) - nulls else None
    observed: dict[str, int] = {}
    if counted is not None and len(counted):
        observed = dict(zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True))
    if feature.type == "bool":
        categories = ["false", "true"]
    elif feature.categories:
        categories = list(dict.fromkeys(feature.categories))
    else:
        categories = [v for v, _ in sorted(observed.items(), key=lambda kv: (-kv[1], kv[0]))[:max_categories]]
    counts = [int(observed.get(cat, 0)) for cat in categories]
    total = int(sum(observed.values()))
    return CategoricalProfile(
        name=feature.name,
        type=feature.type,
        count=total,
        null_count=int(nulls),
        categories=categories,
        counts=counts,
        other_count=total - sum(counts),
    )


def build_reference_profile(
    table: pa.Table,
    features: list[Feature],
    *,
    n_bins: int = DEFAULT_BINS,
    max_categories: int = MAX_CATEGORIES,
    created_at: datetime | None = None,
) -> ReferenceProfile:
    """The reference profile of a training table for the given features.

    int/float/timestamp features get a fixed-width histogram over the training range plus
    quantiles, min, max, mean, std and null count; bool/string/category features get category
    counts (declared categories if the feature lists them, else the most frequent values) and an
    "other" count that the drift check uses as the unseen bucket. Raises KeyError for a feature
    missing from the table and ValueError for a column that does not match its declared type.
    """
    profiles: list[NumericProfile | CategoricalProfile] = []
    for feature in features:
        if feature.name not in table.column_names:
            raise KeyError(f"feature {feature.name!r} is not a column of the training table")
        column = table.column(feature.name)
        try:
            if is_numeric(feature):
                profiles.append(_numeric_profile(feature, column, n_bins))
            else:
                profiles.append(_categorical_profile(feature, column, max_categories))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise ValueError(f"feature {feature.name!r} ({feature.type}) has column type {column.type}") from exc
    return ReferenceProfile(
        created_at=created_at or datetime.now(UTC),
        row_count=table.num_rows,
        features=profiles,
    )
