"""Compile derived features into one ONNX graph, and compute them for training with that graph.

One implementation, no skew: training computes the derived columns by running the compiled graph
with ONNX Runtime on the training table's columns (`derive_columns`), and serving runs the same
nodes merged in front of the fitted pipeline (`merge_in_front`). There is no second evaluator to
keep in step; the semantics (functions/logic/expressions.py) are pinned by a property test that
compares the graph with a plain-Python reading of them.

The graph:
- inputs: one per raw field read, named after it, shape [N, 1]: float64 for float, int, bool
  (0/1) and timestamp (seconds since the epoch, UTC) fields, NaN for null; string for string
  fields, "" for null (see functions/logic/expressions_runtime.py for the feeds);
- outputs: one per requested feature, shape [N, 1]: a derived feature under its own name, float32
  for numbers and bools (NaN for null) or string ("" for null); a raw field the pipeline reads
  directly is passed through as `PASSTHROUGH_PREFIX + name` in the same representation.
Internal values are float64; every internal name starts with `expr/`.

This module runs at training time (the training image has onnx and pyarrow); serving needs only
the ONNX bytes and onnxruntime.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import pyarrow as pa
import pyarrow.compute as pc
from onnx import TensorProto, helper

from functions.logic.expressions import CheckedFeatures, infer
from functions.logic.expressions_runtime import TransformRunner, feed_kind
from functions.models.errors import InvalidInput
from functions.models.expressions import (
    Binary,
    BoolLit,
    Call,
    Expr,
    FieldRef,
    InList,
    InputField,
    ListLit,
    NumberLit,
    StringLit,
    Unary,
    ValueType,
)

OPSET = 21  # default-domain opset of the compiled graph; merge_in_front adopts the pipeline's
MIN_OPSET = 19  # string Equal needs 19
IR_VERSION = 10
PASSTHROUGH_PREFIX = "expr/pass/"
NAN = float("nan")
SECONDS_PER_DAY = 86_400.0
_CHUNK_ROWS = 65_536  # rows per ONNX Runtime call when deriving a training table


@dataclass
class Transformation:
    """A compiled transformation graph and what its inputs and outputs mean."""

    model: onnx.ModelProto
    inputs: list[InputField]  # graph inputs, in order
    outputs: dict[str, str]  # feature name -> output tensor name
    output_types: dict[str, ValueType] = field(default_factory=dict)  # feature name -> value type

    def to_bytes(self) -> bytes:
        return bytes(self.model.SerializeToString())


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._constants: dict[tuple[str, Any], str] = {}
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"expr/{hint}{self._count}"

    def op(self, op_type: str, inputs: Sequence[str], **attrs: Any) -> str:
        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def const(self, value: Any, kind: str = "double", shape: Sequence[int] = ()) -> str:
        values = list(value) if shape else [value]
        key = (f"{kind}{tuple(shape)}", tuple(str(v) if kind == "string" else v for v in values))
        if key in self._constants:
            return self._constants[key]
        name = self.name("const")
        if kind == "double":
            tensor = helper.make_tensor(name, TensorProto.DOUBLE, list(shape), [float(v) for v in values])
        elif kind == "float":
            tensor = helper.make_tensor(name, TensorProto.FLOAT, list(shape), [float(v) for v in values])
        elif kind == "int64":
            tensor = helper.make_tensor(name, TensorProto.INT64, list(shape), [int(v) for v in values])
        else:
            encoded: list[Any] = [str(v).encode() for v in values]
            tensor = helper.make_tensor(name, TensorProto.STRING, list(shape), encoded)
        self.initializers.append(tensor)
        self._constants[key] = name
        return name

    # -- helpers over the null conventions -----------------------------------------------------
    def where(self, condition: str, then: str, otherwise: str) -> str:
        return self.op("Where", [condition, then, otherwise])

    def as_double(self, boolean: str) -> str:
        return self.op("Cast", [boolean], to=TensorProto.DOUBLE)

    def finite(self, value: str) -> str:
        """Non-finite (overflow, -inf) -> null."""
        return self.where(self.op("IsInf", [value]), self.const(NAN), value)

    def null_if(self, condition: str, value: str) -> str:
        return self.where(condition, self.const(NAN), value)

    def is_null(self, value: str, kind: ValueType) -> str:
        if kind == "string":
            return self.op("Equal", [value, self.const("", "string")])
        return self.op("IsNaN", [value])

    def either_null(self, a: str, a_kind: ValueType, b: str, b_kind: ValueType) -> str:
        return self.op("Or", [self.is_null(a, a_kind), self.is_null(b, b_kind)])

    def floor_div(self, value: str, divisor: float) -> str:
        return self.op("Floor", [self.op("Div", [value, self.const(divisor)])])

    def floor_mod(self, value: str, divisor: float) -> str:
        quotient = self.floor_div(value, divisor)
        return self.op("Sub", [value, self.op("Mul", [quotient, self.const(divisor)])])


class _Compiler:
    def __init__(self, checked: CheckedFeatures) -> None:
        self.g = _Graph()
        self.env = checked.types()
        self.values: dict[str, str] = {}  # field or derived feature -> its float64/string tensor

    def typeof(self, expr: Expr) -> ValueType:
        return infer(expr, self.env)

    def emit(self, expr: Expr) -> str:
        g = self.g
        if isinstance(expr, NumberLit):
            return g.const(expr.value)
        if isinstance(expr, BoolLit):
            return g.const(1.0 if expr.value else 0.0)
        if isinstance(expr, StringLit):
            return g.const(expr.value, "string")
        if isinstance(expr, FieldRef):
            return self.values[expr.name]
        if isinstance(expr, Unary):
            operand = self.emit(expr.operand)
            if expr.op == "-":
                return g.op("Neg", [operand])
            return g.op("Sub", [g.const(1.0), operand])  # not: 1 - b keeps NaN
        if isinstance(expr, Binary):
            return self.binary(expr)
        if isinstance(expr, InList):
            return self.membership(expr)
        if isinstance(expr, Call):
            return self.call(expr)
        raise InvalidInput("a [list] is only an argument of bucketize()")  # the checker refuses it first

    def binary(self, expr: Binary) -> str:
        g = self.g
        left_kind, right_kind = self.typeof(expr.left), self.typeof(expr.right)
        a, b = self.emit(expr.left), self.emit(expr.right)
        op = expr.op
        if op in ("+", "-", "*"):
            return g.finite(g.op({"+": "Add", "-": "Sub", "*": "Mul"}[op], [a, b]))
        if op == "/":
            zero = g.op("Equal", [b, g.const(0.0)])
            return g.null_if(zero, g.finite(g.op("Div", [a, b])))
        if op == "and":
            false = g.op("Or", [g.op("Equal", [a, g.const(0.0)]), g.op("Equal", [b, g.const(0.0)])])
            null = g.either_null(a, "bool", b, "bool")
            return g.where(false, g.const(0.0), g.null_if(null, g.const(1.0)))
        if op == "or":
            true = g.op("Or", [g.op("Equal", [a, g.const(1.0)]), g.op("Equal", [b, g.const(1.0)])])
            null = g.either_null(a, "bool", b, "bool")
            return g.where(true, g.const(1.0), g.null_if(null, g.const(0.0)))
        compare = {"<": "Less", "<=": "LessOrEqual", ">": "Greater", ">=": "GreaterOrEqual", "==": "Equal"}
        result = g.op("Not", [g.op("Equal", [a, b])]) if op == "!=" else g.op(compare[op], [a, b])
        return g.null_if(g.either_null(a, left_kind, b, right_kind), g.as_double(result))

    def membership(self, expr: InList) -> str:
        g = self.g
        kind = self.typeof(expr.operand)
        x = self.emit(expr.operand)
        if kind == "string":
            distinct = list(dict.fromkeys(str(v.value) for v in expr.values))
            values = g.const(distinct, "string", [1, len(distinct)])
        else:
            numbers = list(dict.fromkeys(float(v.value) for v in expr.values))  # type: ignore[arg-type]
            values = g.const(numbers, "double", [1, len(numbers)])
        hits = g.as_double(g.op("Equal", [x, values]))  # [N, K]: at most one hit per row (distinct values)
        found = g.op("ReduceSum", [hits, g.const([1], "int64", [1])], keepdims=1)
        return g.null_if(g.is_null(x, kind), found)

    def call(self, expr: Call) -> str:
        g = self.g
        name, args = expr.function, expr.args
        if name == "bucketize":
            x = self.emit(args[0])
            assert isinstance(args[1], ListLit)
            edges = [float(v.value) for v in args[1].values]
            above = g.as_double(g.op("GreaterOrEqual", [x, g.const(edges, "double", [1, len(edges)])]))
            count = g.op("ReduceSum", [above, g.const([1], "int64", [1])], keepdims=1)
            return g.null_if(g.op("IsNaN", [x]), count)
        if name == "lower":
            return self.lower(self.emit(args[0]))
        kinds = [self.typeof(a) for a in args]
        values = [self.emit(a) for a in args]
        if name == "log1p":
            return self.log1p(values[0])
        if name == "abs":
            return g.op("Abs", values)
        if name == "clip":
            x, lo, hi = values
            return g.where(g.op("Less", [x, lo]), lo, g.where(g.op("Greater", [x, hi]), hi, x))
        if name in ("min", "max"):
            a, b = values
            pick_b = g.op("Less" if name == "min" else "Greater", [b, a])
            return g.where(g.op("IsNaN", [b]), b, g.where(pick_b, b, a))
        if name == "safe_div":
            a, b, default = values
            zero = g.op("Equal", [b, g.const(0.0)])
            quotient = g.where(zero, default, g.finite(g.op("Div", [a, b])))
            return g.null_if(g.op("IsNaN", [a]), quotient)
        if name in ("coalesce", "fill"):
            kind = "string" if "string" in kinds else kinds[0]
            result = values[-1]
            for value in reversed(values[:-1]):
                result = g.where(g.is_null(value, kind), result, value)
            return result
        if name == "if":
            condition, then, otherwise = values
            kind = kinds[1]
            chosen = g.where(g.op("Equal", [condition, g.const(1.0)]), then, otherwise)
            null = g.const("", "string") if kind == "string" else g.const(NAN)
            return g.where(g.op("IsNaN", [condition]), null, chosen)
        if name == "is_null":
            return g.as_double(g.is_null(values[0], kinds[0]))
        return self.date_part(name, values[0])

    def log1p(self, x: str) -> str:
        """log(1 + x) accurate for small x: u = 1 + x; x where u == 1, else log(u) * x / (u - 1)."""
        g = self.g
        u = g.op("Add", [g.const(1.0), x])
        scaled = g.op("Div", [g.op("Mul", [g.op("Log", [u]), x]), g.op("Sub", [u, g.const(1.0)])])
        exact = g.where(g.op("Equal", [u, g.const(1.0)]), x, scaled)
        return g.finite(g.null_if(g.op("LessOrEqual", [x, g.const(-1.0)]), exact))

    def date_part(self, name: str, t: str) -> str:
        """Parts of floor(t) seconds since the epoch, UTC; exact float64 integer arithmetic."""
        g = self.g
        seconds = g.op("Floor", [t])
        days = g.floor_div(seconds, SECONDS_PER_DAY)
        if name == "hour":
            return g.floor_div(g.floor_mod(seconds, SECONDS_PER_DAY), 3_600.0)
        if name == "day_of_week":  # 1970-01-01 was a Thursday (3 with Monday = 0)
            return g.floor_mod(g.op("Add", [days, g.const(3.0)]), 7.0)
        # month: the civil-from-days algorithm (proleptic Gregorian), in whole numbers
        z = g.op("Add", [days, g.const(719_468.0)])
        era = g.floor_div(z, 146_097.0)
        doe = g.op("Sub", [z, g.op("Mul", [era, g.const(146_097.0)])])
        yoe_days = g.op(
            "Sub",
            [
                g.op("Add", [g.op("Sub", [doe, g.floor_div(doe, 1_460.0)]), g.floor_div(doe, 36_524.0)]),
                g.floor_div(doe, 146_096.0),
            ],
        )
        yoe = g.floor_div(yoe_days, 365.0)
        year_start = g.op(
            "Sub",
            [g.op("Add", [g.op("Mul", [yoe, g.const(365.0)]), g.floor_div(yoe, 4.0)]), g.floor_div(yoe, 100.0)],
        )
        doy = g.op("Sub", [doe, year_start])
        mp = g.floor_div(g.op("Add", [g.op("Mul", [doy, g.const(5.0)]), g.const(2.0)]), 153.0)
        return g.where(
            g.op("Less", [mp, g.const(10.0)]), g.op("Add", [mp, g.const(3.0)]), g.op("Sub", [mp, g.const(9.0)])
        )

    def lower(self, s: str) -> str:
        """ASCII case folding with locale "C" (exists on every machine). StringNormalizer takes a
        1-D tensor and refuses an empty one, so one "" leads the column and is sliced off after."""
        g = self.g
        flat = g.op("Reshape", [s, g.const([-1], "int64", [1])])
        padded = g.op("Concat", [g.const([""], "string", [1]), flat], axis=0)
        folded = g.op("StringNormalizer", [padded], case_change_action="LOWER", is_case_sensitive=1, locale="C")
        tail = g.op("Slice", [folded, g.const([1], "int64", [1]), g.const([2**62], "int64", [1])])
        return g.op("Reshape", [tail, g.const([-1, 1], "int64", [2])])


def _value_info(name: str, kind: str) -> onnx.ValueInfoProto:
    elem = {"double": TensorProto.DOUBLE, "float": TensorProto.FLOAT, "string": TensorProto.STRING}[kind]
    return helper.make_tensor_value_info(name, elem, [None, 1])


def compile_transformation(checked: CheckedFeatures, outputs: Sequence[str], *, opset: int = OPSET) -> Transformation:
    """One ONNX graph computing `outputs` (derived feature names, or input field names to pass
    through for a pipeline that reads them directly) from the raw fields they read."""
    if opset < MIN_OPSET:
        raise InvalidInput(f"the transformation graph needs ONNX opset >= {MIN_OPSET}, got {opset}")
    derived = checked.by_name()
    fields = {i.name: i for i in checked.inputs}
    unknown = [name for name in outputs if name not in derived and name not in fields]
    if unknown:
        raise InvalidInput(f"features {unknown} are neither derived features nor input fields")
    if len(set(outputs)) != len(outputs):
        raise InvalidInput("output features must be unique")
    compiler = _Compiler(checked)
    g = compiler.g
    inputs = checked.inputs_read(list(outputs))
    graph_inputs = []
    for field_ in inputs:
        element = feed_kind(field_.type)
        graph_inputs.append(_value_info(field_.name, element))
        compiler.values[field_.name] = field_.name if element == "string" else g.finite(field_.name)
    wanted = {name for name in outputs if name in derived}
    needed = {i.name for i in checked.inputs_read(list(wanted))} | _derived_closure(checked, wanted)
    for feature in checked.features:  # dependency order
        if feature.feature.name in needed:
            compiler.values[feature.feature.name] = compiler.emit(feature.tree)
    graph_outputs = []
    names: dict[str, str] = {}
    types: dict[str, ValueType] = {}
    for name in outputs:
        value = compiler.values[name]
        kind: ValueType = derived[name].feature.type if name in derived else fields[name].type
        out = name if name in derived else PASSTHROUGH_PREFIX + name
        if kind == "string":
            g.nodes.append(helper.make_node("Identity", [value], [out], name=f"expr/out/{name}"))
            graph_outputs.append(_value_info(out, "string"))
        else:
            # beyond float32's range is null too, like any non-finite value
            single = g.op("Cast", [value], to=TensorProto.FLOAT)
            nan32 = g.const(NAN, "float")
            g.nodes.append(
                helper.make_node("Where", [g.op("IsInf", [single]), nan32, single], [out], name=f"expr/out/{name}")
            )
            graph_outputs.append(_value_info(out, "float"))
        names[name] = out
        types[name] = kind
    graph = helper.make_graph(g.nodes, "stepwise_transformation", graph_inputs, graph_outputs, g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=IR_VERSION)
    model.producer_name = "stepwise.expressions"
    onnx.checker.check_model(model)
    return Transformation(model=model, inputs=inputs, outputs=names, output_types=types)


def _derived_closure(checked: CheckedFeatures, names: set[str]) -> set[str]:
    by_name = checked.by_name()
    out: set[str] = set()
    stack = list(names)
    while stack:
        name = stack.pop()
        if name in out or name not in by_name:
            continue
        out.add(name)
        stack.extend(by_name[name].reads)
    return out


# -- training: the same graph over a table ------------------------------------------------------
def table_feeds(table: pa.Table, inputs: Sequence[InputField]) -> dict[str, np.ndarray]:
    """The graph's feeds from a training table's columns (the representation documented above)."""
    feeds: dict[str, np.ndarray] = {}
    for field_ in inputs:
        if field_.name not in table.column_names:
            raise InvalidInput(f"input field {field_.name!r} is not a column of the table")
        column = table.column(field_.name)
        try:
            feeds[field_.name] = _column_feed(column, field_.type).reshape(-1, 1)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise InvalidInput(
                f"column {field_.name!r} ({column.type}) cannot be read as {field_.type}: {exc}"
            ) from exc
    return feeds


def _column_feed(column: pa.ChunkedArray, kind: ValueType) -> np.ndarray:
    if kind == "string":
        if pa.types.is_dictionary(column.type):
            column = column.cast(pa.string())
        strings = pc.fill_null(column.cast(pa.string()), "")
        return np.asarray(strings.to_numpy(zero_copy_only=False), dtype=object)
    if kind == "timestamp":
        if pa.types.is_date(column.type):
            column = column.cast(pa.timestamp("s"))
        if not pa.types.is_timestamp(column.type):
            raise pa.ArrowInvalid("not a timestamp or date column")
        per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[column.type.unit]
        valid = np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        ticks = np.asarray(pc.fill_null(column.cast(pa.int64()), 0).to_numpy(zero_copy_only=False), dtype=np.int64)
        # whole seconds + the fraction, as expressions_runtime.timestamp_seconds computes a request's
        whole = np.floor_divide(ticks, per_second)
        seconds = whole.astype(np.float64) + (ticks - whole * per_second).astype(np.float64) / per_second
        return np.where(valid, seconds, np.nan)
    if pa.types.is_boolean(column.type) or kind == "bool":
        column = column.cast(pa.uint8())
    return np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def derive_columns(transformation: Transformation, table: pa.Table) -> dict[str, np.ndarray]:
    """Every output of the graph over the table's rows, in chunks: feature -> [N] array (float32,
    NaN for null; or object strings, "" for null). What serving computes for the same rows."""
    runner = TransformRunner(transformation.to_bytes())
    parts: dict[str, list[np.ndarray]] = {name: [] for name in transformation.outputs}
    for start in range(0, max(table.num_rows, 1), _CHUNK_ROWS):
        chunk = table.slice(start, _CHUNK_ROWS)
        results = runner.run(table_feeds(chunk, transformation.inputs))
        for name, out in transformation.outputs.items():
            parts[name].append(results[out].reshape(-1))
    return {name: np.concatenate(values) for name, values in parts.items()}


# -- serving: the same nodes in front of the fitted pipeline ------------------------------------
def merge_in_front(transformation: Transformation, pipeline: onnx.ModelProto) -> onnx.ModelProto:
    """One model: the transformation graph feeding every pipeline input it produces. The merged
    model takes the raw fields (and any pipeline input the transformation does not produce) and
    answers with the pipeline's outputs, unchanged."""
    pipeline_inputs = [i.name for i in pipeline.graph.input]
    io_map = [(transformation.outputs[name], name) for name in pipeline_inputs if name in transformation.outputs]
    if not io_map:
        raise InvalidInput("the pipeline reads none of the transformation's outputs")
    default = [o.version for o in pipeline.opset_import if o.domain in ("", "ai.onnx")]
    opset = default[0] if default else OPSET
    if opset < MIN_OPSET:
        raise InvalidInput(f"export the pipeline with target_opset >= {MIN_OPSET} to merge it (it has {opset})")
    front = onnx.ModelProto()
    front.CopyFrom(transformation.model)
    del front.opset_import[:]
    front.opset_import.extend([helper.make_opsetid("", opset)])
    front.ir_version = pipeline.ir_version
    ours = {i.name for i in front.graph.input} | {n for node in front.graph.node for n in node.output}
    theirs = {n for node in pipeline.graph.node for n in node.output} | {o.name for o in pipeline.graph.output}
    clash = sorted(ours & theirs)
    if clash:
        raise InvalidInput(f"names used by both the transformation and the pipeline: {clash[:10]}")
    merged = onnx.compose.merge_models(front, pipeline, io_map=io_map)
    onnx.checker.check_model(merged)
    return merged
