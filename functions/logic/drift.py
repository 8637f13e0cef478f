"""The drift check: stream a window's rows in batches, bin them against the reference profile,
then test each feature and decide per feature and per model.

Memory stays at the profile plus one column of one batch: each column is reduced to bin counts and
dropped. Nothing here knows S3 or Lambda; `iter_parquet_row_groups` reads local files or file
objects row group by row group, column by column.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from functions.logic import drift_stats as st
from functions.logic.profile import BinScratch, bin_numeric, numeric_values
from functions.models.drift import (
    CategoricalStats,
    DriftConfig,
    DriftReport,
    FeatureDrift,
    FeatureVerdict,
    Histogram,
    ModelVerdict,
    NumericStats,
)
from functions.models.profile import CategoricalProfile, NumericProfile, ReferenceProfile

MIN_EXPECTED = 5.0  # categories expected fewer times than this are tested together (chi-square validity)
VERSION_COLUMN = "__version"  # written by compaction; the model version that answered
VARIANT_COLUMN = "__variant"  # production | candidate | shadow
SHADOW = "shadow"
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)


class ParquetRowGroup:
    """One row group of a Parquet file, read one column at a time when the check asks for it.

    The check holds a single column chunk at once (not the whole row group): Arrow's reader keeps
    per-column buffers until a multi-column read ends, several times the decoded size.
    """

    def __init__(self, parquet: pq.ParquetFile, index: int) -> None:
        self._parquet = parquet
        self._index = index
        self.num_rows = parquet.metadata.row_group(index).num_rows
        self.names = frozenset(parquet.schema_arrow.names)

    def column(self, name: str) -> pa.ChunkedArray:
        return self._parquet.read_row_group(self._index, columns=[name], use_threads=False).column(0)

    def may_hold(self, name: str, value: str) -> bool:
        """False only when the column's statistics exclude `value` (then it need not be read)."""
        metadata = self._parquet.metadata.row_group(self._index)
        for i in range(metadata.num_columns):
            chunk = metadata.column(i)
            if chunk.path_in_schema == name:
                stats = chunk.statistics
                if stats is None or not stats.has_min_max:
                    return True
                low, high = stats.min, stats.max
                if isinstance(low, bytes) and isinstance(high, bytes):
                    low, high = low.decode(errors="replace"), high.decode(errors="replace")
                return bool(low <= value <= high)
        return True


def iter_parquet_row_groups(sources: Iterable[str | IO[bytes] | pa.NativeFile]) -> Iterator[ParquetRowGroup]:
    """The row groups of each Parquet source in order (nothing is read until a column is asked for)."""
    for source in sources:
        parquet = pq.ParquetFile(source, pre_buffer=False)
        for index in range(parquet.num_row_groups):
            yield ParquetRowGroup(parquet, index)


def iter_parquet_batches(
    sources: Iterable[str | IO[bytes] | pa.NativeFile], columns: list[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """Record batches of each Parquet source, one row group at a time, only the wanted columns that
    exist (for callers that want whole rows; the check itself reads by column)."""
    for source in sources:
        parquet = pq.ParquetFile(source, pre_buffer=False)
        present = set(parquet.schema_arrow.names)
        wanted = None if columns is None else [c for c in columns if c in present]
        for index in range(parquet.num_row_groups):
            batches = parquet.read_row_group(index, columns=wanted, use_threads=False).to_batches()
            while batches:
                yield batches.pop(0)


@dataclass
class _NumericState:
    profile: NumericProfile
    counts: np.ndarray
    nulls: int = 0
    sum_below: float = 0.0  # sum of finite values below / above the range (Wasserstein positions)
    n_below: int = 0
    sum_above: float = 0.0
    n_above: int = 0
    rows_without_column: int = 0
    rows_with_wrong_type: int = 0
    wrong_types: set[str] = field(default_factory=set)


@dataclass
class _CategoricalState:
    profile: CategoricalProfile
    value_set: pa.Array
    counts: np.ndarray  # len(categories) + 1: the last is "unseen"
    nulls: int = 0
    rows_without_column: int = 0
    rows_with_wrong_type: int = 0
    wrong_types: set[str] = field(default_factory=set)


def _is_stringish(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t)


class DriftAccumulator:
    """Per-feature counts of the current window, fed batch by batch."""

    def __init__(self, profile: ReferenceProfile) -> None:
        self.profile = profile
        self.rows = 0
        self.versions: set[int] = set()
        self.shadow_rows = 0  # rows of shadow scoring, not counted (their requests are counted once)
        self._scratch = BinScratch()
        self._numeric: dict[str, _NumericState] = {}
        self._categorical: dict[str, _CategoricalState] = {}
        for f in profile.features:
            if isinstance(f, NumericProfile):
                self._numeric[f.name] = _NumericState(f, np.zeros(f.n_bins + 2, dtype=np.int64))
            else:
                self._categorical[f.name] = _CategoricalState(
                    f, pa.array(f.categories, pa.string()), np.zeros(len(f.categories) + 1, dtype=np.int64)
                )

    @property
    def columns(self) -> list[str]:
        """The columns a batch should carry (features and the answering version)."""
        return [f.name for f in self.profile.features] + [VERSION_COLUMN, VARIANT_COLUMN]

    def add(self, batch: pa.RecordBatch | pa.Table | ParquetRowGroup) -> None:
        """Count one batch, table or Parquet row group (read column by column)."""
        n = batch.num_rows
        if n == 0:
            return
        if isinstance(batch, ParquetRowGroup):
            names, read = batch.names, batch.column
            shadow_possible = VARIANT_COLUMN in names and batch.may_hold(VARIANT_COLUMN, SHADOW)
        else:
            names, read = frozenset(batch.schema.names), batch.column
            shadow_possible = VARIANT_COLUMN in names
        # shadow rows repeat a request the production version answered: its features count once
        keep: pa.Array | None = None
        if shadow_possible:
            not_shadow = pc.fill_null(pc.not_equal(read(VARIANT_COLUMN), SHADOW), True)
            kept = int(pc.sum(not_shadow).as_py() or 0)
            if kept < n:
                keep = not_shadow.combine_chunks() if isinstance(not_shadow, pa.ChunkedArray) else not_shadow
                self.shadow_rows += n - kept
                n = kept
        self.rows += n
        if n == 0:
            return

        def column(name: str) -> pa.Array | pa.ChunkedArray:
            values = read(name)
            return values.filter(keep) if keep is not None else values

        if VERSION_COLUMN in names:
            seen = pc.unique(column(VERSION_COLUMN).drop_null())
            self.versions.update(int(v) for v in seen.to_pylist())  # a handful of distinct values
        for name, ns in self._numeric.items():
            if name not in names:
                ns.rows_without_column += n
            else:
                self._add_numeric(ns, column(name), n)
        for name, cs in self._categorical.items():
            if name not in names:
                cs.rows_without_column += n
            else:
                self._add_categorical(cs, column(name), n)

    def _add_numeric(self, state: _NumericState, column: pa.Array | pa.ChunkedArray, n: int) -> None:
        if pa.types.is_boolean(column.type) or _is_stringish(column.type):
            state.rows_with_wrong_type += n
            state.wrong_types.add(str(column.type))
            return
        try:
            values = numeric_values(column)
        except _ARROW_ERRORS:
            state.rows_with_wrong_type += n
            state.wrong_types.add(str(column.type))
            return
        p = state.profile
        counts = bin_numeric(values, p.bin_low, p.bin_width, p.n_bins, self._scratch)
        state.counts += counts
        state.nulls += n - int(counts.sum())  # nulls and NaN
        if counts[0]:
            below = values[(values < p.bin_low) & np.isfinite(values)]
            state.sum_below += float(below.sum())
            state.n_below += below.size
        if counts[-1]:
            above = values[(values >= p.bin_high) & np.isfinite(values)]
            state.sum_above += float(above.sum())
            state.n_above += above.size

    @staticmethod
    def _add_categorical(state: _CategoricalState, column: pa.Array | pa.ChunkedArray, n: int) -> None:
        boolean = state.profile.type == "bool"
        if (boolean and not pa.types.is_boolean(column.type)) or (not boolean and not _is_stringish(column.type)):
            state.rows_with_wrong_type += n
            state.wrong_types.add(str(column.type))
            return
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        unseen = len(state.profile.categories)
        if pa.types.is_dictionary(column.type):
            # map the (small) dictionary once, then count codes
            mapping = pc.index_in(column.dictionary.cast(pa.string()), value_set=state.value_set)
            lookup = mapping.fill_null(unseen).to_numpy(zero_copy_only=False).astype(np.intp)
            indices = column.indices
            nulls = indices.null_count
            if nulls:
                indices = indices.drop_null()
            codes = lookup[indices.to_numpy(zero_copy_only=False)]
        else:
            strings = column.cast(pa.string()) if boolean else column
            nulls = strings.null_count
            if nulls:
                strings = strings.drop_null()
            codes = pc.index_in(strings, value_set=state.value_set).fill_null(unseen).to_numpy(zero_copy_only=False)
        state.counts += np.bincount(codes, minlength=unseen + 1)
        state.nulls += nulls


# ---------------------------------------------------------------- statistics per feature


@dataclass
class _Test:
    feature: str
    what: str  # "distribution" or "null fraction"
    p_value: float
    effect_ok: bool


def _problem(
    name: str, kind: str, p: NumericProfile | CategoricalProfile, rows_without: int, rows_wrong: int, types: set[str]
) -> FeatureDrift | None:
    if rows_without:
        return FeatureDrift(
            name=name,
            kind=kind,  # type: ignore[arg-type]
            type=p.type,
            verdict=FeatureVerdict.MISSING_COLUMN,
            reason=f"column missing in {rows_without} captured rows",
            reference_count=p.count,
            rows_without_column=rows_without,
            rows_with_wrong_type=rows_wrong,
        )
    if rows_wrong:
        return FeatureDrift(
            name=name,
            kind=kind,  # type: ignore[arg-type]
            type=p.type,
            verdict=FeatureVerdict.WRONG_TYPE,
            reason=f"column of type {', '.join(sorted(types))} in {rows_wrong} rows, expected {p.type}",
            reference_count=p.count,
            rows_with_wrong_type=rows_wrong,
        )
    return None


def _null_fields(ref_nulls: int, ref_total: int, cur_nulls: int, cur_total: int) -> tuple[float, float, float]:
    ref_frac = ref_nulls / ref_total if ref_total else 0.0
    cur_frac = cur_nulls / cur_total if cur_total else 0.0
    return ref_frac, cur_frac, st.two_proportion_p_value(ref_nulls, ref_total, cur_nulls, cur_total)


def _null_test(p: NumericProfile | CategoricalProfile, base: FeatureDrift, config: DriftConfig) -> _Test:
    """The null-fraction test of a feature with min_rows rows on both sides.

    The change must be significant (after the correction) and large in relative terms (Cohen's h,
    DriftConfig.min_null_h) or absolute ones (min_null_delta).
    A window left without a single value where training had some has lost the whole distribution:
    that is effect enough whatever the null-fraction change, and only significance is asked of it
    (a reference nearly all null may miss its few values by chance).
    """
    emptied = base.current_count == 0 and p.count > 0
    ref, cur = base.reference_null_fraction, base.current_null_fraction
    large = abs(cur - ref) >= config.min_null_delta or st.cohens_h(ref, cur) >= config.min_null_h
    p_value = 1.0 if base.null_p_value is None else base.null_p_value
    return _Test(p.name, "null fraction", p_value, emptied or large)


def _untested(
    p: NumericProfile | CategoricalProfile, base: FeatureDrift, cur_nulls: int, config: DriftConfig
) -> tuple[FeatureDrift, list[_Test]] | None:
    """The feature's result when its distribution cannot be tested, or None when it can.

    The null-fraction test needs min_rows rows in the window and in the reference; without them
    nothing is tested (insufficient data). The distribution test also needs min_rows non-null values
    on both sides; without them the null-fraction test alone decides, and the feature says why.
    """
    cur_rows, ref_rows = base.current_count + cur_nulls, p.count + p.null_count
    if cur_rows < config.min_rows or ref_rows < config.min_rows:
        reason = f"{cur_rows} current / {ref_rows} reference rows, minimum {config.min_rows}"
        return base.model_copy(update={"verdict": FeatureVerdict.INSUFFICIENT_DATA, "reason": reason}), []
    if base.current_count < config.min_rows or p.count < config.min_rows:
        counts = f"{base.current_count:,} current / {p.count:,} reference non-null values"
        skipped = f"{counts}, minimum {config.min_rows:,}"
        return base.model_copy(update={"distribution_skipped": skipped}), [_null_test(p, base, config)]
    return None


def _numeric_feature(state: _NumericState, config: DriftConfig) -> tuple[FeatureDrift, list[_Test]]:
    p = state.profile
    problem = _problem(p.name, "numeric", p, state.rows_without_column, state.rows_with_wrong_type, state.wrong_types)
    if problem:
        return problem, []
    ref = np.concatenate([[0], p.counts, [0]]).astype(np.int64)
    cur = state.counts
    n_cur = int(cur.sum())
    ref_null, cur_null, null_p = _null_fields(p.null_count, p.count + p.null_count, state.nulls, n_cur + state.nulls)
    base = FeatureDrift(
        name=p.name,
        kind="numeric",
        type=p.type,
        verdict=FeatureVerdict.NO_DRIFT,
        reference_count=p.count,
        current_count=n_cur,
        reference_null_fraction=ref_null,
        current_null_fraction=cur_null,
        null_p_value=null_p,
        histogram=_numeric_histogram(p, ref, cur, config.report_bins),
    )
    untested = _untested(p, base, state.nulls, config)
    if untested:
        return untested
    d, ks_p = st.ks_binned(ref, cur)
    groups = st.psi_groups(ref, config.psi_bins)
    psi = st.psi(np.bincount(groups, weights=ref), np.bincount(groups, weights=cur, minlength=groups.max() + 1))
    centers = p.bin_low + (np.arange(p.n_bins) + 0.5) * p.bin_width
    below_at = state.sum_below / state.n_below if state.n_below else p.bin_low
    above_at = state.sum_above / state.n_above if state.n_above else p.bin_high
    points = np.concatenate([[min(below_at, p.bin_low)], centers, [max(above_at, p.bin_high)]])
    w1 = st.wasserstein_binned(ref, cur, points)
    stats = NumericStats(
        ks_d=d,
        ks_p_value=ks_p,
        psi=psi,
        wasserstein=w1,
        wasserstein_std=w1 / p.std if p.std > 0 else 0.0,
        below_range_fraction=int(cur[0]) / n_cur,
        above_range_fraction=int(cur[-1]) / n_cur,
        reference_mean=p.mean,
        current_mean=float(np.dot(points, cur) / n_cur) if math.isfinite(float(np.dot(points, cur))) else 0.0,
        reference_std=p.std,
    )
    tests = [
        _Test(p.name, "distribution", ks_p, d >= config.min_ks_d or psi >= config.min_psi),
        _null_test(p, base, config),
    ]
    return base.model_copy(update={"p_value": ks_p, "numeric": stats}), tests


def _numeric_histogram(p: NumericProfile, ref: np.ndarray, cur: np.ndarray, report_bins: int) -> Histogram:
    """Fine bins summed into about report_bins buckets, with the out-of-range bins at both ends."""
    step = max(1, math.ceil(p.n_bins / report_bins))
    starts = np.arange(0, p.n_bins, step)

    def coarse(counts: np.ndarray) -> list[float]:
        inner = np.add.reduceat(counts[1:-1].astype(np.float64), starts)
        full = np.concatenate([[counts[0]], inner, [counts[-1]]])
        total = full.sum()
        return [float(v) for v in (full / total if total else full)]

    labels = ["<min", *(f"{p.bin_low + s * p.bin_width:.6g}" for s in starts), ">max"]
    return Histogram(labels=labels, reference=coarse(ref), current=coarse(cur))


def _categorical_feature(state: _CategoricalState, config: DriftConfig) -> tuple[FeatureDrift, list[_Test]]:
    p = state.profile
    problem = _problem(
        p.name, "categorical", p, state.rows_without_column, state.rows_with_wrong_type, state.wrong_types
    )
    if problem:
        return problem, []
    ref = np.asarray([*p.counts, p.other_count], dtype=np.int64)
    cur = state.counts
    n_cur = int(cur.sum())
    ref_null, cur_null, null_p = _null_fields(p.null_count, p.count + p.null_count, state.nulls, n_cur + state.nulls)
    base = FeatureDrift(
        name=p.name,
        kind="categorical",
        type=p.type,
        verdict=FeatureVerdict.NO_DRIFT,
        reference_count=p.count,
        current_count=n_cur,
        reference_null_fraction=ref_null,
        current_null_fraction=cur_null,
        null_p_value=null_p,
        histogram=_categorical_histogram(p, ref, cur, config.report_bins),
    )
    untested = _untested(p, base, state.nulls, config)
    if untested:
        return untested
    ref_m, cur_m = st.merge_rare(ref, cur, min_expected=MIN_EXPECTED)
    chi2, dof, chi2_p = st.chi2_homogeneity(ref_m, cur_m)
    js = st.js_distance(ref_m, cur_m)
    psi = st.psi(ref_m, cur_m)
    stats = CategoricalStats(
        chi2=chi2,
        chi2_dof=dof,
        chi2_p_value=chi2_p,
        js_distance=js,
        psi=psi,
        unseen_fraction=int(cur[-1]) / n_cur,
        reference_unseen_fraction=p.other_count / p.count,
    )
    tests = [
        _Test(p.name, "distribution", chi2_p, js >= config.min_js or psi >= config.min_psi),
        _null_test(p, base, config),
    ]
    return base.model_copy(update={"p_value": chi2_p, "categorical": stats}), tests


def _categorical_histogram(p: CategoricalProfile, ref: np.ndarray, cur: np.ndarray, limit: int) -> Histogram:
    """The most frequent categories (reference or current), the rest summed into "(other)"."""
    labels = [*p.categories, "(unseen)"]
    order = np.argsort(-(ref / max(1, ref.sum()) + cur / max(1, cur.sum())), kind="stable")
    keep = sorted(order[: limit - 1].tolist()) if len(labels) > limit else list(range(len(labels)))
    rest = np.ones(len(labels), dtype=bool)
    rest[keep] = False

    def shares(counts: np.ndarray) -> list[float]:
        total = float(counts.sum()) or 1.0
        picked = [float(counts[i]) / total for i in keep]
        return [*picked, float(counts[rest].sum()) / total] if rest.any() else picked

    out_labels = [labels[i] for i in keep] + (["(other)"] if rest.any() else [])
    return Histogram(labels=out_labels, reference=shares(ref), current=shares(cur))


# ---------------------------------------------------------------- the verdict


def finish(
    acc: DriftAccumulator,
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
    """Test every feature, correct for multiple testing, and decide."""
    features: list[FeatureDrift] = []
    tests: list[_Test] = []
    for ns in acc._numeric.values():
        fd, feature_tests = _numeric_feature(ns, config)
        features.append(fd)
        tests.extend(feature_tests)
    for cs in acc._categorical.values():
        fd, feature_tests = _categorical_feature(cs, config)
        features.append(fd)
        tests.extend(feature_tests)
    order = {f.name: i for i, f in enumerate(acc.profile.features)}
    features.sort(key=lambda f: order[f.name])

    adjusted = st.adjust_p_values([t.p_value for t in tests], config.correction)
    drifting: dict[str, list[str]] = {}
    best_adjusted: dict[str, float] = {}
    null_adjusted: dict[str, float] = {}
    for t, adj in zip(tests, adjusted, strict=True):
        (best_adjusted if t.what == "distribution" else null_adjusted)[t.feature] = adj
        if adj < config.alpha and t.effect_ok:
            drifting.setdefault(t.feature, []).append(t.what)
    critical = set(config.critical_features)
    final: list[FeatureDrift] = []
    for f in features:
        update: dict[str, object] = {"critical": f.name in critical}
        if f.name in best_adjusted:
            update["p_value_adjusted"] = best_adjusted[f.name]
        if f.name in null_adjusted:
            update["null_p_value_adjusted"] = null_adjusted[f.name]
        skipped = f"; distribution not tested: {f.distribution_skipped}" if f.distribution_skipped else ""
        if f.name in drifting:
            update["verdict"] = FeatureVerdict.DRIFT
            update["reason"] = f"{' and '.join(drifting[f.name])} changed (adjusted p < {config.alpha}){skipped}"
        elif f.verdict == FeatureVerdict.NO_DRIFT:
            where = " in the null fraction" if f.distribution_skipped else ""
            update["reason"] = f"no significant change of the required size{where}{skipped}"
        final.append(f.model_copy(update=update))

    checked = [f for f in final if f.verdict in (FeatureVerdict.DRIFT, FeatureVerdict.NO_DRIFT)]
    drifted = [f.name for f in final if f.verdict == FeatureVerdict.DRIFT]
    schema = [f for f in final if f.verdict in (FeatureVerdict.MISSING_COLUMN, FeatureVerdict.WRONG_TYPE)]
    problems = [f"{f.name}: {f.reason}" for f in schema]
    share = len(drifted) / len(checked) if checked else 0.0
    critical_drifted = [n for n in drifted if n in critical]
    if acc.rows == 0:
        verdict, reason = ModelVerdict.NO_DATA, "no captured rows in the window"
    elif acc.rows < config.min_rows:
        verdict, reason = ModelVerdict.INSUFFICIENT_DATA, f"{acc.rows} rows in the window, minimum {config.min_rows}"
    elif critical_drifted:
        verdict, reason = ModelVerdict.DRIFT, f"critical feature(s) drifted: {', '.join(critical_drifted)}"
    elif checked and share >= config.drift_share:
        verdict = ModelVerdict.DRIFT
        reason = f"{len(drifted)} of {len(checked)} features drifted ({share:.0%} >= {config.drift_share:.0%})"
    elif schema:
        verdict = ModelVerdict.SCHEMA_MISMATCH
        reason = f"{len(schema)} feature(s) missing or of the wrong type: {', '.join(f.name for f in schema)}"
    elif not checked:
        verdict = ModelVerdict.INSUFFICIENT_DATA
        reason = f"no feature has {config.min_rows} rows in the reference profile"
    else:
        verdict = ModelVerdict.NO_DRIFT
        reason = f"{len(drifted)} of {len(checked)} features drifted ({share:.0%} < {config.drift_share:.0%})"
    if rejected_rows:
        problems.append(f"{rejected_rows} captured rows did not fit the feature schema (kept aside)")
    return DriftReport(
        check_id=check_id or uuid.uuid4().hex,
        model=model,
        version=version,
        versions_seen=sorted(acc.versions),
        window_start=window_start,
        window_end=window_end,
        created_at=now or datetime.now(UTC),
        verdict=verdict,
        reason=reason,
        row_count=acc.rows,
        shadow_rows=acc.shadow_rows,
        rejected_rows=rejected_rows,
        checked_features=len(checked),
        drifted_features=drifted,
        drift_share=share,
        config=config,
        features=final,
        problems=problems,
    )


def check_drift(
    profile: ReferenceProfile,
    batches: Iterable[pa.RecordBatch | pa.Table | ParquetRowGroup],
    config: DriftConfig | None = None,
    *,
    model: str,
    version: int,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    rejected_rows: int = 0,
    check_id: str | None = None,
    now: datetime | None = None,
) -> DriftReport:
    """Feed every batch to an accumulator and decide; never raises on empty or odd data."""
    acc = DriftAccumulator(profile)
    for batch in batches:
        acc.add(batch)
    return finish(
        acc,
        config or DriftConfig(),
        model=model,
        version=version,
        window_start=window_start,
        window_end=window_end,
        rejected_rows=rejected_rows,
        check_id=check_id,
        now=now,
    )
