"""The drift check's output (prediction drift) and data-quality sections, and the overall verdict."""

from __future__ import annotations

import math
import re

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.logic.compaction import PREDICTION, PROBABILITIES, REQUEST_ID, VARIANT, VERSION, to_parquet_bytes
from functions.logic.drift import iter_parquet_row_groups
from functions.logic.drift_outputs import output_profile
from functions.logic.drift_sections import check_window
from functions.logic.profile import build_reference_profile
from functions.models.contracts import ColumnSpec, DataContract
from functions.models.drift import DriftConfig, DriftReport
from functions.models.profile import ReferenceProfile
from functions.models.registry import Feature

FEATURES = [Feature(name="x", type="float"), Feature(name="z", type="float"), Feature(name="c", type="category")]
CATS = np.array(["a", "b", "c"])
CLASSES = ["no", "yes"]


def _inputs(n: int, seed: int, shift: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=n) + shift, "z": rng.normal(size=n), "c": CATS[rng.integers(0, 3, size=n)]}


def _regressor(cols: dict[str, np.ndarray]) -> np.ndarray:
    return 2.0 * cols["x"] + 0.5 * cols["z"]


def _classifier(cols: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    p_yes = 1.0 / (1.0 + np.exp(-(1.5 * cols["x"] + 0.5 * cols["z"])))
    probs = np.column_stack([1.0 - p_yes, p_yes])
    return np.where(p_yes >= 0.5, "yes", "no"), probs


def _profile(task: str, seed: int, n: int = 20_000) -> ReferenceProfile:
    cols = _inputs(n, seed, 0.0)
    base = build_reference_profile(pa.table(cols), FEATURES)
    holdout = _inputs(n // 4, seed + 1, 0.0)
    if task == "regression":
        outputs = output_profile("regression", None, values=_regressor(holdout))
    else:
        labels, probs = _classifier(holdout)
        outputs = output_profile("classification", CLASSES, labels=labels, probabilities=probs)
    return base.model_copy(update={"outputs": outputs})


def _window(task: str, n: int, seed: int, shift: float, version: int = 1) -> pa.Table:
    cols = _inputs(n, seed, shift)
    table = pa.table(cols)
    if task == "regression":
        prediction = pa.array(_regressor(cols))
        probs = pa.nulls(n, pa.list_(pa.float64()))
    else:
        labels, p = _classifier(cols)
        prediction = pa.array(labels)
        probs = pa.array(p.tolist(), pa.list_(pa.float64()))
    return (
        table.append_column(PREDICTION, prediction)
        .append_column(PROBABILITIES, probs)
        .append_column(VERSION, pa.array(np.full(n, version, dtype=np.int32)))
        .append_column(REQUEST_ID, pa.array([f"r{i}" for i in range(n)]))
    )


def _check(
    profile: ReferenceProfile, table: pa.Table, contract: DataContract | None = None, **cfg: object
) -> DriftReport:
    return check_window(
        profile,
        table.to_batches(max_chunksize=8_192),
        DriftConfig(**cfg),  # type: ignore[arg-type]
        model="m",
        version=1,
        contract=contract,
        dataset="d",
        contract_version=3,
    )


# -- prediction drift --------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_outputs_drift_when_a_shifted_input_moves_them(task: str) -> None:
    # Given a reference profile with the holdout outputs, and a window where x moved by 0.3 sd
    profile = _profile(task, 1)
    report = _check(profile, _window(task, 20_000, 2, 0.3))
    # Then the output section drifts and names the moved outputs; the overall verdict fails
    assert report.outputs is not None and report.outputs.verdict == "drift", report.outputs
    if task == "regression":
        assert report.outputs.drifted == ["prediction"]
    else:  # the score moves; the label shares (50% -> 58%) stay under the JS/PSI effect gates
        assert report.outputs.drifted == ["probability:yes"]
        assert [f.name for f in report.outputs.outputs] == ["prediction", "probability:yes"]
    assert report.overall is not None and report.overall.verdict == "fail" and "outputs: drift" in report.overall.reason


def _output_false_positives(task: str, seeds: range) -> int:
    flagged = 0
    for seed in seeds:
        profile = _profile(task, 100 + 7 * seed)
        report = _check(profile, _window(task, 20_000, 5_000 + seed, 0.0))
        assert report.outputs is not None and report.outputs.verdict in ("drift", "no_drift")
        flagged += report.outputs.verdict == "drift"
    return flagged


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_outputs_unshifted_false_positives_fast(task: str) -> None:
    assert _output_false_positives(task, range(5)) == 0


@pytest.mark.full
@pytest.mark.parametrize("task", ["regression", "classification"])
def test_outputs_unshifted_false_positives_50_seeds(task: str) -> None:
    # at most 1% of 50 unshifted windows flag the outputs
    assert _output_false_positives(task, range(50)) / 50 <= 0.01


def test_outputs_of_other_versions_and_shadow_rows_are_not_counted() -> None:
    # Given a window where v2 (another version) answered shifted requests, and shadow rows
    profile = _profile("regression", 1)
    mine = _window("regression", 5_000, 2, 0.0)
    other = _window("regression", 5_000, 3, 2.0, version=2)
    shadow = _window("regression", 1_000, 4, 2.0).append_column(VARIANT, pa.array(["shadow"] * 1_000))
    mine = mine.append_column(VARIANT, pa.array(["production"] * 5_000))
    other = other.append_column(VARIANT, pa.array(["candidate"] * 5_000))
    report = _check(profile, pa.concat_tables([mine, other, shadow]))
    # Then only v1's 5,000 answers are tested, and they did not drift
    assert report.outputs is not None and report.outputs.rows == 5_000 and report.outputs.verdict == "no_drift"


def test_outputs_without_reference_or_enough_rows_say_why() -> None:
    profile = _profile("regression", 1)
    bare = profile.model_copy(update={"outputs": None})
    assert _check(bare, _window("regression", 2_000, 2, 0.0)).outputs.verdict == "no_reference"  # type: ignore[union-attr]
    few = _check(profile, _window("regression", 500, 2, 0.0)).outputs
    assert few is not None and few.verdict == "insufficient_data" and "500 outputs" in few.reason
    small = profile.model_copy(update={"outputs": output_profile("regression", None, values=np.zeros(50))})
    tiny = _check(small, _window("regression", 2_000, 2, 0.0)).outputs
    assert tiny is not None and tiny.verdict == "insufficient_data" and "50 holdout rows" in tiny.reason


def test_output_profile_refuses_mismatched_probabilities() -> None:
    with pytest.raises(ValueError, match="shape"):
        output_profile("classification", CLASSES, labels=np.array(["no"]), probabilities=np.ones((1, 3)))


def test_reference_profile_with_outputs_round_trips() -> None:
    profile = _profile("classification", 1)
    again = ReferenceProfile.from_bytes(profile.to_bytes())
    assert again.outputs is not None and again.outputs.class_labels == CLASSES
    assert [f.name for f in again.outputs.features] == ["prediction", "probability:yes"]


# -- data quality ------------------------------------------------------------------------------

CONTRACT = DataContract(
    columns=[
        ColumnSpec(name="n", type="int", nullable=False, min=0, max=10),
        ColumnSpec(name="f", type="float", min=-1.5, max=2.5),
        ColumnSpec(name="s", type="string", pattern="[a-c]+"),
        ColumnSpec(name="k", type="category", categories=["red", "blue"], nullable=False),
        ColumnSpec(name="target", type="float", nullable=False),  # not a feature: not captured, not checked
    ],
    target="target",
)
DQ_FEATURES = [
    Feature(name="n", type="int", nullable=True),
    Feature(name="f", type="float", nullable=True),
    Feature(name="s", type="string", nullable=True),
    Feature(name="k", type="category", nullable=True),
]


def _oracle(rows: list[dict[str, object]]) -> dict[str, list[str]]:
    """Per rule, the request ids of the offending rows, in order (a row-by-row reading of the rules)."""
    out: dict[str, list[str]] = {}

    def hit(rule: str, row: dict[str, object]) -> None:
        out.setdefault(rule, []).append(str(row["id"]))

    for row in rows:
        n, f, s, k = row["n"], row["f"], row["s"], row["k"]
        if n is None:
            hit("nulls:n", row)
        elif not 0 <= n <= 10:  # type: ignore[operator]
            hit("range:n", row)
        if f is not None and not math.isnan(f) and not -1.5 <= f <= 2.5:  # type: ignore[arg-type, operator]
            hit("range:f", row)
        if s is not None and re.fullmatch("[a-c]+", s) is None:  # type: ignore[arg-type]
            hit("pattern:s", row)
        if k is None:
            hit("nulls:k", row)
        elif k not in ("red", "blue"):
            hit("categories:k", row)
    return out


ROW = st.fixed_dictionaries(
    {
        "n": st.none() | st.integers(-5, 15),
        "f": st.none() | st.sampled_from([float("nan"), -2.0, -1.5, 0.0, 2.5, 2.6, 9.0]),
        "s": st.none() | st.sampled_from(["a", "abc", "", "d", "ab1", "cab"]),
        "k": st.none() | st.sampled_from(["red", "blue", "green", "Red"]),
        "shadow": st.booleans(),
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(ROW, min_size=1, max_size=60), chunk=st.integers(1, 25))
def test_data_quality_counts_match_an_oracle(rows: list[dict[str, object]], chunk: int) -> None:
    # Given captured rows (some shadow scorings of requests already counted) in Parquet row groups
    for i, row in enumerate(rows):
        row["id"] = f"req-{i}"
    table = pa.table(
        {
            "n": pa.array([r["n"] for r in rows], pa.int64()),
            "f": pa.array([r["f"] for r in rows], pa.float64()),
            "s": pa.array([r["s"] for r in rows], pa.string()),
            "k": pa.array([r["k"] for r in rows], pa.string()).dictionary_encode(),
            REQUEST_ID: pa.array([r["id"] for r in rows]),
            VARIANT: pa.array(["shadow" if r["shadow"] else "production" for r in rows]),
        }
    )
    parquet = pa.BufferReader(to_parquet_bytes(table, row_group_size=chunk))
    profile = build_reference_profile(table, DQ_FEATURES)
    report = check_window(profile, iter_parquet_row_groups([parquet]), model="m", version=1, contract=CONTRACT)
    # Then each rule's violations, rate and first 20 request ids are exactly the oracle's
    counted = [r for r in rows if not r["shadow"]]
    expected = _oracle(counted)
    dq = report.data_quality
    assert dq is not None and dq.rows == len(counted)
    got = {r.rule: r for r in dq.rules}
    assert set(got) == set(expected)
    for rule, ids in expected.items():
        assert got[rule].violations == len(ids) and got[rule].request_ids == ids[:20]
        assert got[rule].rate == pytest.approx(len(ids) / len(counted))
        assert got[rule].failed == (len(ids) / len(counted) > 0.01)
    assert dq.verdict == ("fail" if expected else "pass" if counted else "no_data")
    assert set(dq.failed_rules) == set(expected)
