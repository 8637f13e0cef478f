"""Verification of an imported ONNX artifact: bytes trained outside the platform, untrusted input.

Runs in the evaluate step (the training image, which has onnx and onnxruntime), never in the API
function. Every check runs on the bytes read once from the artifacts bucket:
- size: at most `max_bytes`, before anything parses them;
- sha256: the bytes are exactly those the import named (moto and a presigned PUT verify nothing);
- parse: one protobuf parse (the protobuf runtime's own recursion limit bounds nesting), a model
  with an ONNX IR version, a graph, at least one input and one output;
- no external data: no tensor anywhere in the graph (initializers, node attributes, subgraphs of
  If/Loop/Scan) refers to data outside the file;
- operators: every opset import and every node's domain is a standard one (`ai.onnx`, `ai.onnx.ml`),
  at an opset the inference layer's ONNX Runtime loads (STANDARD_OPSETS); no model-local functions;
- loads in ONNX Runtime (the inference layer's version), with graph optimizations off;
- inputs against the dataset's contract: each graph input is named after a contract column (never
  the target), has a type that column can feed and shape [N, 1]; one error lists every mismatch;
- class labels (classifiers): the labels the graph declares (its ZipMap's, else the `classlabels_*`
  of the classifier node nearest the outputs) are the dataset's target classes in the platform's
  order (`classes`: sorted as scikit-learn sorts them), since probabilities are read by column in
  that order; a graph that declares none is scored by its label output alone.
A check that fails raises ImportRefused with every reason found (`details`: field + reason).
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from functions.models.contracts import DataContract
from functions.models.errors import ImportRefused
from functions.models.registry import Feature

# The highest opset per standard domain the inference layer's ONNX Runtime (1.32, layers/inference)
# loads; tests/unit/test_import_verify.py loads a graph at each bound and refuses one above it.
STANDARD_OPSETS = {"": 28, "ai.onnx": 28, "ai.onnx.ml": 5}
MAX_GRAPH_DEPTH = 16  # subgraph nesting walked for domains and external data
MAX_REASONS = 50  # reasons listed in one refusal

# ONNX TensorProto element types per contract column type: what serving can feed that column as
# (functions/logic/serving_runtime.py: numbers as float/double/int, strings as string, timestamps
# as ISO strings or epoch seconds in double).
_FLOAT, _INT32, _STRING, _BOOL, _DOUBLE, _INT64 = 1, 6, 8, 9, 11, 7
_ELEMENT_NAMES = {
    _FLOAT: "float",
    _INT32: "int32",
    _STRING: "string",
    _BOOL: "bool",
    _DOUBLE: "double",
    _INT64: "int64",
}
FEEDABLE = {
    "int": {_FLOAT, _DOUBLE, _INT64, _INT32},
    "float": {_FLOAT, _DOUBLE},
    "bool": {_FLOAT, _DOUBLE, _INT64, _BOOL},
    "string": {_STRING},
    "category": {_STRING},
    "timestamp": {_STRING, _DOUBLE},
}


class VerifiedImport(BaseModel):
    """What verification found: the features the graph takes (contract order) and its outputs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=1)
    opsets: dict[str, int]
    features: list[Feature] = Field(min_length=1)
    outputs: list[str] = Field(min_length=1)
    class_labels: list[str] | None = None  # the labels the graph declares, in its probability order


def refusal(what: str, reasons: list[tuple[str, str]]) -> ImportRefused:
    """ImportRefused for `what`, its message and details listing each (field, reason)."""
    return _refuse(what, reasons)


def _refuse(what: str, reasons: list[tuple[str, str]]) -> ImportRefused:
    shown = reasons[:MAX_REASONS]
    more = f" (and {len(reasons) - MAX_REASONS} more)" if len(reasons) > MAX_REASONS else ""
    text = "; ".join(f"{field}: {reason}" for field, reason in shown)
    return ImportRefused(
        f"{what} refused: {text}{more}", details=[{"field": field, "reason": reason} for field, reason in shown]
    )


def verify_import(
    content: bytes,
    *,
    expected_sha256: str,
    max_bytes: int,
    contract: DataContract,
    target: str | None,
    task: str,
    classes: list[str] | None = None,
    what: str = "the imported model",
) -> VerifiedImport:
    """Every check above, in order; the first failing stage raises ImportRefused with all its reasons."""
    if len(content) > max_bytes:
        raise _refuse(what, [("size", f"{len(content)} bytes is over the import size limit of {max_bytes} bytes")])
    digest = hashlib.sha256(content).hexdigest()
    if digest != expected_sha256:
        raise _refuse(what, [("sha256", f"the stored bytes hash to {digest}, the import named {expected_sha256}")])
    model = _parse(content, what)
    reasons = _structure(model)
    if reasons:
        raise _refuse(what, reasons)
    _load(content, what)
    features = _contract_inputs(model, contract, target, what)
    outputs = [o.name for o in model.graph.output]
    if task == "classification" and len(outputs) < 2:
        raise _refuse(
            what, [("outputs", f"a classifier needs a label and a probabilities output, the graph has {outputs}")]
        )
    labels = graph_class_labels(model) if task == "classification" else None
    if labels is not None and classes is not None and labels != classes:
        raise _refuse(what, [("class_labels", _label_mismatch(labels, classes))])
    opsets = {o.domain or "ai.onnx": int(o.version) for o in model.opset_import}
    return VerifiedImport(
        sha256=digest,
        size_bytes=len(content),
        opsets=opsets,
        features=features,
        outputs=outputs,
        class_labels=labels,
    )


# ai.onnx.ml classifiers and ZipMap name their labels in one of these attributes, in the order of
# their probability columns.
_LABEL_ATTRIBUTES = ("classlabels_strings", "classlabels_int64s", "classlabels_ints")
_CLASSIFIER_OPS = {"LinearClassifier", "SVMClassifier", "TreeEnsembleClassifier"}


def graph_class_labels(model: Any) -> list[str] | None:
    """The class labels a graph declares, in probability-column order: its ZipMap's (what the
    probabilities output is keyed by), else the last classifier node's (nearest the outputs), as
    strings; None when the main graph declares none."""
    zipmaps = [n for n in model.graph.node if n.op_type == "ZipMap"]
    classifiers = zipmaps or [n for n in model.graph.node if n.op_type in _CLASSIFIER_OPS]
    for node in reversed(classifiers):
        for attr in node.attribute:
            if attr.name in _LABEL_ATTRIBUTES:
                values = attr.strings if attr.name == "classlabels_strings" else attr.ints
                return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]
    return None


def _label_mismatch(labels: list[str], classes: list[str]) -> str:
    text = (
        f"the graph's class labels {labels[:MAX_REASONS]} are not the dataset's target classes {classes[:MAX_REASONS]}"
    )
    parts = []
    missing = sorted(set(classes) - set(labels))
    if missing:
        parts.append(f"missing {missing[:MAX_REASONS]}")
    extra = sorted(set(labels) - set(classes))
    if extra:
        parts.append(f"not classes of the dataset {extra[:MAX_REASONS]}")
    if parts:
        return f"{text}: {', '.join(parts)}"
    return f"{text} in that order: its probabilities would be read against the wrong classes"


def _parse(content: bytes, what: str) -> Any:
    import onnx
    from google.protobuf.message import DecodeError

    model = onnx.ModelProto()
    try:
        model.ParseFromString(content)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise _refuse(what, [("file", f"not a readable ONNX model (protobuf: {exc})")]) from exc
    if model.ir_version < 1 or not model.HasField("graph"):
        raise _refuse(what, [("file", "not an ONNX model (no IR version or no graph)")])
    if not model.graph.input or not model.graph.output:
        raise _refuse(what, [("graph", "the graph declares no inputs or no outputs")])
    return model


def _structure(model: Any) -> list[tuple[str, str]]:
    """Opsets, node domains, local functions and external data, over the graph and its subgraphs."""
    import onnx

    reasons: list[tuple[str, str]] = []
    for opset in model.opset_import:
        domain = opset.domain or ""
        if domain not in STANDARD_OPSETS:
            reasons.append(("opset_import", f"domain {domain!r} is not a standard ONNX domain (custom operators)"))
        elif opset.version > STANDARD_OPSETS[domain]:
            reasons.append(
                (
                    "opset_import",
                    f"{domain or 'ai.onnx'} opset {opset.version} is above {STANDARD_OPSETS[domain]}, "
                    "the highest the inference runtime loads",
                )
            )
    if model.functions:
        reasons.append(("functions", f"the model defines {len(model.functions)} local function(s); none are allowed"))
    custom: set[str] = set()
    external: list[str] = []
    graphs = [(model.graph, 0)]
    while graphs:
        graph, depth = graphs.pop()
        if depth > MAX_GRAPH_DEPTH:
            reasons.append(("graph", f"subgraphs nest deeper than {MAX_GRAPH_DEPTH} levels"))
            break
        external += [t.name for t in graph.initializer if _is_external(t)]
        external += [t.values.name for t in graph.sparse_initializer if _is_external(t.values)]
        for node in graph.node:
            if (node.domain or "") not in STANDARD_OPSETS:
                custom.add(f"{node.domain}:{node.op_type}")
            for attr in node.attribute:
                tensors = [attr.t] if attr.HasField("t") else []
                external += [t.name or node.name for t in [*tensors, *attr.tensors] if _is_external(t)]
                if attr.type == onnx.AttributeProto.GRAPH:
                    graphs.append((attr.g, depth + 1))
                graphs += [(g, depth + 1) for g in attr.graphs]
    if custom:
        reasons.append(("nodes", f"operators outside the standard domains: {sorted(custom)[:MAX_REASONS]}"))
    if external:
        reasons.append(
            ("external_data", f"tensors refer to data outside the file: {sorted(set(external))[:MAX_REASONS]}")
        )
    return reasons


def _is_external(tensor: Any) -> bool:
    import onnx

    return bool(tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data) > 0)


def _load(content: bytes, what: str) -> None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        ort.InferenceSession(content, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises its own (pybind) exception types
        raise _refuse(what, [("runtime", f"ONNX Runtime does not load it: {str(exc)[:500]}")]) from exc


def _contract_inputs(model: Any, contract: DataContract, target: str | None, what: str) -> list[Feature]:
    """The graph's inputs as features of the contract, or ImportRefused listing every mismatch."""
    columns = {c.name: c for c in contract.columns}
    target = target or contract.target
    initializers = {t.name for t in model.graph.initializer}
    reasons: list[tuple[str, str]] = []
    taken: set[str] = set()
    for node in model.graph.input:
        name = node.name
        if name in initializers:
            continue
        field = f"input {name!r}"
        column = columns.get(name)
        if column is None:
            reasons.append((field, "is not a column of the dataset's contract"))
            continue
        if name == target:
            reasons.append((field, "is the target column; a model cannot take its own label"))
            continue
        tensor = node.type.tensor_type if node.type.HasField("tensor_type") else None
        if tensor is None:
            reasons.append((field, "is not a tensor"))
            continue
        element = int(tensor.elem_type)
        allowed = FEEDABLE[column.type]
        if element not in allowed:
            reasons.append(
                (
                    field,
                    f"has type {_ELEMENT_NAMES.get(element, f'element type {element}')}, column {name!r} is "
                    f"{column.type} (feedable as {sorted(_ELEMENT_NAMES[e] for e in allowed)})",
                )
            )
        dims = list(tensor.shape.dim) if tensor.HasField("shape") else []
        if len(dims) != 2 or (dims[1].HasField("dim_value") and dims[1].dim_value != 1):
            shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
            reasons.append((field, f"has shape {shape}; each input must be one column, shape [N, 1]"))
        taken.add(name)
    if reasons:
        raise _refuse(what, reasons)
    return [
        Feature(name=c.name, type=c.type, nullable=c.nullable, categories=c.categories)
        for c in contract.columns
        if c.name in taken
    ]
