"""Property: any column name the data contract allows trains, evaluates, serves and is monitored.

Hypothesis draws column names from the contract's pattern (functions/models/contracts.py
COLUMN_NAME_PATTERN: a letter or underscore, then letters, digits, `_`, `.`, `-` and spaces) and
adds groups that collide once sanitized (`a b`, `a_b`, `a.b`, `a-b`). Each draw goes through the
train step's logic (CSV read, fit, ONNX export, reference profile), the evaluate step's (the
graph's feeds, ONNX parity), serving's (the version's request model and ONNX session) and drift's
(capture lines, compaction, the check against the reference profile), all on feature names.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from functions.logic import compaction, drift
from functions.logic import evaluation as ev
from functions.logic import training as tr
from functions.logic.capture import CapturedRequest, lines
from functions.logic.serving_runtime import OnnxModel
from functions.models.contracts import COLUMN_NAME_PATTERN, ColumnSpec, DataContract
from functions.models.profile import ReferenceProfile
from functions.models.registry import Artifact, ModelVersion, VersionStatus
from functions.models.serving import GraphInputMismatch
from functions.models.specs import TrainingSpec

NOW = datetime(2026, 11, 26, tzinfo=UTC)
TARGET = "label"
ROWS = 120
SEPARATORS = [" ", "_", ".", "-"]

allowed_names = st.from_regex(COLUMN_NAME_PATTERN, fullmatch=True)


@st.composite
def colliding_group(draw: st.DrawFn) -> list[str]:
    """Names equal once spaces, dots and dashes become underscores: `a b`, `a_b`, `a.b`, `a-b`."""
    head = draw(st.from_regex(r"[A-Za-z_][A-Za-z0-9]{0,4}", fullmatch=True))
    tail = draw(st.from_regex(r"[A-Za-z0-9]{1,4}", fullmatch=True))
    seps = draw(st.lists(st.sampled_from(SEPARATORS), min_size=2, max_size=4, unique=True))
    return [f"{head}{sep}{tail}" for sep in seps]


@st.composite
def column_names(draw: st.DrawFn) -> list[str]:
    names = draw(st.lists(allowed_names, min_size=0, max_size=4))
    for group in draw(st.lists(colliding_group(), min_size=0, max_size=2)):
        names += group
    usable = [n for n in dict.fromkeys(names) if n != TARGET and not n.startswith(tr.RESERVED_FEATURE_PREFIX)]
    return usable or draw(st.lists(colliding_group(), min_size=1, max_size=1))[0]


def csv_table(names: list[str], kinds: list[str], seed: int) -> bytes:
    """A CSV export: float (with nulls), int and string columns under the drawn names."""
    rng = np.random.default_rng(seed)
    columns: dict[str, pa.Array] = {}
    signal = np.zeros(ROWS)
    for name, kind in zip(names, kinds, strict=True):
        if kind == "float":
            floats = rng.normal(size=ROWS)
            signal += floats
            columns[name] = pa.array([None if i % 17 == 3 else float(v) for i, v in enumerate(floats)])
        elif kind == "int":
            ints = rng.integers(0, 10, size=ROWS)
            signal += ints / 5
            columns[name] = pa.array(ints, type=pa.int64())
        else:
            words = rng.choice(["red", "green", "blue"], size=ROWS)
            signal += words == "red"
            columns[name] = pa.array(words.tolist())
    noisy = signal + rng.normal(scale=0.5, size=ROWS)
    columns[TARGET] = pa.array(np.where(noisy > np.median(noisy), "yes", "no").tolist())
    buf = io.BytesIO()
    pcsv.write_csv(pa.table(columns), buf)
    return buf.getvalue()


@given(names=column_names(), data=st.data())
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_any_allowed_column_names_train_evaluate_serve_and_drift(names: list[str], data: st.DataObject) -> None:
    # Given a contract over the drawn names (the contract accepts them all) and a CSV export
    kinds = data.draw(st.lists(st.sampled_from(["float", "int", "string"]), min_size=len(names), max_size=len(names)))
    seed = data.draw(st.integers(0, 2**16))
    columns = [ColumnSpec(name=n, type=k) for n, k in zip(names, kinds, strict=True)]  # type: ignore[arg-type]
    DataContract(columns=[*columns, ColumnSpec(name=TARGET, type="string", nullable=False)], target=TARGET)
    table = tr.read_table(csv_table(names, kinds, seed), "export.csv")
    assert table.column_names == [*names, TARGET]
    spec = TrainingSpec.model_validate(
        {
            "name": "names",
            "model": "names-model",
            "dataset": "names",
            "target": TARGET,
            "features": names,
            "task": "classification",
            "estimator": {"name": "LogisticRegression", "params": {"max_iter": 300}},
            "split": {"holdout_fraction": 0.25, "seed": 1},
        }
    )
    # When trained (the train step's logic)
    prepared = tr.prepare(spec, table, [])
    fitted = tr.fit(spec, prepared)
    graph_inputs = tr.graph_inputs_for(prepared.features)
    onnx = tr.export_onnx(fitted, prepared.features, graph_inputs)
    train_rows = prepared.table.take(prepared.train_idx)
    profile = ReferenceProfile.from_bytes(tr.reference_profile(train_rows, prepared.features, NOW))
    # Then the mapping covers every feature with distinct, valid graph inputs
    assert list(graph_inputs) == names
    assert len(set(graph_inputs.values())) == len(names)
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", i) for i in graph_inputs.values())

    # When evaluated (the evaluate step's logic): ONNX matches scikit-learn on the holdout
    holdout = prepared.frame.iloc[prepared.holdout_idx]
    session = ev.onnx_session(onnx)
    feeds = ev.graph_feeds(session, holdout, prepared.features, graph_inputs, "candidate")
    served = ev.onnx_predictions(session, feeds, spec.task)
    reference = ev.sklearn_predictions(fitted.pipeline, holdout, spec.task)
    parity = ev.parity(reference, served, spec.gates.parity_tolerance)
    assert parity.passed, parity.reason

    # When served from a version recording the mapping, asked by feature names
    version = registered_version(prepared, fitted, graph_inputs, onnx)
    model = OnnxModel.load(version, onnx, max_instances=100)
    rows = prepared.table.slice(0, 40)
    instances = [{name: rows.column(name)[i].as_py() for name in names} for i in range(rows.num_rows)]
    request = model.request_model.model_validate({"instances": instances})
    values = model.rows(request.instances)  # type: ignore[attr-defined]
    predictions, probabilities = model.score(values)
    # Then the answers are scikit-learn's for those rows
    frame = tr.to_frame(rows, prepared.features)
    assert predictions == fitted.pipeline.predict(frame).astype(str).tolist()
    assert probabilities is not None
    assert np.allclose(probabilities, fitted.pipeline.predict_proba(frame), atol=1e-5)

    # When the captured requests are compacted and checked for drift against the profile
    captured = CapturedRequest(
        "names-model", 1, "production", "req-1", 1_800_000_000_000, model.feature_names,
        values, predictions, probabilities, model.capture_template,
    )  # fmt: skip
    compacted = compaction.compact_text("\n".join(lines(captured)).encode(), version.features, "classification")
    report = drift.check_drift(profile, [compacted.table], model="names-model", version=1, now=NOW)
    # Then every captured row fits and every feature is checked under its own name
    assert compacted.rejected == 0 and compacted.table.num_rows == rows.num_rows
    assert report.problems == []
    assert [f.name for f in report.features] == names


def registered_version(
    prepared: tr.Prepared, fitted: tr.Fitted, graph_inputs: dict[str, str], onnx: bytes
) -> ModelVersion:
    import hashlib

    return ModelVersion(
        model="names-model",
        version=1,
        status=VersionStatus.PRODUCTION,
        created_at=NOW,
        updated_at=NOW,
        task="classification",
        features=prepared.features,
        graph_inputs=graph_inputs,
        target=TARGET,
        class_labels=fitted.class_labels,
        artifacts={
            "onnx": Artifact(
                uri="s3://artifacts/models/names-model/model.onnx",
                sha256=hashlib.sha256(onnx).hexdigest(),
                size_bytes=len(onnx),
            )
        },
    )


def test_contract_column_names_cannot_start_with_a_digit() -> None:
    # the pattern's first character is a letter or an underscore: a leading digit never reaches training
    with pytest.raises(ValidationError, match="pattern"):
        ColumnSpec(name="1st dose", type="float")


def test_training_refuses_a_feature_named_with_the_capture_prefix_naming_it() -> None:
    # Given a column the contract allows but captured traffic reserves ("__version" is a capture column)
    table = pa.table({"__version": [float(i) for i in range(20)], "x": [1.0] * 20, TARGET: ["a", "b"] * 10})
    spec = TrainingSpec.model_validate(
        {
            "name": "names",
            "model": "names-model",
            "dataset": "names",
            "target": TARGET,
            "features": ["x", "__version"],
            "task": "classification",
            "estimator": {"name": "LogisticRegression"},
        }
    )
    # When prepared for training; Then a typed error names the feature and why
    with pytest.raises(tr.TrainingFailed, match=r"feature '__version' starts with '__'"):
        tr.prepare(spec, table, [])


def test_version_graph_inputs_must_map_every_feature_to_a_distinct_input() -> None:
    base: dict[str, Any] = registered_version_fields()
    with pytest.raises(ValidationError, match=r"features without a graph input: \['a b'\]"):
        ModelVersion.model_validate(base | {"graph_inputs": {"a_b": "f0"}})
    with pytest.raises(ValidationError, match=r"fed by more than one feature: \['f0'\]"):
        ModelVersion.model_validate(base | {"graph_inputs": {"a_b": "f0", "a b": "f0"}})
    # an absent mapping (a version registered before it was recorded) is valid: inputs named as the features
    assert ModelVersion.model_validate(base).graph_inputs == {}


def registered_version_fields() -> dict[str, Any]:
    return {
        "model": "names-model",
        "version": 1,
        "status": "PRODUCTION",
        "created_at": NOW,
        "updated_at": NOW,
        "task": "regression",
        "features": [{"name": "a_b", "type": "float"}, {"name": "a b", "type": "float"}],
        "target": "y",
    }


def legacy_export(names: list[str]) -> tuple[bytes, Any, Any]:
    """A version as the lifecycle exported it before recording the mapping: inputs passed to
    skl2onnx under the feature names (which it sanitizes), columns selected by name."""
    import pandas as pd
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({n: rng.normal(size=60).astype(np.float32) for n in names})
    y = np.where(frame[names[0]] > 0, "yes", "no")
    pipe = Pipeline([("pre", ColumnTransformer([("n", "passthrough", names)])), ("e", LogisticRegression())])
    pipe.fit(frame, y)
    initial = [(n, FloatTensorType([None, 1])) for n in names]
    onx = to_onnx(pipe, initial_types=initial, options={id(pipe.steps[-1][1]): {"zipmap": False}})
    return onx.SerializeToString(), pipe, frame


def legacy_version(names: list[str], onnx: bytes) -> ModelVersion:
    import hashlib

    fields = registered_version_fields() | {
        "task": "classification",
        "features": [{"name": n, "type": "float"} for n in names],
        "class_labels": ["no", "yes"],
        "artifacts": {
            "onnx": {"uri": "s3://a/m.onnx", "sha256": hashlib.sha256(onnx).hexdigest(), "size_bytes": len(onnx)}
        },
    }
    return ModelVersion.model_validate(fields)


def test_serving_a_version_without_a_mapping_feeds_inputs_named_as_the_features() -> None:
    # Given a version registered before the mapping was recorded (no graph_inputs)
    names = ["age", "income"]
    onnx, pipe, frame = legacy_export(names)
    model = OnnxModel.load(legacy_version(names, onnx), onnx, max_instances=10)
    # When asked by feature names; Then it answers as before, as scikit-learn does
    request = model.request_model.model_validate({"instances": frame.head(5).to_dict("records")})
    predictions, _ = model.score(model.rows(request.instances))  # type: ignore[attr-defined]
    assert predictions == pipe.predict(frame.head(5)).tolist()


def test_serving_refuses_a_graph_whose_inputs_skl2onnx_renamed_naming_them() -> None:
    # Given an unmapped version whose graph inputs skl2onnx renamed ("mean radius" -> "mean_radius")
    names = ["mean radius", "age"]
    onnx, _, _ = legacy_export(names)
    # When loaded for serving; Then a typed error names the missing and the unexpected inputs
    with pytest.raises(
        GraphInputMismatch, match=r"missing: 'mean radius' \(feature 'mean radius'\); unexpected: \['mean_radius'\]"
    ):
        OnnxModel.load(legacy_version(names, onnx), onnx, max_instances=10)
