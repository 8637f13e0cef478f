"""One model version in memory: verified ONNX bytes -> an ONNX Runtime session, its input contract,
and the conversion of validated rows into the session's inputs.

ONNX export contract (what the lifecycle's skl2onnx export must look like to be served):
- inputs: either ONE 2-D numeric tensor ([N, n_features], float/double/int64) whose columns are
  `ModelVersion.features` in order (bool -> 0/1, null -> NaN), or ONE
  INPUT PER FEATURE, shape [N, 1] (what the lifecycle exports: float for int/float/bool, string for
  string/category/timestamp features; null -> NaN or ""), named as `ModelVersion.graph_inputs`
  maps the feature (the lifecycle's positional `f0`, `f1`, ...), or after the feature itself when
  the version records no mapping (versions registered before it was recorded). A version with a
  mapping is always fed per feature; a graph whose inputs differ is refused (GraphInputMismatch).
  A version with derived features (functions/logic/derived.py) is one graph = transformations +
  pipeline: its features are the raw fields, fed as float64 (timestamps as epoch seconds, UTC) or
  string, as its graph inputs declare.
- outputs: regressors: the first output, [N] or [N, 1]. Classifiers: the label output first
  ([N], int64 or string) and the probabilities second, either a tensor [N, n_classes] (export with
  skl2onnx option zipmap=False, faster) or a ZipMap sequence of maps; columns follow
  `ModelVersion.class_labels`. A derived-feature graph also outputs, named as each derived feature
  the pipeline takes, the value it fed the pipeline ([N, 1] float or string); those are fetched in
  the same run and captured after the raw fields (NaN and "" as null), so monitoring sees exactly
  what the model saw.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort
from pydantic import BaseModel

from functions.logic.capture import numbers_template
from functions.logic.expressions_runtime import DISABLED_OPTIMIZERS, timestamp_seconds
from functions.logic.lookups import LookupPlan, plan
from functions.models.errors import IntegrityError
from functions.models.registry import ModelVersion, graph_input_names, monitored_derived
from functions.models.serving import ModelUnavailable, check_graph_inputs, lookup_request_model, request_model

_NUMERIC = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64}
_COLUMN_KINDS = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}


def verify(content: bytes, sha256: str, size_bytes: int, *, what: str) -> None:
    """Raise IntegrityError unless the bytes are exactly the registered ones."""
    digest = hashlib.sha256(content).hexdigest()
    if len(content) != size_bytes or digest != sha256:
        raise IntegrityError(f"{what}: artifact failed verification (sha256 mismatch); this version is not served")


def _session(content: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    # Lambda gives a fraction of a few vCPUs; small batches are fastest on one thread, no spinning.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(
        content, options, providers=["CPUExecutionProvider"], disabled_optimizers=DISABLED_OPTIMIZERS
    )


@dataclass
class OnnxModel:
    """A verified, loaded version: validates rows with its request model and scores them."""

    version: ModelVersion
    session: ort.InferenceSession
    request_model: type[BaseModel]
    feature_names: tuple[str, ...]
    classifier: bool
    input_names: tuple[str, ...] = ()  # the graph input each feature feeds, in feature order
    matrix_input: str | None = None  # name of the single 2-D input, or None for per-feature inputs
    matrix_dtype: Any = np.float32
    column_dtypes: dict[str, Any] = field(default_factory=dict)
    output_names: list[str] = field(default_factory=list)
    capture_template: str | None = None  # capture.numbers_template when every feature is a number
    derived_outputs: list[str] = field(default_factory=list)  # derived features the graph outputs
    capture_names: tuple[str, ...] = ()  # what a capture records: the raw fields, then derived_outputs
    lookup: LookupPlan | None = None  # trained through feature views: what a request's rows look up

    @classmethod
    def load(cls, version: ModelVersion, content: bytes, *, max_instances: int) -> OnnxModel:
        what = f"{version.model} v{version.version}"
        artifact = version.artifacts["onnx"]
        verify(content, artifact.sha256, artifact.size_bytes, what=what)
        try:
            session = _session(content)
        except Exception as exc:  # ONNX Runtime raises its own (pybind) exception types
            raise ModelUnavailable(f"{what}: the ONNX artifact does not load") from exc
        names = tuple(f.name for f in version.features)
        lookup = plan(version)
        model = cls(
            version=version,
            session=session,
            request_model=request_model(version, max_instances)
            if lookup is None
            else lookup_request_model(
                version,
                max_instances,
                looked_up=lookup.looked_up,
                entity_fields=list(lookup.entity_fields),
                overrides=bool(lookup.overridable),
            ),
            lookup=lookup,
            feature_names=names,
            classifier=version.task == "classification",
            input_names=tuple(graph_input_names(version.features, version.graph_inputs)),
        )
        if all(f.type in ("int", "float") and not f.nullable for f in version.features):
            model.capture_template = numbers_template(names)
        model._bind_inputs(what)
        outputs = session.get_outputs()
        if not outputs or (model.classifier and len(outputs) < 2):
            raise ModelUnavailable(f"{what}: the ONNX export lacks the label/probabilities outputs")
        model.output_names = [o.name for o in outputs[: 2 if model.classifier else 1]]
        offered = {o.name for o in outputs[len(model.output_names) :]}
        if version.derived:
            derived = monitored_derived(version.pipeline_features, version.derived)
            model.derived_outputs = [f.name for f in derived if f.name in offered]
        model.capture_names = names + tuple(model.derived_outputs)
        if model.derived_outputs:
            model.capture_template = None
        return model

    def _bind_inputs(self, what: str) -> None:
        inputs = self.session.get_inputs()
        kinds = {f.type for f in self.version.features}
        mapped = bool(self.version.graph_inputs)
        if not mapped and len(inputs) == 1 and len(inputs[0].shape) == 2 and inputs[0].type in _NUMERIC:
            width = inputs[0].shape[1]
            if isinstance(width, int) and width != len(self.feature_names):
                raise ModelUnavailable(
                    f"{what}: the ONNX input has {width} columns, the version {len(self.feature_names)}"
                )
            if kinds & {"string", "category", "timestamp"}:
                raise ModelUnavailable(f"{what}: string features cannot feed a numeric ONNX matrix input")
            self.matrix_input = inputs[0].name
            self.matrix_dtype = _NUMERIC[inputs[0].type]
            return
        by_name = {i.name: i for i in inputs}
        check_graph_inputs(what, self.version.features, list(self.input_names), list(by_name))
        for name, node in by_name.items():
            if node.type not in _COLUMN_KINDS:
                raise ModelUnavailable(f"{what}: ONNX input {name!r} has unsupported type {node.type}")
            self.column_dtypes[name] = _COLUMN_KINDS[node.type]

    # -- scoring ---------------------------------------------------------------------------
    def rows(self, instances: list[BaseModel]) -> list[list[Any]]:
        """Validated instances as value lists in feature order (fields are declared in that order)."""
        return [list(inst.__dict__.values()) for inst in instances]

    def feeds(self, rows: list[list[Any]]) -> dict[str, Any]:
        if self.matrix_input is not None:
            return {self.matrix_input: np.array(rows, dtype=self.matrix_dtype)}
        feeds = {}
        for j, name in enumerate(self.input_names):
            dtype = self.column_dtypes[name]
            column = [row[j] for row in rows]
            if dtype is np.object_:
                column = ["" if v is None else v for v in column]
            elif self.version.features[j].type == "timestamp":  # a derived-feature graph: epoch seconds
                column = [timestamp_seconds(v) for v in column]
            feeds[name] = np.array(column, dtype=dtype).reshape(-1, 1)
        return feeds

    def score(self, rows: list[list[Any]]) -> tuple[list[Any], list[list[float]] | None]:
        """(predictions, probabilities or None). Non-finite numbers become None."""
        predictions, probabilities, _ = self.score_and_derive(rows)
        return predictions, probabilities

    def score_and_derive(self, rows: list[list[Any]]) -> tuple[list[Any], list[list[float]] | None, list[np.ndarray]]:
        """score() plus, from the same run, the derived values the pipeline was fed (one [N, 1]
        array per derived_outputs name; empty when the graph has none)."""
        outputs = self.session.run([*self.output_names, *self.derived_outputs], self.feeds(rows))
        derived = outputs[len(self.output_names) :]
        predictions, probabilities = self._answers(outputs)
        return predictions, probabilities, derived

    def capture_rows(self, rows: list[list[Any]], derived: list[np.ndarray]) -> list[list[Any]]:
        """The rows a capture records (capture_names): raw values, then the derived ones (NaN, beyond
        float range, or "" as None)."""
        if not derived:
            return rows
        columns: list[list[Any]] = []
        for values in derived:
            flat = values.reshape(-1)
            if flat.dtype.kind == "f":
                finite = np.isfinite(flat)
                listed = flat.astype(np.float64).tolist()
                columns.append(
                    listed
                    if finite.all()
                    else [v if ok else None for v, ok in zip(listed, finite.tolist(), strict=True)]
                )
            else:
                columns.append([v if v else None for v in flat.tolist()])
        return [[*row, *extra] for row, extra in zip(rows, zip(*columns, strict=True), strict=True)]

    def _answers(self, outputs: list[Any]) -> tuple[list[Any], list[list[float]] | None]:
        first = outputs[0]
        predictions: list[Any] = (first.ravel() if first.ndim > 1 else first).tolist()
        if first.dtype.kind == "f" and not np.isfinite(first).all():
            predictions = [p if math.isfinite(p) else None for p in predictions]
        if not self.classifier:
            return predictions, None
        raw = outputs[1]
        # a tensor [N, n_classes], or a ZipMap: a list of {class: probability}
        probabilities = raw.tolist() if isinstance(raw, np.ndarray) else [list(m.values()) for m in raw]
        return predictions, probabilities

    # -- scoring whole columns (batch) -------------------------------------------------------
    def array_feeds(self, columns: list[np.ndarray]) -> dict[str, Any]:
        """The session's inputs from whole columns, one per feature in feature order, already
        converted as `feeds` converts row values (numbers with null -> NaN, text with null -> "",
        timestamps as epoch seconds): the same tensors the row path builds for the same rows."""
        if self.matrix_input is not None:
            return {self.matrix_input: np.column_stack(columns).astype(self.matrix_dtype, copy=False)}
        return {
            name: column.astype(self.column_dtypes[name], copy=False).reshape(-1, 1)
            for name, column in zip(self.input_names, columns, strict=True)
        }

    def score_arrays(self, columns: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """(predictions [N], probabilities [N, n_classes] float32 or None) for whole columns."""
        outputs = self.session.run(self.output_names, self.array_feeds(columns))
        first = outputs[0]
        predictions = first.ravel() if first.ndim > 1 else first
        if not self.classifier:
            return predictions, None
        raw = outputs[1]
        if not isinstance(raw, np.ndarray):  # a ZipMap: a list of {class: probability}
            raw = np.array([list(m.values()) for m in raw], dtype=np.float32)
        return predictions, raw
