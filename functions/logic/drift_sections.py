"""The drift check's three sections over one pass of the window: inputs (feature drift,
functions/logic/drift.py), outputs (prediction drift, drift_outputs.py) and data quality (the
contract's single-row rules, drift_quality.py), and the overall verdict over them.

Each row group is read once: the input accumulator reads the feature columns one at a time, and
every column it reads is handed to the data-quality pass too (a tee), so the contract's rules cost
Arrow kernels, not a second Parquet decode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from functions.logic.compaction import LOOKUP_PREFIX
from functions.logic.drift import DriftAccumulator, ParquetRowGroup, finish
from functions.logic.drift_outputs import OutputAccumulator
from functions.logic.drift_quality import DataQualityAccumulator
from functions.models.contracts import DataContract
from functions.models.drift import (
    DataQuality,
    DriftConfig,
    DriftReport,
    LookupQuality,
    ModelVerdict,
    OutputDrift,
    Overall,
)
from functions.models.profile import ReferenceProfile


class _TeeRowGroup(ParquetRowGroup):
    """A row group (Parquet, or a table/batch in memory) whose column reads are also handed to a
    listener."""

    def __init__(
        self,
        inner: ParquetRowGroup | pa.Table | pa.RecordBatch,
        listener: Callable[[str, pa.Array | pa.ChunkedArray], None],
    ) -> None:
        self._inner = inner
        self._listener = listener
        self.num_rows = inner.num_rows
        self.names = inner.names if isinstance(inner, ParquetRowGroup) else frozenset(inner.schema.names)

    def column(self, name: str) -> pa.ChunkedArray:
        values = self._inner.column(name)
        self._listener(name, values)
        return values  # type: ignore[return-value]

    def may_hold(self, name: str, value: str) -> bool:
        return self._inner.may_hold(name, value) if isinstance(self._inner, ParquetRowGroup) else True


class WindowCheck:
    """The three sections' accumulators, fed the window a row group at a time."""

    def __init__(
        self,
        profile: ReferenceProfile,
        *,
        version: int,
        contract: DataContract | None = None,
        dataset: str = "",
        contract_version: int = 0,
        lookup_views: Sequence[str] = (),
    ) -> None:
        self.inputs = DriftAccumulator(profile)
        # per looked-up view: [lookups, missing, expired] over the window's rows (compacted
        # captures' `__lookup:<view>` status columns; a row without one is not counted)
        self.lookups = {view: [0, 0, 0] for view in lookup_views}
        self.outputs = OutputAccumulator(profile, version)
        features = [f.name for f in profile.features]
        self.quality = DataQualityAccumulator(contract, features, dataset=dataset, contract_version=contract_version)

    def add(self, batch: ParquetRowGroup | pa.Table | pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        self.quality.begin(batch)
        self.inputs.add(_TeeRowGroup(batch, self.quality.column))
        self.quality.end()
        self.outputs.add(batch)
        names = batch.names if isinstance(batch, ParquetRowGroup) else frozenset(batch.schema.names)
        for view, tally in self.lookups.items():
            if LOOKUP_PREFIX + view not in names:
                continue
            status = batch.column(LOOKUP_PREFIX + view)
            tally[0] += len(status) - status.null_count
            tally[1] += int(pc.sum(pc.equal(status, "missing")).as_py() or 0)
            tally[2] += int(pc.sum(pc.equal(status, "expired")).as_py() or 0)

    def finish(
        self,
        config: DriftConfig,
        *,
        model: str,
        version: int,
        window_start: datetime | None = None,
        window_end: datetime | None = None,
        rejected_rows: int = 0,
        check_id: str | None = None,
        now: datetime | None = None,
    ) -> DriftReport:
        report = finish(
            self.inputs,
            config,
            model=model,
            version=version,
            window_start=window_start,
            window_end=window_end,
            rejected_rows=rejected_rows,
            check_id=check_id,
            now=now,
        )
        outputs = self.outputs.finish(config, model=model)
        quality = self.quality.finish(config)
        if self.lookups:
            quality = quality.model_copy(
                update={
                    "lookups": [
                        LookupQuality(
                            view=view,
                            lookups=n,
                            missing=missing,
                            expired=expired,
                            missing_share=missing / n if n else 0.0,
                            expired_share=expired / n if n else 0.0,
                        )
                        for view, (n, missing, expired) in self.lookups.items()
                    ]
                }
            )
        return report.model_copy(
            update={"outputs": outputs, "data_quality": quality, "overall": overall(report.verdict, outputs, quality)}
        )


def overall(inputs: ModelVerdict, outputs: OutputDrift, quality: DataQuality) -> Overall:
    """Fail when any section fails, pass when the three pass, else inconclusive."""
    failing = []
    if inputs in (ModelVerdict.DRIFT, ModelVerdict.SCHEMA_MISMATCH):
        failing.append(f"inputs: {inputs.value}")
    if outputs.verdict == "drift":
        failing.append("outputs: drift")
    if quality.verdict == "fail":
        failing.append("data quality: fail")
    if failing:
        return Overall(verdict="fail", reason="; ".join(failing))
    open_ = []
    if inputs != ModelVerdict.NO_DRIFT:
        open_.append(f"inputs: {inputs.value}")
    if outputs.verdict != "no_drift":
        open_.append(f"outputs: {outputs.verdict}")
    if quality.verdict != "pass":
        open_.append(f"data quality: {quality.verdict}")
    if open_:
        return Overall(verdict="inconclusive", reason="; ".join(open_))
    return Overall(verdict="pass", reason="inputs: no_drift; outputs: no_drift; data quality: pass")


def check_window(
    profile: ReferenceProfile,
    batches: Iterable[ParquetRowGroup | pa.Table | pa.RecordBatch],
    config: DriftConfig | None = None,
    *,
    model: str,
    version: int,
    contract: DataContract | None = None,
    dataset: str = "",
    contract_version: int = 0,
    rejected_rows: int = 0,
    now: datetime | None = None,
    lookup_views: Sequence[str] = (),
) -> DriftReport:
    """The three sections over every batch (for callers with the window at hand)."""
    check = WindowCheck(
        profile,
        version=version,
        contract=contract,
        dataset=dataset,
        contract_version=contract_version,
        lookup_views=lookup_views,
    )
    for batch in batches:
        check.add(batch)
    return check.finish(config or DriftConfig(), model=model, version=version, rejected_rows=rejected_rows, now=now)
