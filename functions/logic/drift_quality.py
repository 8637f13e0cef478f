"""Live data quality: the data contract a model version was trained under, its single-row rules
(types, nullability, ranges, categories, patterns) evaluated on the window's captured inputs.

The rules are the validation code's own (functions/logic/validation.py `check_table`, vectorised
over Arrow columns), run one column at a time as the drift check reads it, so a column is decoded
once for both. Per rule: the offending rows, their share of the window and the request ids of the
first 20. Rules over the whole file (row counts, uniqueness, max_null_fraction) do not apply to a
stream of single requests; columns the model does not take are not captured and not checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

from functions.logic.compaction import REQUEST_ID, VARIANT
from functions.logic.drift import SHADOW, ParquetRowGroup
from functions.logic.validation import check_table
from functions.models.contracts import DataContract
from functions.models.datasets import MAX_EXAMPLES
from functions.models.drift import DataQuality, DriftConfig, RuleViolations

Batch: TypeAlias = ParquetRowGroup | pa.Table | pa.RecordBatch


@dataclass
class _Tally:
    column: str
    violations: int = 0
    request_ids: list[str] = field(default_factory=list)
    values: list[str | None] = field(default_factory=list)


def captured_contract(contract: DataContract, features: list[str]) -> DataContract | None:
    """The contract's columns the model takes (the captured ones), with their single-row rules;
    None when it declares none of them."""
    wanted = set(features)
    columns = [spec.model_copy(update={"max_null_fraction": None}) for spec in contract.columns if spec.name in wanted]
    return DataContract(columns=columns, allow_extra_columns=True) if columns else None


class DataQualityAccumulator:
    """Rule violations of the window's captured rows, fed a row group at a time (`begin`, then each
    column as it is read, then `end`, which checks the columns nobody read)."""

    def __init__(
        self, contract: DataContract | None, features: list[str], *, dataset: str, contract_version: int
    ) -> None:
        self.contract = None if contract is None else captured_contract(contract, features)
        self.dataset = dataset
        self.contract_version = contract_version
        self.rows = 0
        self._columns = frozenset(c.name for c in self.contract.columns) if self.contract else frozenset()
        self._tallies: dict[str, _Tally] = {}
        self._batch: Batch | None = None
        self._keep: pa.Array | None = None
        self._kept = 0
        self._seen: set[str] = set()
        self._request_ids: pa.Array | None = None

    # -- one row group -----------------------------------------------------------------------
    def begin(self, batch: Batch) -> None:
        self._batch, self._keep, self._seen, self._request_ids = batch, None, set(), None
        names = batch.names if isinstance(batch, ParquetRowGroup) else frozenset(batch.schema.names)
        n = batch.num_rows
        if VARIANT in names and (not isinstance(batch, ParquetRowGroup) or batch.may_hold(VARIANT, SHADOW)):
            not_shadow = pc.fill_null(pc.not_equal(batch.column(VARIANT), SHADOW), True)
            kept = int(pc.sum(not_shadow).as_py() or 0)
            if kept < n:  # shadow rows repeat a request production answered: checked once
                self._keep = not_shadow.combine_chunks() if isinstance(not_shadow, pa.ChunkedArray) else not_shadow
                n = kept
        self._kept = n
        if self.contract is not None:
            self.rows += n

    def column(self, name: str, values: pa.Array | pa.ChunkedArray) -> None:
        """Check one column of the current row group (called as the drift check reads it)."""
        if self.contract is None or self._batch is None or name not in self._columns or name in self._seen:
            return
        self._seen.add(name)
        if not self._kept:
            return
        if self._keep is not None:
            values = values.filter(self._keep)
        if isinstance(values, pa.Array):
            values = pa.chunked_array([values])
        part = check_table(pa.table({name: values}), self.contract, present=[name])
        for rule, tally in part.tallies.items():
            if not tally.offending:
                continue
            mine = self._tallies.setdefault(rule, _Tally(column=name))
            mine.violations += tally.offending
            room = MAX_EXAMPLES - len(mine.request_ids)
            examples = tally.examples[:room]
            if examples:
                ids = self._ids()
                rows = pa.array([e.row for e in examples], pa.int64())
                mine.request_ids.extend("" if v is None else str(v) for v in ids.take(rows).to_pylist())
                mine.values.extend(e.value for e in examples)

    def end(self) -> None:
        """Check the contract's columns present in this row group that were not read by the check."""
        batch = self._batch
        if batch is not None and self.contract is not None:
            names = batch.names if isinstance(batch, ParquetRowGroup) else frozenset(batch.schema.names)
            for name in sorted((self._columns & names) - self._seen):
                self.column(name, batch.column(name))
        self._batch, self._keep, self._request_ids = None, None, None

    def _ids(self) -> pa.Array:
        """The kept rows' request ids (read only when a rule has examples to name)."""
        if self._request_ids is None:
            batch = self._batch
            assert batch is not None
            names = batch.names if isinstance(batch, ParquetRowGroup) else frozenset(batch.schema.names)
            if REQUEST_ID in names:
                ids = batch.column(REQUEST_ID)
                if self._keep is not None:
                    ids = ids.filter(self._keep)
                ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
            else:
                ids = pa.nulls(self._kept, pa.string())
            self._request_ids = ids
        return self._request_ids

    def add(self, batch: Batch) -> None:
        """One batch on its own (every contract column read here)."""
        self.begin(batch)
        self.end()

    # -- the section -------------------------------------------------------------------------
    def finish(self, config: DriftConfig) -> DataQuality:
        limit = config.max_violation_rate
        common = {
            "rows": self.rows,
            "dataset": self.dataset,
            "contract_version": self.contract_version,
            "max_violation_rate": limit,
        }
        if self.contract is None:
            why = (
                f"contract {self.dataset} v{self.contract_version} declares none of the model's features"
                if self.dataset
                else "the version names no data contract"
            )
            return DataQuality(verdict="no_contract", reason=why, **common)  # type: ignore[arg-type]
        if self.rows == 0:
            return DataQuality(verdict="no_data", reason="no captured rows in the window", **common)  # type: ignore[arg-type]
        rules = []
        for rule, tally in sorted(self._tallies.items()):
            rate = tally.violations / self.rows
            rules.append(
                RuleViolations(
                    rule=rule,
                    column=tally.column,
                    violations=tally.violations,
                    rate=min(1.0, rate),
                    failed=rate > limit,
                    request_ids=tally.request_ids,
                    values=tally.values,
                )
            )
        failed = [r.rule for r in rules if r.failed]
        checked = len(self.contract.columns)
        if failed:
            reason = f"{len(failed)} rule(s) broken by more than {limit:.2%} of {self.rows} rows: {', '.join(failed)}"
        elif rules:
            reason = f"{len(rules)} rule(s) broken, each by at most {limit:.2%} of {self.rows} rows"
        else:
            reason = f"every rule of {checked} contract column(s) holds on {self.rows} rows"
        return DataQuality(
            verdict="fail" if failed else "pass",
            reason=reason,
            failed_rules=failed,
            rules=rules,
            **common,  # type: ignore[arg-type]
        )
