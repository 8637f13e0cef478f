"""The request-time transformation language: parser, printer and type checker.

Expressions are parsed by a small recursive-descent parser (never Python's `ast` or `eval`) and
type-checked when a derived feature is stored; the checked features compile into ONNX nodes
(functions/logic/expressions_onnx.py), so training and serving run one implementation.

Grammar (lowest precedence first; comparisons do not chain):
    expr     := and ("or" and)*
    and      := not ("and" not)*
    not      := "not" not | compare
    compare  := sum [("<" | "<=" | ">" | ">=" | "==" | "!=") sum | "in" "[" literal, ... "]"]
    sum      := product (("+" | "-") product)*
    product  := unary (("*" | "/") unary)*
    unary    := "-" unary | primary
    primary  := number | string | "true" | "false" | name | name "(" expr, ... ")"
              | "(" expr ")" | "[" number, ... "]"
Numbers: `12` is an int, `1.5`, `1e3` are floats. Strings: "..." or '...' with \\ \" \' \n \t
escapes. Names: `amount`, `customers:avg_spend` (a looked-up feature), or any field name in
backticks (`petal width`).

Types: float, int, bool, string, timestamp. int mixes with float (the result is float); bool,
string and timestamp never mix with numbers.
    a + b, a - b, a * b       numbers; int when both are int
    a / b                     float; null when b is 0
    safe_div(a, b, default)   float; `default` (a number literal) when b is 0
    -a, abs(a)                the operand's type
    log1p(a)                  float; null when a <= -1
    clip(a, lo, hi)           number literals lo <= hi
    min(a, b), max(a, b)      two numbers (or two timestamps)
    <, <=, >, >=              two numbers or two timestamps -> bool
    ==, !=                    two numbers, strings, bools or timestamps -> bool
    a in [v, ...]             a number in number literals, or a string in string literals -> bool
    and, or, not              bools
    if(cond, a, b)            a where cond is true, b where it is false
    coalesce(a, b, ...)       the first non-null argument; fill(a, literal) is coalesce with a literal
    is_null(a)                bool, never null
    bucketize(a, [e1, ...])   int: how many edges are <= a (0 below the first edge, n above the
                              last); edges are 1 to 1,000 strictly increasing number literals
    hour(t), day_of_week(t), month(t)
                              int parts of a timestamp in UTC: 0-23, Monday=0 .. Sunday=6, 1-12
    lower(s)                  string with ASCII A-Z folded to a-z (other characters unchanged,
                              the same on every machine: no locale)

Nulls. Every type has a null, and a null in gives a null out unless a function says otherwise:
- numbers, bools and timestamps travel as float64 with NaN as null (bools are 0/1, timestamps
  seconds since the Unix epoch, UTC); an input that is NaN or +-inf is null, and so is an
  arithmetic result that is not finite (overflow, log1p(-1));
- strings have no NaN, so the empty string IS the null string: a missing string and "" are the
  same value, string literals may not be empty, and is_null(s) tests for it;
- comparisons, `in` and == with a null operand are null (never false); `and`/`or` follow
  three-valued logic (false and null = false, true or null = true, otherwise null);
  if() with a null condition is null; coalesce/fill/is_null are the ways to remove nulls;
- date parts use the timestamp's whole second (floor), UTC.
A derived feature's value leaves the graph as float32 (numbers and bools, NaN for null, so the
pipeline's imputer fills it) or as a string ("" for null). A derived feature that another one
reads is used at float64 before that rounding.

Derived features may read other derived features; they are ordered topologically and a cycle is
refused. Every error is an InvalidInput naming the feature, the expression and the problem.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from functions.models.errors import InvalidInput
from functions.models.expressions import (
    MAX_DERIVED_FEATURES,
    MAX_INPUT_FIELDS,
    Binary,
    BoolLit,
    Call,
    DerivedFeature,
    Expr,
    FieldRef,
    InList,
    InputField,
    ListLit,
    NumberLit,
    OutputType,
    StringLit,
    Unary,
    ValueType,
)

# Deeper input is refused with a clear error, never a RecursionError: MAX_NESTING bounds the
# parser's own recursion (parentheses, calls, unary operators), MAX_DEPTH the finished tree's
# levels, which bounds the checker's and the compiler's recursion (a + b + ... chains count).
MAX_NESTING = 48
MAX_DEPTH = 200
MAX_LIST = 1_000  # bucket edges, `in` values
MAX_INT = 2**53  # int literals are exact in float64
KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false"})
FUNCTIONS = frozenset(
    {"log1p", "abs", "clip", "min", "max", "safe_div", "coalesce", "fill", "if", "is_null", "bucketize"}
    | {"hour", "day_of_week", "month", "lower"}
)
COMPARISONS = ("<=", ">=", "==", "!=", "<", ">")
_BARE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*(?::[A-Za-z_][A-Za-z0-9_.]*)?")
_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t", "r": "\r"}
NUMERIC: frozenset[str] = frozenset({"int", "float"})


class ExpressionError(Exception):
    """A problem in one expression; the caller adds which feature and expression it is."""

    def __init__(self, problem: str, position: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.position = position

    def describe(self) -> str:
        return self.problem if self.position is None else f"{self.problem} (at character {self.position + 1})"


# -- lexer ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Token:
    kind: str  # number, string, name, op, end
    text: str
    position: int
    value: object = None


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch.isdigit() or (ch == "." and i + 1 < n and text[i + 1].isdigit()):
            match = _NUMBER.match(text, i)
            assert match is not None
            word = match.group(0)
            tokens.append(Token("number", word, i, _number(word, i)))
            i = match.end()
            continue
        if ch in "\"'":
            value, end = _string(text, i)
            tokens.append(Token("string", text[i:end], i, value))
            i = end
            continue
        if ch == "`":
            end = text.find("`", i + 1)
            if end < 0:
                raise ExpressionError("unterminated `quoted name`", i)
            if end == i + 1:
                raise ExpressionError("empty `quoted name`", i)
            tokens.append(Token("name", text[i : end + 1], i, text[i + 1 : end]))
            i = end + 1
            continue
        match = _BARE_NAME.match(text, i)
        if match:
            word = match.group(0)
            tokens.append(Token("name", word, i, word))
            i = match.end()
            continue
        two = text[i : i + 2]
        if two in ("<=", ">=", "==", "!="):
            tokens.append(Token("op", two, i))
            i += 2
            continue
        if ch in "+-*/<>()[],":
            tokens.append(Token("op", ch, i))
            i += 1
            continue
        if ch == "=":
            raise ExpressionError("'=' is not an operator; compare with '=='", i)
        raise ExpressionError(f"unexpected character {ch!r}", i)
    tokens.append(Token("end", "", n))
    return tokens


def _number(word: str, position: int) -> int | float:
    if not any(c in word for c in ".eE"):
        value = int(word)
        if value > MAX_INT:
            raise ExpressionError(f"integer {word} is too large (at most 2**53)", position)
        return value
    number = float(word)
    if not math.isfinite(number):
        raise ExpressionError(f"number {word} is not finite", position)
    return number


def _string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch == "\\":
            nxt = text[i + 1 : i + 2]
            if nxt not in _ESCAPES:
                raise ExpressionError(f"unknown escape \\{nxt} in a string", i)
            out.append(_ESCAPES[nxt])
            i += 2
            continue
        out.append(ch)
        i += 1
    raise ExpressionError("unterminated string", start)


# -- parser -----------------------------------------------------------------------------------
class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def accept(self, text: str) -> bool:
        token = self.peek()
        if (token.kind == "op" and token.text == text) or (token.kind == "name" and token.text == text):
            self.i += 1
            return True
        return False

    def expect(self, text: str, what: str) -> None:
        if not self.accept(text):
            token = self.peek()
            found = "the end" if token.kind == "end" else repr(token.text)
            raise ExpressionError(f"expected {text!r} {what}, found {found}", token.position)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise ExpressionError(
                f"expression is nested too deeply (more than {MAX_NESTING} levels)", self.peek().position
            )

    def leave(self) -> None:
        self.depth -= 1

    def parse(self) -> Expr:
        expr = self.or_()
        token = self.peek()
        if token.kind != "end":
            raise ExpressionError(f"unexpected {token.text!r} after a complete expression", token.position)
        if tree_depth(expr) > MAX_DEPTH:
            raise ExpressionError(f"expression is too deep (more than {MAX_DEPTH} levels of operators)")
        return expr

    # Recursive descents (not, unary minus, parentheses, calls) count their depth with enter/leave;
    # binary operators build chains in loops, whose depth `parse` measures on the finished tree.
    def or_(self) -> Expr:
        left = self.and_()
        while self.accept("or"):
            left = Binary(op="or", left=left, right=self.and_())
        return left

    def and_(self) -> Expr:
        left = self.not_()
        while self.accept("and"):
            left = Binary(op="and", left=left, right=self.not_())
        return left

    def not_(self) -> Expr:
        if self.accept("not"):
            self.enter()
            node = Unary(op="not", operand=self.not_())
            self.leave()
            return node
        return self.compare()

    def compare(self) -> Expr:
        left = self.sum_()
        token = self.peek()
        if token.kind == "op" and token.text in COMPARISONS:
            self.take()
            node: Expr = Binary(op=token.text, left=left, right=self.sum_())  # type: ignore[arg-type]
        elif self.accept("in"):
            start = self.peek().position
            values = self.literal_list()
            if not values:
                raise ExpressionError("`in` needs at least one value", start)
            node = InList(operand=left, values=tuple(values))
        else:
            return left
        after = self.peek()
        if (after.kind == "op" and after.text in COMPARISONS) or (after.kind == "name" and after.text == "in"):
            raise ExpressionError("comparisons do not chain; combine them with 'and'", after.position)
        return node

    def literal_list(self) -> list[NumberLit | StringLit | BoolLit]:
        self.expect("[", "to open the list")
        values: list[NumberLit | StringLit | BoolLit] = []
        if not self.accept("]"):
            while True:
                token = self.peek()
                item = self.unary()
                if not isinstance(item, NumberLit | StringLit | BoolLit):
                    raise ExpressionError("list items must be literals (numbers, strings, true/false)", token.position)
                values.append(item)
                if len(values) > MAX_LIST:
                    raise ExpressionError(f"a list has at most {MAX_LIST} values", token.position)
                if self.accept("]"):
                    break
                self.expect(",", "between list items")
        return values

    def sum_(self) -> Expr:
        left = self.product()
        while True:
            token = self.peek()
            if token.kind == "op" and token.text in "+-":
                self.take()
                left = Binary(op=token.text, left=left, right=self.product())  # type: ignore[arg-type]
            else:
                return left

    def product(self) -> Expr:
        left = self.unary()
        while True:
            token = self.peek()
            if token.kind == "op" and token.text in "*/":
                self.take()
                left = Binary(op=token.text, left=left, right=self.unary())  # type: ignore[arg-type]
            else:
                return left

    def unary(self) -> Expr:
        if self.accept("-"):
            self.enter()
            operand = self.unary()
            self.leave()
            if isinstance(operand, NumberLit):  # a negative literal is one literal
                return NumberLit(value=-operand.value)
            return Unary(op="-", operand=operand)
        return self.primary()

    def primary(self) -> Expr:
        token = self.take()
        if token.kind == "number":
            return NumberLit(value=token.value)  # type: ignore[arg-type]
        if token.kind == "string":
            if token.value == "":
                raise ExpressionError(
                    "the empty string is the null string, not a literal; test it with is_null(...)", token.position
                )
            return StringLit(value=token.value)  # type: ignore[arg-type]
        if token.kind == "op" and token.text == "(":
            self.enter()
            inner = self.or_()
            self.expect(")", "to close '('")
            self.leave()
            return inner
        if token.kind == "op" and token.text == "[":
            self.i -= 1
            items = self.literal_list()
            numbers = [v for v in items if isinstance(v, NumberLit)]
            if len(numbers) != len(items):
                raise ExpressionError("a list argument holds number literals only", token.position)
            return ListLit(values=tuple(numbers))
        if token.kind == "name":
            name = str(token.value)
            bare = token.text[0] != "`"
            if bare and name in ("true", "false"):
                return BoolLit(value=name == "true")
            if bare and name in KEYWORDS:
                raise ExpressionError(f"unexpected keyword {name!r}", token.position)
            if bare and self.peek().kind == "op" and self.peek().text == "(":
                self.take()
                self.enter()
                args: list[Expr] = []
                if not self.accept(")"):
                    while True:
                        args.append(self.or_())
                        if self.accept(")"):
                            break
                        self.expect(",", "between arguments")
                self.leave()
                return Call(function=name, args=tuple(args))
            return FieldRef(name=name)
        found = "the end of the expression" if token.kind == "end" else repr(token.text)
        raise ExpressionError(f"expected a value, found {found}", token.position)


def parse(text: str) -> Expr:
    """The expression's tree; raises ExpressionError (syntax only: names and types are not checked)."""
    return _Parser(text).parse()


def tree_depth(expr: Expr) -> int:
    """Levels of the tree, measured without recursion."""
    deepest = 0
    stack: list[tuple[Expr, int]] = [(expr, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in _children(node))
    return deepest


def _children(node: Expr) -> list[Expr]:
    if isinstance(node, Unary | InList):
        return [node.operand]
    if isinstance(node, Binary):
        return [node.left, node.right]
    if isinstance(node, Call):
        return list(node.args)
    return []


# -- printer ----------------------------------------------------------------------------------
_PRECEDENCE = {"or": 1, "and": 2, "not": 3, "<": 4, "<=": 4, ">": 4, ">=": 4, "==": 4, "!=": 4, "in": 4}
_PRECEDENCE |= {"+": 5, "-": 5, "*": 6, "/": 6}
_ATOM = 8


def _precedence(expr: Expr) -> int:
    if isinstance(expr, Binary):
        return _PRECEDENCE[expr.op]
    if isinstance(expr, InList):
        return 4
    if isinstance(expr, Unary):
        return 3 if expr.op == "not" else 7
    if isinstance(expr, NumberLit) and expr.value < 0:
        return 7
    return _ATOM


def _wrap(expr: Expr, parenthesize: bool) -> str:
    text = unparse(expr)
    return f"({text})" if parenthesize else text


def format_name(name: str) -> str:
    match = _BARE_NAME.fullmatch(name)
    if match and name not in KEYWORDS:
        return name
    return f"`{name}`"


def format_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return '"' + escaped.replace("\r", "\\r") + '"'


def unparse(expr: Expr) -> str:
    """Canonical text of a tree: parse(unparse(t)) == t for every tree parse returns."""
    if isinstance(expr, NumberLit):
        return repr(expr.value)
    if isinstance(expr, StringLit):
        return format_string(expr.value)
    if isinstance(expr, BoolLit):
        return "true" if expr.value else "false"
    if isinstance(expr, FieldRef):
        return format_name(expr.name)
    if isinstance(expr, ListLit):
        return "[" + ", ".join(unparse(v) for v in expr.values) + "]"
    if isinstance(expr, Call):
        return f"{expr.function}(" + ", ".join(unparse(a) for a in expr.args) + ")"
    if isinstance(expr, Unary):
        if expr.op == "not":
            return "not " + _wrap(expr.operand, _precedence(expr.operand) < 3)
        inner = _wrap(expr.operand, _precedence(expr.operand) < _ATOM)
        return "-" + inner
    if isinstance(expr, InList):
        values = "[" + ", ".join(unparse(v) for v in expr.values) + "]"
        return f"{_wrap(expr.operand, _precedence(expr.operand) <= 4)} in {values}"
    prec = _PRECEDENCE[expr.op]
    # comparisons do not chain: both sides of one need parentheses at their own level
    left = _wrap(expr.left, _precedence(expr.left) < prec or (prec == 4 and _precedence(expr.left) == 4))
    right = _wrap(expr.right, _precedence(expr.right) <= prec)
    return f"{left} {expr.op} {right}"


# -- type checker -----------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckedFeature:
    feature: DerivedFeature
    tree: Expr
    type: ValueType  # what the expression computes (int where the feature declares float is allowed)
    reads: tuple[str, ...]  # the fields and derived features it reads directly, in order of appearance


@dataclass(frozen=True)
class CheckedFeatures:
    """Derived features, parsed, type-checked and in dependency order (each after what it reads)."""

    inputs: tuple[InputField, ...]
    features: tuple[CheckedFeature, ...]

    def by_name(self) -> dict[str, CheckedFeature]:
        return {f.feature.name: f for f in self.features}

    def types(self) -> dict[str, ValueType]:
        out: dict[str, ValueType] = {i.name: i.type for i in self.inputs}
        out |= {f.feature.name: f.feature.type for f in self.features}
        return out

    def inputs_read(self, names: Sequence[str]) -> list[InputField]:
        """The input fields the named derived features (and what they read) need, in declared order."""
        by_name = self.by_name()
        needed: set[str] = set()
        stack = list(names)
        while stack:
            name = stack.pop()
            if name in needed:
                continue
            needed.add(name)
            if name in by_name:
                stack.extend(by_name[name].reads)
        return [i for i in self.inputs if i.name in needed]


def _describe(kinds: Sequence[str]) -> str:
    return ", ".join(kinds)


def _unify(types: Sequence[ValueType], what: str) -> ValueType:
    distinct = set(types)
    if len(distinct) == 1:
        return types[0]
    if distinct <= NUMERIC:
        return "float"
    raise ExpressionError(f"{what} needs arguments of one type, got {_describe(types)}")


def _literal_number(arg: Expr, function: str, which: str) -> float | int:
    if not isinstance(arg, NumberLit):
        raise ExpressionError(f"{function}(): {which} must be a number literal")
    return arg.value


def _require(kind: ValueType, allowed: frozenset[str], what: str) -> None:
    if kind not in allowed:
        raise ExpressionError(f"{what} must be {' or '.join(sorted(allowed))}, got {kind}")


_ARITY: dict[str, tuple[int, int | None]] = {
    "log1p": (1, 1), "abs": (1, 1), "clip": (3, 3), "min": (2, 2), "max": (2, 2), "safe_div": (3, 3),
    "coalesce": (2, None), "fill": (2, 2), "if": (3, 3), "is_null": (1, 1), "bucketize": (2, 2),
    "hour": (1, 1), "day_of_week": (1, 1), "month": (1, 1), "lower": (1, 1),
}  # fmt: skip


def infer(expr: Expr, env: dict[str, ValueType]) -> ValueType:
    """The type of `expr` where `env` gives the type of every name it may read."""
    if isinstance(expr, NumberLit):
        return "int" if isinstance(expr.value, int) else "float"
    if isinstance(expr, StringLit):
        return "string"
    if isinstance(expr, BoolLit):
        return "bool"
    if isinstance(expr, FieldRef):
        if expr.name not in env:
            known = ", ".join(sorted(env)[:20]) or "none"
            raise ExpressionError(f"unknown field {expr.name!r} (known: {known})")
        return env[expr.name]
    if isinstance(expr, ListLit):
        raise ExpressionError("a [list] is only an argument of bucketize(), or after `in`")
    if isinstance(expr, Unary):
        kind = infer(expr.operand, env)
        if expr.op == "not":
            _require(kind, frozenset({"bool"}), "the operand of 'not'")
            return "bool"
        _require(kind, NUMERIC, "the operand of unary '-'")
        return kind
    if isinstance(expr, Binary):
        return _infer_binary(expr, env)
    if isinstance(expr, InList):
        kind = infer(expr.operand, env)
        if kind in NUMERIC:
            if not all(isinstance(v, NumberLit) for v in expr.values):
                raise ExpressionError("`in`: a number is tested against number literals only")
        elif kind == "string":
            if not all(isinstance(v, StringLit) for v in expr.values):
                raise ExpressionError("`in`: a string is tested against string literals only")
        else:
            raise ExpressionError(f"`in` tests a number or a string, got {kind}")
        return "bool"
    return _infer_call(expr, env)


def _infer_binary(expr: Binary, env: dict[str, ValueType]) -> ValueType:
    left, right = infer(expr.left, env), infer(expr.right, env)
    op = expr.op
    if op in ("and", "or"):
        _require(left, frozenset({"bool"}), f"the left operand of {op!r}")
        _require(right, frozenset({"bool"}), f"the right operand of {op!r}")
        return "bool"
    if op in ("+", "-", "*", "/"):
        if left not in NUMERIC or right not in NUMERIC:
            raise ExpressionError(f"{op!r} needs two numbers, got {left} {op} {right}")
        return "int" if op != "/" and left == right == "int" else "float"
    if op in ("==", "!="):
        if not (left == right or {left, right} <= NUMERIC):
            raise ExpressionError(f"{op!r} compares values of one type, got {left} {op} {right}")
        return "bool"
    both_numbers = left in NUMERIC and right in NUMERIC
    if not (both_numbers or left == right == "timestamp"):
        raise ExpressionError(f"{op!r} orders two numbers or two timestamps, got {left} {op} {right}")
    return "bool"


def _infer_call(expr: Call, env: dict[str, ValueType]) -> ValueType:
    name, args = expr.function, expr.args
    if name not in FUNCTIONS:
        raise ExpressionError(f"unknown function {name!r} (known: {', '.join(sorted(FUNCTIONS))})")
    low, high = _ARITY[name]
    if len(args) < low or (high is not None and len(args) > high):
        wanted = f"{low}" if low == high else f"at least {low}"
        raise ExpressionError(f"{name}() takes {wanted} argument{'s' if low != 1 else ''}, got {len(args)}")
    if name == "bucketize":
        _require(infer(args[0], env), NUMERIC, "bucketize()'s value")
        edges = args[1]
        if not isinstance(edges, ListLit) or not edges.values:
            raise ExpressionError("bucketize(): edges must be a non-empty [list] of number literals")
        values = [v.value for v in edges.values]
        if any(b <= a for a, b in itertools.pairwise(values)):
            raise ExpressionError(f"bucketize(): edges must be strictly increasing, got {values}")
        return "int"
    kinds = [infer(a, env) for a in args]
    if name == "log1p":
        _require(kinds[0], NUMERIC, "log1p()'s argument")
        return "float"
    if name == "abs":
        _require(kinds[0], NUMERIC, "abs()'s argument")
        return kinds[0]
    if name == "clip":
        _require(kinds[0], NUMERIC, "clip()'s value")
        lo, hi = _literal_number(args[1], name, "the lower bound"), _literal_number(args[2], name, "the upper bound")
        if lo > hi:
            raise ExpressionError(f"clip(): the lower bound {lo} is above the upper bound {hi}")
        return "int" if kinds == ["int", "int", "int"] else "float"
    if name in ("min", "max"):
        if kinds == ["timestamp", "timestamp"]:
            return "timestamp"
        if not set(kinds) <= NUMERIC:
            raise ExpressionError(f"{name}() takes two numbers or two timestamps, got {_describe(kinds)}")
        return "int" if kinds == ["int", "int"] else "float"
    if name == "safe_div":
        if not set(kinds[:2]) <= NUMERIC:
            raise ExpressionError(f"safe_div() divides two numbers, got {_describe(kinds[:2])}")
        _literal_number(args[2], name, "the default (for a zero divisor)")
        return "float"
    if name == "coalesce":
        return _unify(kinds, "coalesce()")
    if name == "fill":
        if not isinstance(args[1], NumberLit | StringLit | BoolLit):
            raise ExpressionError("fill(): the fill value must be a literal")
        return _unify(kinds, "fill()")
    if name == "if":
        _require(kinds[0], frozenset({"bool"}), "if()'s condition")
        return _unify(kinds[1:], "if()")
    if name == "is_null":
        return "bool"
    if name in ("hour", "day_of_week", "month"):
        _require(kinds[0], frozenset({"timestamp"}), f"{name}()'s argument")
        return "int"
    _require(kinds[0], frozenset({"string"}), "lower()'s argument")
    return "string"


def field_refs(expr: Expr) -> list[str]:
    """Names the expression reads, in order of first appearance."""
    seen: dict[str, None] = {}
    stack: list[Expr] = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, FieldRef):
            seen.setdefault(node.name, None)
        elif isinstance(node, Unary):
            stack.append(node.operand)
        elif isinstance(node, Binary):
            stack.extend((node.right, node.left))
        elif isinstance(node, InList):
            stack.append(node.operand)
        elif isinstance(node, Call):
            stack.extend(reversed(node.args))
    return list(seen)


def _accepts(declared: OutputType, computed: ValueType) -> bool:
    return declared == computed or (declared == "float" and computed == "int")


def check(inputs: Sequence[InputField], derived: Sequence[DerivedFeature]) -> CheckedFeatures:
    """Parse and type-check derived features over declared inputs; raise InvalidInput naming the
    feature, its expression and the problem. Returns them in dependency order."""
    if len(inputs) > MAX_INPUT_FIELDS:
        raise InvalidInput(f"at most {MAX_INPUT_FIELDS} input fields, got {len(inputs)}")
    if len(derived) > MAX_DERIVED_FEATURES:
        raise InvalidInput(f"at most {MAX_DERIVED_FEATURES} derived features, got {len(derived)}")
    input_types: dict[str, ValueType] = {}
    for field in inputs:
        if field.name in input_types:
            raise InvalidInput(f"input field {field.name!r} is declared twice")
        input_types[field.name] = field.type
    by_name: dict[str, DerivedFeature] = {}
    for feature in derived:
        if feature.name in by_name:
            raise InvalidInput(f"derived feature {feature.name!r} is defined twice")
        if feature.name in input_types:
            raise InvalidInput(f"derived feature {feature.name!r} has the name of an input field")
        by_name[feature.name] = feature

    def fail(feature: DerivedFeature, problem: str) -> InvalidInput:
        return InvalidInput(f"derived feature {feature.name!r}: expression {feature.expression!r}: {problem}")

    trees: dict[str, Expr] = {}
    reads: dict[str, list[str]] = {}
    for feature in derived:
        try:
            trees[feature.name] = parse(feature.expression)
        except ExpressionError as exc:
            raise fail(feature, exc.describe()) from None
        reads[feature.name] = field_refs(trees[feature.name])
        if not reads[feature.name]:
            raise fail(feature, "the expression is a constant: a derived feature must read at least one field")

    order = _topological(derived, reads)
    env: dict[str, ValueType] = dict(input_types) | {f.name: f.type for f in derived}
    checked: list[CheckedFeature] = []
    for name in order:
        feature = by_name[name]
        try:
            kind = infer(trees[name], env)
        except ExpressionError as exc:
            raise fail(feature, exc.describe()) from None
        if kind == "timestamp" and feature.type != "timestamp":
            raise fail(feature, "computes a timestamp; derive hour(), day_of_week() or month() from it instead")
        if not _accepts(feature.type, kind):
            raise fail(feature, f"declares type {feature.type} but the expression computes {kind}")
        checked.append(CheckedFeature(feature=feature, tree=trees[name], type=kind, reads=tuple(reads[name])))
    return CheckedFeatures(inputs=tuple(inputs), features=tuple(checked))


def _topological(derived: Sequence[DerivedFeature], reads: dict[str, list[str]]) -> list[str]:
    """Derived feature names, each after the derived features it reads; a cycle is an InvalidInput."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    order: list[str] = []
    for root in (f.name for f in derived):
        if state.get(root) == 2:
            continue
        path = [root]
        state[root] = 1
        iterators = [iter(reads[root])]
        while iterators:
            child = next(iterators[-1], None)
            if child is None:
                done = path.pop()
                iterators.pop()
                state[done] = 2
                order.append(done)
                continue
            if child not in reads:  # an input field (or unknown: the type check names it)
                continue
            if state.get(child) == 1:
                cycle = [*path[path.index(child) :], child]
                raise InvalidInput(f"cyclic reference between derived features: {' -> '.join(cycle)}")
            if state.get(child) is None:
                state[child] = 1
                path.append(child)
                iterators.append(iter(reads[child]))
    return order
