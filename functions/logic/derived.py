"""Derived features of a training spec: checked when the spec is stored, computed for training by
the compiled transformation graph, and merged into the served ONNX model in front of the pipeline.

The raw fields an expression may read are the dataset's columns (typed by its contract, else by
the file's schema) except the target: a derived feature never sees the label. A category column
reads as a string.

A version with derived features is served as one ONNX graph = transformations + fitted pipeline.
Its outputs are the pipeline's, then one per derived feature the pipeline takes (named as the
feature: the value the pipeline was fed), which serving captures for monitoring. Its `features`
are the raw fields that graph takes (what a request carries), `graph_inputs` maps
each raw field to its positional graph input (`raw0`, `raw1`, ...: a field name need not be a
valid graph input name), `pipeline_features` are the pipeline's own inputs (raw and derived
features, as the spec lists them) and `derived` the definitions it was trained with.

Feeds of the merged graph (functions/logic/expressions_runtime.py): float64 for int, float, bool
(0/1) and timestamp (seconds since the epoch, UTC) fields, NaN for null; strings with "" for null.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from functions.logic.expressions import CheckedFeatures, check
from functions.models.errors import InvalidInput
from functions.models.expressions import InputField, ValueType
from functions.models.registry import Feature
from functions.models.specs import TrainingSpec

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from functions.logic.expressions_onnx import Transformation

RAW_INPUT_PREFIX = "raw"  # the merged graph's inputs: raw0, raw1, ... in raw-field order
_INPUT_TYPES: dict[str, ValueType] = {
    "int": "int",
    "float": "float",
    "bool": "bool",
    "string": "string",
    "category": "string",
    "timestamp": "timestamp",
}


def view_references(spec: TrainingSpec) -> dict[str, list[str]]:
    """View name -> the view features the spec reads (`view:feature` in its features or in its
    derived expressions), in order of first mention. An expression that does not tokenize reads
    nothing here: the type check reports it."""
    from functions.logic.expressions import ExpressionError, tokenize
    from functions.models.specs import split_view_feature

    names = list(spec.features)
    for d in spec.derived:
        try:
            names += [str(t.value) for t in tokenize(d.expression) if t.kind == "name"]
        except ExpressionError:
            continue
    out: dict[str, list[str]] = {}
    for name in names:
        parts = split_view_feature(name)
        if parts is not None and parts[1] not in out.setdefault(parts[0], []):
            out[parts[0]].append(parts[1])
    return out


def input_fields(columns: Sequence[Feature], target: str) -> list[InputField]:
    """The raw fields derived features may read: every typed column but the target."""
    return [InputField(name=c.name, type=_INPUT_TYPES[c.type]) for c in columns if c.name != target]


def check_spec(spec: TrainingSpec, columns: Sequence[Feature]) -> CheckedFeatures:
    """Parse and type-check the spec's derived features over the dataset's columns; InvalidInput
    naming the feature, its expression and the problem (unknown field or function, type error,
    a name clashing with a column, a cycle), or naming a feature that is neither."""
    try:
        checked = check(input_fields(columns, spec.target), spec.derived)
    except InvalidInput as exc:
        if f"unknown field {spec.target!r}" in str(exc):
            raise InvalidInput(f"{exc}; the target {spec.target!r} is never an input of derived features") from None
        raise
    known = {c.name for c in columns} | {d.name for d in spec.derived}
    unknown = [name for name in spec.features if name not in known]
    if unknown:
        raise InvalidInput(f"features {unknown} are neither columns of dataset {spec.dataset!r} nor derived features")
    return checked


def pipeline_feature(checked: CheckedFeatures, name: str, columns: dict[str, Feature]) -> Feature:
    """How the pipeline sees one of its features: a raw column as typed, a derived one by its type."""
    if name in columns:
        return columns[name]
    return Feature(name=name, type=checked.by_name()[name].feature.type, nullable=True)


@dataclass
class Derivation:
    """The spec's transformation graph and what it maps: raw fields in, pipeline features out."""

    checked: CheckedFeatures
    transformation: Transformation  # outputs: every pipeline feature (raw ones passed through)
    raw_features: list[Feature]  # the raw fields the graph reads, in graph-input order

    @property
    def raw_inputs(self) -> dict[str, str]:
        """Raw field name -> the merged graph's input it feeds."""
        return {f.name: f"{RAW_INPUT_PREFIX}{i}" for i, f in enumerate(self.raw_features)}


def plan(spec: TrainingSpec, columns: Sequence[Feature]) -> Derivation:
    """Check the spec's derived features and compile the graph computing its pipeline features."""
    from functions.logic.expressions_onnx import compile_transformation

    checked = check_spec(spec, columns)
    transformation = compile_transformation(checked, spec.features)
    by_name = {c.name: c for c in columns}
    raw = [by_name[i.name] for i in transformation.inputs]
    return Derivation(checked=checked, transformation=transformation, raw_features=raw)


def derive(derivation: Derivation, table: pa.Table) -> dict[str, np.ndarray]:
    """The derived pipeline features over the table's raw rows, computed by the compiled graph."""
    from functions.logic.expressions_onnx import derive_columns

    derived = {d.feature.name for d in derivation.checked.features}
    columns = derive_columns(derivation.transformation, table)
    return {name: values for name, values in columns.items() if name in derived}


def raw_feeds(derivation_inputs: Sequence[Feature], raw_inputs: dict[str, str], table: pa.Table) -> dict[str, Any]:
    """The merged graph's feeds from raw table rows, keyed by its input names."""
    from functions.logic.expressions_onnx import table_feeds

    fields = [InputField(name=f.name, type=_INPUT_TYPES[f.type]) for f in derivation_inputs]
    return {raw_inputs[name]: values for name, values in table_feeds(table, fields).items()}


def null_empty_strings(table: pa.Table, features: Sequence[Feature]) -> pa.Table:
    """The table with "" as null in the given string columns: derived string values carry null as
    "" (the graph's representation); monitoring counts it as a null, on both sides."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for feature in features:
        if feature.type == "string" and feature.name in table.column_names:
            column = table.column(feature.name)
            index = table.column_names.index(feature.name)
            nulled = pc.if_else(pc.equal(column, ""), pa.scalar(None, column.type), column)
            table = table.set_column(index, feature.name, nulled)
    return table


def merge(derivation: Derivation, pipeline_onnx: bytes, graph_inputs: dict[str, str]) -> bytes:
    """One ONNX model: the transformation graph feeding the pipeline (whose inputs `graph_inputs`
    names per pipeline feature), taking the raw fields as inputs named by `raw_inputs`."""
    import onnx

    from functions.logic.expressions_onnx import Transformation, merge_in_front

    pipeline = onnx.load_from_string(pipeline_onnx)
    t = derivation.transformation
    # the transformation's outputs keyed by the pipeline input each one feeds
    front = Transformation(
        model=t.model,
        inputs=t.inputs,
        outputs={graph_inputs[name]: out for name, out in t.outputs.items()},
        output_types=t.output_types,
    )
    merged = merge_in_front(front, pipeline)
    renames = derivation.raw_inputs
    taken = {n for node in merged.graph.node for n in node.output} | {i.name for i in merged.graph.initializer}
    clash = sorted(set(renames.values()) & taken)
    if clash:
        raise InvalidInput(f"the merged graph already uses the input names {clash}")
    for value in merged.graph.input:
        value.name = renames[value.name]
    for node in merged.graph.node:
        for i, name in enumerate(node.input):
            if name in renames:
                node.input[i] = renames[name]
    # the derived values the pipeline takes are outputs too, after the pipeline's own: serving
    # captures what this graph computed for monitoring (functions/logic/serving_runtime.py)
    derived = {d.feature.name for d in derivation.checked.features}
    declared = {o.name: o for o in t.model.graph.output}
    for name, out in t.outputs.items():
        if name in derived:
            merged.graph.output.append(declared[out])
    onnx.checker.check_model(merged)
    return bytes(merged.SerializeToString())
