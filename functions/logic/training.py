"""Training: a dataset version and a spec in, a fitted pipeline and its artifacts out.

The pipeline is built from the features' column types: numeric (int, float, bool) columns are
cast to float32 (the precision ONNX serves in, so scikit-learn and ONNX see the same numbers) and
median-imputed (standardized for linear models); string and category columns are one-hot encoded
with unknown categories ignored (nulls become the empty string, a category of its own).

The ONNX model has one input per feature, shape [N, 1]: float32 for numeric and bool features
(null as NaN), string for string and category features (null as ""). Inputs are named by position
(`f0`, `f1`, ... in feature order), never after the feature: the data contract allows column names
(`mean radius`, `a.b`) that skl2onnx would silently rename, and names that collide once sanitized
(`a b`, `a_b`). The feature -> input mapping is returned with the model and recorded with the
version (ModelVersion.graph_inputs); the pipeline selects its columns by position too. Outputs:
classifiers `label` (string) and `probabilities` (float32, columns in `class_labels` order);
regressors `variable` (float32, [N, 1]).

Reproducibility: the split and the estimator take their seed from the spec; the same spec on the
same dataset version gives identical metrics and byte-identical predictions.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from functions.logic.compaction import META_PREFIX
from functions.logic.derived import Derivation
from functions.models.errors import IntegrityError, InvalidInput
from functions.models.registry import Feature, ModelVersion
from functions.models.serving import check_graph_inputs
from functions.models.specs import SCALED_ESTIMATORS, TrainingSpec

NUMERIC_TYPES = frozenset({"int", "float", "bool"})
# compacted captures name their own columns with it: a feature named so could not be monitored
RESERVED_FEATURE_PREFIX = META_PREFIX
TEXT_TYPES = frozenset({"string", "category"})

# skops loads only these types beyond its own defaults; anything else in a file is refused.
TRUSTED_SKOPS_TYPES = frozenset(
    {
        "numpy.dtype",
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.loss.HalfMultinomialLoss",
        "sklearn._loss.loss.HalfSquaredError",
        "sklearn._loss.loss.AbsoluteError",
        "sklearn._loss.loss.PinballLoss",
        "sklearn._loss.link.IdentityLink",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.MultinomialLogit",
        "sklearn._loss._loss.CyHalfBinomialLoss",
        "sklearn._loss._loss.CyHalfMultinomialLoss",
        "sklearn._loss._loss.CyHalfSquaredError",
        "sklearn._loss._loss.CyAbsoluteError",
        "sklearn._loss._loss.CyPinballLoss",
    }
)


class TrainingFailed(InvalidInput):
    """The spec cannot be trained on this data (a missing column, unsupported type, bad params)."""


@dataclass
class Prepared:
    """Features and target as the pipeline sees them, split by the spec's seed."""

    features: list[Feature]
    table: pa.Table  # the rows with a target (and the derived features' columns, if any)
    frame: Any  # pandas.DataFrame of the features
    y: np.ndarray
    train_idx: np.ndarray
    holdout_idx: np.ndarray
    dropped_rows: int
    derivation: Derivation | None = None  # the spec's derived features, compiled


def table_columns(schema: pa.Schema, contract_columns: list[Feature]) -> list[Feature]:
    """Every usable column of the file with its type: from the contract, else from the schema."""
    by_name = {c.name: c for c in contract_columns}
    columns: list[Feature] = []
    for field in schema:
        if field.name in by_name:
            columns.append(by_name[field.name])
        elif (kind := _arrow_type(field.type)) != "unsupported":
            columns.append(Feature(name=field.name, type=kind, nullable=field.nullable))  # type: ignore[arg-type]
    return columns


def resolve_derived(spec: TrainingSpec, schema: pa.Schema, contract_columns: list[Feature]) -> Derivation:
    """The spec's derived features checked against the file's columns and compiled; the pipeline
    features (raw and derived) come with their types."""
    from functions.logic.derived import plan

    if spec.target not in schema.names:
        raise TrainingFailed(f"target {spec.target!r} is not a column of the dataset")
    columns = table_columns(schema, contract_columns)
    try:
        derivation = plan(spec, columns)
    except InvalidInput as exc:
        raise TrainingFailed(f"derived features: {exc}") from exc
    for f in derivation.raw_features:
        if f.name.startswith(RESERVED_FEATURE_PREFIX):
            raise TrainingFailed(
                f"field {f.name!r} starts with {RESERVED_FEATURE_PREFIX!r}, which captured traffic reserves "
                "for its own columns (request id, version, ...); rename the column to train on it"
            )
    return derivation


def with_derived(table: pa.Table, derivation: Derivation) -> pa.Table:
    """The table with each derived feature's column, computed by the compiled transformation graph
    (float32 with NaN for null, or strings with "" for null: what the served graph computes)."""
    from functions.logic.derived import derive

    for name, values in derive(derivation, table).items():
        if name in table.column_names:
            raise TrainingFailed(f"derived feature {name!r} has the name of a column of the dataset")
        array = pa.array(values, type=pa.string() if values.dtype == object else pa.float32(), from_pandas=False)
        table = table.append_column(name, array)
    return table


def production_table(table: pa.Table, version: ModelVersion) -> pa.Table:
    """The table's raw rows with another version's derived features, computed by its own recorded
    definitions (a derived column of the same name in `table` is replaced)."""
    from functions.logic.derived import Derivation, input_fields
    from functions.logic.expressions import check
    from functions.logic.expressions_onnx import compile_transformation

    names = {d.name for d in version.derived}
    raw = table.select([n for n in table.column_names if n not in names])
    checked = check(input_fields(version.features, version.target), version.derived)
    transformation = compile_transformation(checked, [f.name for f in version.pipeline_features])
    return with_derived(raw, Derivation(checked=checked, transformation=transformation, raw_features=version.features))


def pipeline_features(spec: TrainingSpec, derivation: Derivation) -> list[Feature]:
    from functions.logic.derived import pipeline_feature

    columns = {f.name: f for f in derivation.raw_features}
    features = [pipeline_feature(derivation.checked, name, columns) for name in spec.features]
    for f in features:
        if f.type == "timestamp":
            raise TrainingFailed(f"feature {f.name!r} is a timestamp; derive numeric features from it first")
    return features


@dataclass
class Fitted:
    pipeline: Any
    class_labels: list[str] | None
    fit_seconds: float


# -- reading ---------------------------------------------------------------------------------
def read_table(data: bytes, key: str, file_format: str = "") -> pa.Table:
    """Parquet, CSV or JSON Lines: by `file_format`, else the key's extension (Parquet when unknown)."""
    lower = key.lower()
    try:
        if file_format == "csv" or (not file_format and lower.endswith(".csv")):
            from pyarrow import csv

            return csv.read_csv(io.BytesIO(data))
        if file_format == "jsonl" or (not file_format and lower.endswith((".jsonl", ".json", ".ndjson"))):
            from pyarrow import json as pajson

            return pajson.read_json(io.BytesIO(data))
        import pyarrow.parquet as pq

        return pq.read_table(io.BytesIO(data))
    except (pa.ArrowInvalid, OSError) as exc:
        raise TrainingFailed(f"cannot read {key}: {exc}") from exc


def _arrow_type(t: pa.DataType) -> str:
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float"
    if pa.types.is_dictionary(t):
        return "category"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_temporal(t):
        return "timestamp"
    return "unsupported"


def resolve_features(spec: TrainingSpec, schema: pa.Schema, contract_columns: list[Feature]) -> list[Feature]:
    """The spec's features with their types: from the contract, else from the file's schema."""
    by_name = {c.name: c for c in contract_columns}
    features: list[Feature] = []
    for name in spec.features:
        if name in by_name:
            feature = by_name[name]
        elif name in schema.names:
            kind = _arrow_type(schema.field(name).type)
            if kind == "unsupported":
                raise TrainingFailed(f"feature {name!r} has type {schema.field(name).type}, which no pipeline uses")
            feature = Feature(name=name, type=kind, nullable=schema.field(name).nullable)  # type: ignore[arg-type]
        else:
            raise TrainingFailed(f"feature {name!r} is not a column of the dataset")
        if feature.type == "timestamp":
            raise TrainingFailed(f"feature {name!r} is a timestamp; derive numeric features from it first")
        if name not in schema.names:
            raise TrainingFailed(f"feature {name!r} is not a column of the dataset")
        if name.startswith(RESERVED_FEATURE_PREFIX):
            raise TrainingFailed(
                f"feature {name!r} starts with {RESERVED_FEATURE_PREFIX!r}, which captured traffic reserves "
                "for its own columns (request id, version, ...); rename the column to train on it"
            )
        features.append(feature)
    if spec.target not in schema.names:
        raise TrainingFailed(f"target {spec.target!r} is not a column of the dataset")
    return features


def to_frame(table: pa.Table, features: list[Feature]) -> Any:
    """A pandas DataFrame of the features as the pipeline and ONNX expect them."""
    import pandas as pd

    columns: dict[str, Any] = {}
    for f in features:
        col = table.column(f.name)
        if f.type in NUMERIC_TYPES:
            columns[f.name] = col.cast(pa.float32()).to_numpy(zero_copy_only=False).astype(np.float32)
        else:
            values = col.cast(pa.string()).to_pylist()
            columns[f.name] = np.array(["" if v is None else v for v in values], dtype=object)
    return pd.DataFrame(columns)


def graph_inputs_for(features: list[Feature]) -> dict[str, str]:
    """Feature name -> ONNX graph input name: `f<position>`, valid and distinct whatever the names."""
    return {f.name: f"f{i}" for i, f in enumerate(features)}


def onnx_feeds(frame: Any, features: list[Feature], input_names: list[str]) -> dict[str, np.ndarray]:
    """The frame's feature columns as ONNX inputs; `input_names` holds each feature's graph input."""
    feeds: dict[str, np.ndarray] = {}
    for f, name in zip(features, input_names, strict=True):
        values = frame[f.name].to_numpy()
        if f.type in NUMERIC_TYPES:
            feeds[name] = values.astype(np.float32).reshape(-1, 1)
        else:
            feeds[name] = values.astype(object).reshape(-1, 1)
    return feeds


def target_values(table: pa.Table, spec: TrainingSpec) -> tuple[np.ndarray, np.ndarray]:
    """(y, mask of rows with a target): labels as strings, regression targets as float64."""
    col = table.column(spec.target)
    mask = np.asarray(col.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if spec.task == "classification":
        y = np.array([str(v) for v in col.to_pylist()], dtype=object)
    else:
        try:
            y = col.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise TrainingFailed(f"regression target {spec.target!r} is not numeric") from exc
        mask &= np.isfinite(y)
    return y, mask


def prepare(spec: TrainingSpec, table: pa.Table, contract_columns: list[Feature]) -> Prepared:
    """Features, target and the seeded holdout split (the same on every call)."""
    from sklearn.model_selection import train_test_split

    derivation = resolve_derived(spec, table.schema, contract_columns) if spec.derived else None
    if derivation is None:
        features = resolve_features(spec, table.schema, contract_columns)
    else:
        features = pipeline_features(spec, derivation)
    y_all, mask = target_values(table, spec)
    dropped = int((~mask).sum())
    if dropped:
        table = table.filter(pa.array(mask))
        y_all = y_all[mask]
    n = table.num_rows
    if n < 10:
        raise TrainingFailed(f"{n} rows with a target: too few to train and hold out")
    if derivation is not None:
        table = with_derived(table, derivation)
    frame = to_frame(table, features)
    stratify = None
    if spec.task == "classification":
        labels, counts = np.unique(y_all.astype(str), return_counts=True)
        if len(labels) < 2:
            raise TrainingFailed(f"target {spec.target!r} has a single class {labels.tolist()}")
        if spec.split.stratify and counts.min() >= 2:
            stratify = y_all
    idx = np.arange(n)
    train_idx, holdout_idx = train_test_split(
        idx, test_size=spec.split.holdout_fraction, random_state=spec.split.seed, stratify=stratify
    )
    return Prepared(
        features=features,
        table=table,
        frame=frame,
        y=y_all,
        train_idx=np.sort(train_idx),
        holdout_idx=np.sort(holdout_idx),
        dropped_rows=dropped,
        derivation=derivation,
    )


# -- the pipeline ----------------------------------------------------------------------------
def build_pipeline(spec: TrainingSpec, features: list[Feature]) -> Any:
    from sklearn import ensemble, linear_model
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    # columns by position (the frame's columns are the features in order): the ONNX export then
    # maps them to its positional inputs, whatever the features are called
    numeric = [i for i, f in enumerate(features) if f.type in NUMERIC_TYPES]
    text = [i for i, f in enumerate(features) if f.type in TEXT_TYPES]
    steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median", keep_empty_features=True))]
    if spec.estimator.name in SCALED_ESTIMATORS:
        steps.append(("scale", StandardScaler()))
    transformers: list[tuple[str, Any, list[int]]] = []
    if numeric:
        transformers.append(("numeric", Pipeline(steps), numeric))
    if text:
        transformers.append(("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), text))
    module = linear_model if spec.estimator.name in SCALED_ESTIMATORS else ensemble
    cls = getattr(module, spec.estimator.name.value)
    params: dict[str, Any] = dict(spec.estimator.params)
    if "random_state" in cls().get_params():
        params["random_state"] = spec.split.seed
    try:
        estimator = cls(**params)
    except TypeError as exc:
        raise TrainingFailed(f"{spec.estimator.name}: {exc}") from exc
    return Pipeline([("preprocess", ColumnTransformer(transformers, remainder="drop")), ("estimator", estimator)])


def fit(spec: TrainingSpec, prepared: Prepared) -> Fitted:
    from sklearn.utils._param_validation import InvalidParameterError

    pipeline = build_pipeline(spec, prepared.features)
    X = prepared.frame.iloc[prepared.train_idx]
    y = prepared.y[prepared.train_idx]
    started = time.perf_counter()
    try:
        pipeline.fit(X, y)
    except (InvalidParameterError, ValueError) as exc:
        raise TrainingFailed(f"{spec.estimator.name} could not be fitted: {exc}") from exc
    seconds = time.perf_counter() - started
    align_to_float32(pipeline)
    labels = [str(c) for c in pipeline.classes_] if spec.task == "classification" else None
    return Fitted(pipeline=pipeline, class_labels=labels, fit_seconds=seconds)


def floor_float32(values: np.ndarray) -> np.ndarray:
    """The largest float32 <= each value, as float64: for any float32 x, x <= t  <=>  x <= floor32(t)."""
    t = np.asarray(values, dtype=np.float64)
    down = t.astype(np.float32)
    over = down.astype(np.float64) > t
    down[over] = np.nextafter(down[over], np.float32(-np.inf))
    return down.astype(np.float64)


def align_to_float32(pipeline: Any) -> None:
    """Make the fitted pipeline's float64 constants exact in float32, where ONNX serves.

    Tree split thresholds become the largest float32 at or below them and imputed medians are
    rounded to float32. The pipeline's inputs are float32 values (to_frame casts them), so its
    predictions do not change; the ONNX export (float32 thresholds) then takes the same branches.
    Without this a threshold that rounds up onto a training value sends that value the other way
    in ONNX (seen: HistGradientBoosting on the wine data, probabilities off by 7.7e-3).
    """
    from sklearn.impute import SimpleImputer

    for _, transformer, _ in pipeline.named_steps["preprocess"].transformers_:
        for step in getattr(transformer, "named_steps", {}).values():
            if isinstance(step, SimpleImputer):
                step.statistics_ = step.statistics_.astype(np.float32).astype(np.float64)
    estimator = pipeline.steps[-1][1]
    for per_iteration in getattr(estimator, "_predictors", []):  # HistGradientBoosting*
        for predictor in per_iteration:
            inner = ~predictor.nodes["is_leaf"].astype(bool)
            predictor.nodes["num_threshold"][inner] = floor_float32(predictor.nodes["num_threshold"][inner])
    for tree in getattr(estimator, "estimators_", []):  # RandomForest*
        inner = tree.tree_.children_left != -1
        thresholds = tree.tree_.threshold  # a view of the tree's nodes
        thresholds[inner] = floor_float32(thresholds[inner])


# -- serialization ---------------------------------------------------------------------------
def _patch_skl2onnx() -> None:
    """skl2onnx 1.20 passes a Python bool for `nodes_missing_value_tracks_true` of
    HistGradientBoosting leaves, which protobuf >= 6 refuses in an int list; pass 0/1."""
    from skl2onnx.common import tree_ensemble

    if getattr(tree_ensemble.add_node, "_stepwise_int_missing", False):
        return
    original = tree_ensemble.add_node

    def add_node(*args: Any, nodes_missing_value_tracks_true: Any = 0, **kwargs: Any) -> Any:
        return original(*args, nodes_missing_value_tracks_true=int(nodes_missing_value_tracks_true), **kwargs)

    add_node._stepwise_int_missing = True  # type: ignore[attr-defined]
    tree_ensemble.add_node = add_node


# the opsets a pipeline is exported at when derived features are merged in front of it (string
# Equal in the transformation graph needs opset 19); other exports keep skl2onnx's default
DERIVED_TARGET_OPSET = {"": 21, "ai.onnx.ml": 3}


def export_onnx(
    fitted: Fitted, features: list[Feature], graph_inputs: dict[str, str], derivation: Derivation | None = None
) -> bytes:
    """The fitted pipeline as ONNX, each feature fed through the input `graph_inputs` names for it
    (GraphInputMismatch if the exported graph came out with other inputs). With a derivation, ONE
    graph = the transformation graph + the pipeline, taking the raw fields as inputs named by
    `derivation.raw_inputs`."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    _patch_skl2onnx()
    names = [graph_inputs[f.name] for f in features]
    initial_types = [
        (name, FloatTensorType([None, 1]) if f.type in NUMERIC_TYPES else StringTensorType([None, 1]))
        for f, name in zip(features, names, strict=True)
    ]
    estimator = fitted.pipeline.steps[-1][1]
    options = {id(estimator): {"zipmap": False}} if fitted.class_labels is not None else None
    try:
        model = to_onnx(
            fitted.pipeline,
            initial_types=initial_types,
            options=options,
            target_opset=DERIVED_TARGET_OPSET if derivation is not None else None,
        )
    except Exception as exc:  # skl2onnx raises many types; the spec's estimator cannot be served
        raise TrainingFailed(f"ONNX export failed: {type(exc).__name__}: {str(exc)[:500]}") from exc
    check_graph_inputs("the ONNX export", features, names, [i.name for i in model.graph.input])
    if derivation is None:
        return bytes(model.SerializeToString())
    from functions.logic.derived import merge

    try:
        merged = merge(derivation, model.SerializeToString(), graph_inputs)
    except InvalidInput as exc:
        raise TrainingFailed(f"merging the derived features into the ONNX graph failed: {exc}") from exc
    raw = derivation.raw_features
    check_graph_inputs(
        "the merged ONNX graph",
        raw,
        [derivation.raw_inputs[f.name] for f in raw],
        [i.name for i in onnx_inputs(merged)],
    )
    return merged


def onnx_inputs(model: bytes) -> list[Any]:
    import onnx

    return list(onnx.load_from_string(model).graph.input)


def dump_skops(fitted: Fitted) -> bytes:
    import skops.io as sio

    return bytes(sio.dumps(fitted.pipeline))


def load_skops(data: bytes) -> Any:
    """Load a skops file whose sha256 the caller has verified; refuse types outside the allow-list."""
    import skops.io as sio

    untrusted = set(sio.get_untrusted_types(data=data))
    unknown = sorted(untrusted - TRUSTED_SKOPS_TYPES)
    if unknown:
        raise IntegrityError(f"refusing to load a skops file with untrusted types {unknown}")
    return sio.loads(data, trusted=sorted(untrusted))


def pipeline_parameters(spec: TrainingSpec, fitted: Fitted) -> dict[str, str | int | float | bool | None]:
    """The estimator's effective parameters (scalars only), for the registry."""
    params = fitted.pipeline.steps[-1][1].get_params(deep=False)
    out: dict[str, str | int | float | bool | None] = {"estimator": spec.estimator.name.value}
    for key, value in sorted(params.items()):
        if value is None or isinstance(value, str | bool | int) or (isinstance(value, float) and np.isfinite(value)):
            out[key] = value
        else:
            out[key] = str(value)
    return out


def reference_profile(table: pa.Table, features: list[Feature], created_at: datetime) -> bytes:
    """The reference profile the drift check compares captured traffic with: the training rows'
    features (JSON bytes)."""
    from functions.logic.profile import build_reference_profile

    try:
        return build_reference_profile(table, features, created_at=created_at).to_bytes()
    except (KeyError, ValueError) as exc:
        raise TrainingFailed(f"reference profile failed: {exc}") from exc
