"""The reference profile: what the training data looked like, feature by feature.

Written at training time next to the model artifact (artifacts["profile"]) and read by every drift
check. Serialized as compact UTF-8 JSON; histogram counts are int32 little-endian arrays,
zlib-compressed and base64-encoded, so a profile of 25 features with 2,048 bins each stays far
under 300 KB. Nothing in the format is executable (no pickle).

Format (format_version 1):
    {"format": "stepwise.reference-profile", "format_version": 1, "created_at": ..., "row_count": N,
     "features": [
        {"kind": "numeric", "name": ..., "type": "float", "count": non-null rows, "null_count": ...,
         "min": ..., "max": ..., "mean": ..., "std": ..., "quantile_levels": [...],
         "quantile_values": [...], "bin_low": lo, "bin_width": w, "n_bins": n,
         "counts": "<base64(zlib(int32 LE[n]))>"},
        {"kind": "categorical", "name": ..., "type": "category", "count": ..., "null_count": ...,
         "categories": [...], "counts": [...], "other_count": values outside `categories`}],
     "outputs": {"task": ..., "row_count": holdout rows, "class_labels": [...], "features": [...]}}
    ("outputs", the model's outputs on the holdout profiled like features, is written at evaluation;
    profiles without it have no prediction-drift reference)

Numeric bins: bin i (0-based) holds lo + i*w <= x < lo + (i+1)*w; the range [lo, lo + n*w) covers
the training minimum and maximum. Values outside it are out of range (two extra bins at check time).
"""

from __future__ import annotations

import base64
import binascii
import zlib
from datetime import datetime
from typing import Annotated, Any, Final, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator

from functions.models.registry import ColumnType

PROFILE_FORMAT: Final = "stepwise.reference-profile"
PROFILE_FORMAT_VERSION: Final = 1
MAX_PROFILE_BYTES = 16 * 1024 * 1024  # refuse to parse anything larger
MAX_BINS = 65_536
DEFAULT_BINS = 2_048
MAX_CATEGORIES = 1_000
QUANTILE_LEVELS = (0.0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0)
INT32_MAX = 2**31 - 1


def _decode_counts(value: Any) -> np.ndarray:
    """int32 LE counts from their stored form (base64 of zlib), or from a list/array in memory."""
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
            inflater = zlib.decompressobj()
            data = inflater.decompress(raw, MAX_BINS * 4 + 1)  # bounded: no decompression bombs
        except (binascii.Error, zlib.error) as exc:
            raise ValueError(f"counts are not base64 zlib int32: {exc}") from exc
        if len(data) > MAX_BINS * 4 or len(data) % 4 or inflater.unconsumed_tail:
            raise ValueError("counts have an invalid length")
        arr = np.frombuffer(data, dtype="<i4").astype(np.int64)
    else:
        arr = np.asarray(value, dtype=np.int64)
    if arr.ndim != 1 or (arr.size and (arr.min() < 0 or arr.max() > INT32_MAX)):
        raise ValueError("counts must be a 1-d array of int32 values >= 0")
    return arr


def _encode_counts(arr: np.ndarray) -> str:
    return base64.b64encode(zlib.compress(np.asarray(arr, dtype="<i4").tobytes(), 9)).decode("ascii")


Int32Counts = Annotated[
    np.ndarray,
    BeforeValidator(_decode_counts),
    PlainSerializer(_encode_counts, return_type=str, when_used="json"),
]


class _ProfileModel(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, arbitrary_types_allowed=True, frozen=True)


class NumericProfile(_ProfileModel):
    kind: Literal["numeric"] = "numeric"
    name: str = Field(min_length=1, max_length=128)
    type: ColumnType
    count: int = Field(ge=0)  # non-null, finite values
    null_count: int = Field(ge=0)  # nulls and non-finite values
    min: float
    max: float
    mean: float
    std: float = Field(ge=0)
    quantile_levels: list[float] = Field(max_length=64)
    quantile_values: list[float] = Field(max_length=64)
    bin_low: float
    bin_width: float = Field(gt=0)
    n_bins: int = Field(ge=1, le=MAX_BINS)
    counts: Int32Counts

    @model_validator(mode="after")
    def _consistent(self) -> NumericProfile:
        if len(self.counts) != self.n_bins:
            raise ValueError(f"{self.name}: {len(self.counts)} counts for {self.n_bins} bins")
        if int(self.counts.sum()) != self.count:
            raise ValueError(f"{self.name}: histogram total differs from count")
        if len(self.quantile_levels) != len(self.quantile_values):
            raise ValueError(f"{self.name}: quantile levels and values differ in length")
        return self

    @property
    def null_fraction(self) -> float:
        total = self.count + self.null_count
        return self.null_count / total if total else 0.0

    @property
    def bin_high(self) -> float:
        """End (exclusive) of the binned range."""
        return self.bin_low + self.n_bins * self.bin_width


class CategoricalProfile(_ProfileModel):
    kind: Literal["categorical"] = "categorical"
    name: str = Field(min_length=1, max_length=128)
    type: ColumnType
    count: int = Field(ge=0)
    null_count: int = Field(ge=0)
    categories: list[str] = Field(max_length=10_000)
    counts: list[int] = Field(max_length=10_000)
    other_count: int = Field(default=0, ge=0)  # training values outside `categories`; the "unseen" bucket

    @model_validator(mode="after")
    def _consistent(self) -> CategoricalProfile:
        if len(self.categories) != len(self.counts):
            raise ValueError(f"{self.name}: categories and counts differ in length")
        if len(set(self.categories)) != len(self.categories):
            raise ValueError(f"{self.name}: duplicate categories")
        if sum(self.counts) + self.other_count != self.count:
            raise ValueError(f"{self.name}: category counts differ from count")
        return self

    @property
    def null_fraction(self) -> float:
        total = self.count + self.null_count
        return self.null_count / total if total else 0.0


FeatureProfile = Annotated[NumericProfile | CategoricalProfile, Field(discriminator="kind")]


class OutputProfile(_ProfileModel):
    """The model's outputs on the holdout, recorded at evaluation (ONNX, as served): profiled like
    features, so the drift check tests them the same way. Classifiers: "prediction" (categorical,
    the class labels) and "probability:<class>" (numeric, one per class; the positive class alone
    for two classes); regressors: "prediction" (numeric)."""

    task: Literal["classification", "regression"]
    row_count: int = Field(ge=0)  # holdout rows
    class_labels: list[str] = Field(default_factory=list, max_length=MAX_CATEGORIES)
    features: list[FeatureProfile] = Field(max_length=MAX_CATEGORIES + 1)


class ReferenceProfile(_ProfileModel):
    format: Literal["stepwise.reference-profile"] = PROFILE_FORMAT
    format_version: Literal[1] = PROFILE_FORMAT_VERSION
    created_at: datetime
    row_count: int = Field(ge=0)
    features: list[FeatureProfile] = Field(max_length=1_000)
    outputs: OutputProfile | None = None  # added at evaluation; absent from profiles older than that

    @model_validator(mode="after")
    def _unique(self) -> ReferenceProfile:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError("duplicate feature names in profile")
        return self

    def feature(self, name: str) -> NumericProfile | CategoricalProfile:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def to_bytes(self) -> bytes:
        """Compact UTF-8 JSON (content type application/json)."""
        return self.model_dump_json().encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> ReferenceProfile:
        """Parse and validate; raises ValueError on anything that is not a version-1 profile."""
        if len(data) > MAX_PROFILE_BYTES:
            raise ValueError(f"profile of {len(data)} bytes exceeds {MAX_PROFILE_BYTES}")
        return cls.model_validate_json(data)
