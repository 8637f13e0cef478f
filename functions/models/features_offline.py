"""The offline store of feature views: one sorted Parquet layout per source dataset version, and
what a point-in-time join over such layouts reports.

A layout holds the source version's rows sorted by (entity key, event timestamp): the entity key
columns, the timestamp column, the features and one reserved int64 column `__entity`, the entity
code in sort order (see functions/logic/offline_store.py). Its manifest records its own sha256
and points at the dataset version it was derived from, so a training set built from it can be
traced back and rebuilt byte for byte.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from functions.models.contracts import COLUMN_NAME_PATTERN
from functions.models.registry import NAME_PATTERN

LAYOUT_FORMAT = 1
MAX_ENTITY_KEYS = 8
MAX_LAYOUT_FEATURES = 2_000
SHA256_PATTERN = r"^[0-9a-f]{64}$"

ColumnName = Annotated[str, Field(pattern=COLUMN_NAME_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class SourceVersionRef(_Strict):
    """The validated dataset version a layout was built from."""

    dataset: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1)
    sha256: str = Field(pattern=SHA256_PATTERN)


class LayoutFeature(_Strict):
    name: str = Field(pattern=COLUMN_NAME_PATTERN)
    arrow_type: str  # as pyarrow prints it: "double", "int64", "string", ...


class OfflineLayoutManifest(_Strict):
    """One offline layout: where it came from, how it is sorted, and the bytes it must hash to."""

    format: int = LAYOUT_FORMAT
    source: SourceVersionRef
    entity_keys: list[ColumnName] = Field(min_length=1, max_length=MAX_ENTITY_KEYS)
    timestamp_column: str = Field(pattern=COLUMN_NAME_PATTERN)
    features: list[LayoutFeature] = Field(max_length=MAX_LAYOUT_FEATURES)
    rows: int = Field(ge=0)
    entities: int = Field(ge=0)
    row_group_size: int = Field(ge=1)
    row_groups: int = Field(ge=0)
    sha256: str = Field(pattern=SHA256_PATTERN)
    size_bytes: int = Field(ge=0)

    @model_validator(mode="after")
    def _distinct_columns(self) -> OfflineLayoutManifest:
        names = [*self.entity_keys, self.timestamp_column, *(f.name for f in self.features)]
        if len(set(names)) != len(names):
            raise ValueError("entity keys, timestamp column and features must be distinct columns")
        return self


class PitJoinCounts(_Strict):
    """Per view, how the label rows fared. Every label row is exactly one of:
    matched  a feature row at or before the label's time and within the TTL was found (its values
             may still be null: a null inside the feature row stays null);
    missing  no feature row at or before the label's time (unknown entity, null key or null time,
             or every row of the entity later than the label);
    expired  the latest feature row at or before the label's time is older than the TTL."""

    view: str
    matched: int = Field(default=0, ge=0)
    missing: int = Field(default=0, ge=0)
    expired: int = Field(default=0, ge=0)

    @property
    def rows(self) -> int:
        return self.matched + self.missing + self.expired
