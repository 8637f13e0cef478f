"""Derived features: declarative expressions over request fields and looked-up features.

A derived feature is a name, an expression string and the type it declares; the expression is
parsed and type-checked when it is stored (functions/logic/expressions.py) and compiled into ONNX
nodes (functions/logic/expressions_onnx.py), never evaluated as Python. The grammar, the functions
and the null semantics are documented in functions/logic/expressions.py.

The parsed form (the AST) is a tree of the frozen models below, discriminated by `kind`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

# Types of inputs and of expression values. A derived feature's declared output is never a
# timestamp: a pipeline takes its numeric parts (hour, day_of_week, month) instead.
ValueType = Literal["float", "int", "bool", "string", "timestamp"]
OutputType = Literal["float", "int", "bool", "string"]

# A field or feature name: a contract column name, optionally `view:feature` (a looked-up feature).
FIELD_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\- ]{0,127}(:[A-Za-z_][A-Za-z0-9_.\- ]{0,127})?$"
# A derived feature's name: also what its ONNX output and the pipeline's input are called.
DERIVED_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
MAX_EXPRESSION_LENGTH = 4_000
MAX_DERIVED_FEATURES = 500
MAX_INPUT_FIELDS = 2_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class InputField(_Strict):
    """A raw request field or a looked-up feature an expression may read, with its declared type."""

    name: str = Field(pattern=FIELD_NAME_PATTERN)
    type: ValueType


class DerivedFeature(_Strict):
    """A feature computed from inputs and other derived features by one expression."""

    name: str = Field(pattern=DERIVED_NAME_PATTERN)
    expression: str = Field(min_length=1, max_length=MAX_EXPRESSION_LENGTH)
    type: OutputType
    description: str = Field(default="", max_length=1_000)


# -- the parsed form -------------------------------------------------------------------------
class NumberLit(_Strict):
    kind: Literal["number"] = "number"
    value: float | int  # an int when written without a point or exponent


class StringLit(_Strict):
    kind: Literal["string"] = "string"
    value: str = Field(min_length=1)  # the empty string is the null string, never a literal


class BoolLit(_Strict):
    kind: Literal["bool"] = "bool"
    value: bool


class FieldRef(_Strict):
    kind: Literal["field"] = "field"
    name: str


class Unary(_Strict):
    kind: Literal["unary"] = "unary"
    op: Literal["-", "not"]
    operand: Expr


BinaryOp = Literal["+", "-", "*", "/", "<", "<=", ">", ">=", "==", "!=", "and", "or"]


class Binary(_Strict):
    kind: Literal["binary"] = "binary"
    op: BinaryOp
    left: Expr
    right: Expr


class InList(_Strict):
    """`operand in [literal, ...]`: membership in a literal list."""

    kind: Literal["in"] = "in"
    operand: Expr
    values: tuple[NumberLit | StringLit | BoolLit, ...]


class Call(_Strict):
    kind: Literal["call"] = "call"
    function: str
    args: tuple[Expr, ...]


class ListLit(_Strict):
    """A list of number literals: only as an argument (bucketize's edges)."""

    kind: Literal["list"] = "list"
    values: tuple[NumberLit, ...]


Expr = Annotated[
    NumberLit | StringLit | BoolLit | FieldRef | Unary | Binary | InList | Call | ListLit,
    Field(discriminator="kind"),
]

for _model in (Unary, Binary, InList, Call):
    _model.model_rebuild()
