"""Data contracts: what a dataset's files must look like before anything trains on them.

A contract is stored versioned in the metadata table (see functions/dal/datasets.py); storing a
new version never deletes an old one. A contract that does not parse is refused with the field
and the reason (pydantic's error locations).

Rules a contract declares, and the rule names a validation report uses for them:
    columns            every declared column is present (and no undeclared one, unless allowed)
    rows               row count within [min_rows, max_rows]
    type:<col>         the column's values have the declared type
    nulls:<col>        no nulls (nullable=false) or at most max_null_fraction of the rows
    range:<col>        min <= value <= max (int and float columns)
    categories:<col>   value among the allowed categories (category and string columns)
    pattern:<col>      the whole value matches the regular expression (string and category)
    unique:<col>       the key column has no duplicate values
    unique:<a>+<b>     each `unique` column set has no two rows with the same values in all of its
                       columns (rows with a null in any of them are not compared), e.g.
                       "unique": [["customer_id", "event_time"]] declares the key unique per timestamp
NaN in a float column counts as a missing value (a null).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from functions.models.registry import NAME_PATTERN

ColumnType = Literal["int", "float", "bool", "string", "category", "timestamp"]

COLUMN_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\- ]{0,127}$"
MAX_COLUMNS = 2_000
MAX_CATEGORIES = 10_000
MAX_PATTERN_LENGTH = 1_000
MAX_UNIQUE_SETS = 8
MAX_UNIQUE_COLUMNS = 8


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class ColumnSpec(_Strict):
    name: str = Field(pattern=COLUMN_NAME_PATTERN)
    type: ColumnType
    nullable: bool = True
    max_null_fraction: float | None = Field(default=None, ge=0, le=1)
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = Field(default=None, min_length=1, max_length=MAX_CATEGORIES)
    pattern: str | None = Field(default=None, min_length=1, max_length=MAX_PATTERN_LENGTH)
    description: str = Field(default="", max_length=1_000)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value

    @field_validator("categories")
    @classmethod
    def _distinct(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("categories must be distinct")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ColumnSpec:
        if (self.min is not None or self.max is not None) and self.type not in ("int", "float"):
            raise ValueError(f"min/max apply to int and float columns, not {self.type}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        if self.categories is not None and self.type not in ("category", "string"):
            raise ValueError(f"categories apply to category and string columns, not {self.type}")
        if self.pattern is not None and self.type not in ("category", "string"):
            raise ValueError(f"pattern applies to category and string columns, not {self.type}")
        if self.max_null_fraction is not None and not self.nullable:
            raise ValueError("max_null_fraction needs nullable=true (nullable=false allows no nulls)")
        return self


class DataContract(_Strict):
    """The rules one dataset's files must pass. `dataset` comes from the route when omitted."""

    dataset: str | None = Field(default=None, pattern=NAME_PATTERN)
    description: str = Field(default="", max_length=2_000)
    columns: list[ColumnSpec] = Field(min_length=1, max_length=MAX_COLUMNS)
    key: str | None = None
    unique: list[list[str]] = Field(default_factory=list, max_length=MAX_UNIQUE_SETS)
    target: str | None = None
    min_rows: int = Field(default=1, ge=0)
    max_rows: int | None = Field(default=None, ge=0)
    allow_extra_columns: bool = False
    training_spec: str | None = Field(default=None, pattern=NAME_PATTERN)

    @model_validator(mode="after")
    def _consistent(self) -> DataContract:
        names = [col.name for col in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"column names must be distinct; repeated: {dupes}")
        by_name = {col.name: col for col in self.columns}
        for role in ("key", "target"):
            ref = getattr(self, role)
            if ref is not None and ref not in by_name:
                raise ValueError(f"{role} {ref!r} is not a declared column")
        if self.key is not None and by_name[self.key].type in ("float", "bool"):
            raise ValueError(f"key {self.key!r} must be an int, string, category or timestamp column")
        for columns in self.unique:
            if not 2 <= len(columns) <= MAX_UNIQUE_COLUMNS:
                raise ValueError(f"unique {columns}: name 2 to {MAX_UNIQUE_COLUMNS} columns (one column: use key)")
            if len(set(columns)) != len(columns):
                raise ValueError(f"unique {columns}: columns must be distinct")
            for name in columns:
                if name not in by_name:
                    raise ValueError(f"unique {columns}: {name!r} is not a declared column")
                if by_name[name].type in ("float", "bool"):
                    raise ValueError(f"unique {columns}: {name!r} must be an int, string, category or timestamp column")
        sets = [tuple(sorted(columns)) for columns in self.unique]
        if len(set(sets)) != len(sets):
            raise ValueError("unique column sets must be distinct")
        if self.target is not None and by_name[self.target].nullable:
            raise ValueError(f"target {self.target!r} must be declared nullable=false")
        if self.max_rows is not None and self.max_rows < self.min_rows:
            raise ValueError(f"max_rows {self.max_rows} is less than min_rows {self.min_rows}")
        return self

    def declares_unique(self, columns: list[str]) -> bool:
        """Whether no two valid rows may share the values of `columns`: the key alone is among
        them, or a declared unique set is contained in them."""
        wanted = set(columns)
        return (self.key is not None and self.key in wanted) or any(set(u) <= wanted for u in self.unique)

    def column(self, name: str) -> ColumnSpec:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)


def contract_errors(exc: Exception) -> list[dict[str, str]]:
    """A pydantic ValidationError as [{field, reason}] (what the API and CLI show)."""
    errors = getattr(exc, "errors", None)
    if errors is None:
        return [{"field": "", "reason": str(exc)}]
    return [
        {"field": ".".join(str(p) for p in err.get("loc", ())) or "(contract)", "reason": str(err.get("msg", ""))}
        for err in errors()
    ]
