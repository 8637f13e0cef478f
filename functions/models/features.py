"""Feature views: named, versioned sets of features offered by one validated source dataset.

A view names its entity key column(s), the source dataset, the dataset's event-timestamp column,
a TTL (how old a feature row may be and still be used at a label's time) and the features it
offers with their types. Whether those columns exist with those types, and whether the source's
contract declares (key, timestamp) unique, is checked against the contract when the view is
stored (functions/logic/feature_views.py), against the contract of the source's latest validated
version: a view is defined over data that passed validation, and its record pins that version
(`source_version`, with the contract version it was validated with), so a view never names
columns no validated file of its source has.

Key layout (metadata table, keys `pk`/`sk`, index `gsi1` on `gsi1pk`/`gsi1sk`):
    pk=FEATUREVIEW#<name>  sk=FEATUREVIEW          the head: latest version number (the counter)
    pk=FEATUREVIEW#<name>  sk=VERSION#<%08d>       FeatureViewRecord
                                                   (gsi1pk=FEATUREVIEWS, gsi1sk=<name>#<%08d>)
Old versions are never deleted or changed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from functions.models.contracts import COLUMN_NAME_PATTERN
from functions.models.features_offline import SourceVersionRef
from functions.models.registry import NAME_PATTERN

VIEW_HEAD_SK = "FEATUREVIEW"
VIEWS_INDEX_PK = "FEATUREVIEWS"
MAX_ENTITY_KEYS = 4
MAX_VIEW_FEATURES = 1_000
MAX_TTL_SECONDS = 10 * 366 * 24 * 3600  # ten years

ColumnName = Annotated[str, Field(pattern=COLUMN_NAME_PATTERN)]
FeatureType = Literal["int", "float", "bool", "string", "category", "timestamp"]


def view_pk(name: str) -> str:
    return f"FEATUREVIEW#{name}"


def view_version_sk(version: int) -> str:
    return f"VERSION#{version:08d}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class ViewFeature(_Strict):
    """One feature a view offers: a column of the source dataset, of the contract's type."""

    name: str = Field(pattern=COLUMN_NAME_PATTERN)
    type: FeatureType
    description: str = Field(default="", max_length=1_000)


class FeatureView(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    entity_keys: list[ColumnName] = Field(min_length=1, max_length=MAX_ENTITY_KEYS)
    source: str = Field(pattern=NAME_PATTERN)  # the source dataset's name
    timestamp_column: str = Field(pattern=COLUMN_NAME_PATTERN)
    ttl_seconds: int = Field(gt=0, le=MAX_TTL_SECONDS)
    features: list[ViewFeature] = Field(min_length=1, max_length=MAX_VIEW_FEATURES)
    description: str = Field(default="", max_length=2_000)

    @model_validator(mode="after")
    def _distinct(self) -> FeatureView:
        if len(set(self.entity_keys)) != len(self.entity_keys):
            raise ValueError(f"entity keys must be distinct: {self.entity_keys}")
        names = [f.name for f in self.features]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"feature names must be unique; repeated: {repeated}")
        if self.timestamp_column in self.entity_keys:
            raise ValueError(f"timestamp column {self.timestamp_column!r} is also an entity key")
        overlap = sorted({*self.entity_keys, self.timestamp_column} & set(names))
        if overlap:
            raise ValueError(f"features {overlap} are the view's entity key or timestamp column")
        return self


class FeatureViewRecord(_Strict):
    """One stored version of a view, with the validated source version it was defined against
    (`source_version` and the contract version that validated it; None only on records stored
    before views were pinned)."""

    name: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1)
    view: FeatureView
    source_version: SourceVersionRef | None = None
    source_contract_version: int | None = Field(default=None, ge=1)
    created_at: datetime
    created_by: str = ""


class FeatureViewList(_Strict):
    """The latest version of each view on one page, by name."""

    views: list[FeatureViewRecord]
    next_token: str | None = None  # more views: pass it as ?next_token= for the next page


class FeatureViewBody(FeatureView):
    """Body of PUT /v1/feature-views/{name}: a view; its name is the route's (when the body names
    one too, the two must agree)."""

    name: str | None = Field(default=None, pattern=NAME_PATTERN)  # type: ignore[assignment]
