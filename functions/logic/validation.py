"""Check a table against its data contract with pyarrow.compute: vectorised, no per-row Python.

A file is validated as one or more chunks (row groups or byte ranges). Each chunk yields a
`Partial` (offending counts and example rows, local row numbers); `finish` merges the partials
of all chunks into one `ValidationReport`, so a file checked in one piece and the same file
checked in ten pieces get the same report. Uniqueness (of the key column, and of each declared
`unique` column set) is the only rule that needs every chunk at once: each partial carries those
columns and `finish` checks them together.

Cost per column on the happy path is one or two passes of Arrow kernels (comparisons, is_nan,
is_in on a dictionary); example rows are only gathered for rules that fail.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.models.contracts import ColumnSpec, DataContract
from functions.models.datasets import MAX_EXAMPLES, Example, FileFormat, RuleResult, ValidationReport


@dataclass
class RuleTally:
    offending: int = 0
    examples: list[Example] = field(default_factory=list)
    message: str = ""

    def add(self, count: int, examples: list[Example], message: str = "") -> None:
        self.offending += count
        room = MAX_EXAMPLES - len(self.examples)
        if room > 0:
            self.examples.extend(examples[:room])
        if message and not self.message:
            self.message = message


@dataclass
class Partial:
    """What one chunk contributes to the report. Row numbers in examples are chunk-local."""

    rows: int = 0
    present: list[str] = field(default_factory=list)  # columns in the file, in file order
    types: dict[str, str] = field(default_factory=dict)  # column -> Arrow type as read
    tallies: dict[str, RuleTally] = field(default_factory=dict)  # rule -> tally
    nulls: dict[str, int] = field(default_factory=dict)  # column -> null (and NaN) count
    keys: pa.ChunkedArray | None = None  # the key column, for the cross-chunk uniqueness check
    composite: dict[str, pa.Table] = field(default_factory=dict)  # unique:<a>+<b> -> its columns
    failed_types: set[str] = field(default_factory=set)

    def tally(self, rule: str) -> RuleTally:
        return self.tallies.setdefault(rule, RuleTally())


# -- types ---------------------------------------------------------------------------------


def _type_ok(declared: str, actual: pa.DataType) -> bool:
    t = pa.types
    if t.is_dictionary(actual):
        value_type = actual.value_type
        return declared in ("category", "string") and (t.is_string(value_type) or t.is_large_string(value_type))
    if declared == "int":
        return t.is_integer(actual)
    if declared == "float":
        return t.is_floating(actual) or t.is_integer(actual)
    if declared == "bool":
        return t.is_boolean(actual)
    if declared in ("string", "category"):
        return t.is_string(actual) or t.is_large_string(actual) or t.is_string_view(actual)
    if declared == "timestamp":
        return t.is_timestamp(actual) or t.is_date(actual)
    return False


def arrow_type(declared: str) -> pa.DataType:
    """The Arrow type a reader is told to produce for a declared column type (CSV, JSON Lines;
    JSON Lines reads categories as plain strings: Arrow's JSON reader has no dictionary type).
    CSV categories are dictionary-encoded while parsing, so their rules run on the dictionary."""
    return {
        "int": pa.int64(),
        "float": pa.float64(),
        "bool": pa.bool_(),
        "string": pa.string(),
        "category": pa.dictionary(pa.int32(), pa.string()),
        "timestamp": pa.timestamp("us"),
    }[declared]


def schema_fingerprint(columns: list[str], types: dict[str, str]) -> str:
    """sha256 of the file's column names and (as read) types, in file order (16 hex digits)."""
    text = "\n".join(f"{name}:{types.get(name, '?')}" for name in columns)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- helpers on boolean masks (True = offending) -------------------------------------------------


def _count(mask: pa.ChunkedArray | pa.Array) -> int:
    return int(pc.sum(mask).as_py() or 0)


def _examples(mask: pa.ChunkedArray, values: pa.ChunkedArray) -> list[Example]:
    """Row numbers and values of the first MAX_EXAMPLES True entries of mask."""
    found: list[Example] = []
    start = 0
    for chunk in mask.chunks:
        if len(found) >= MAX_EXAMPLES:
            break
        idx = pc.indices_nonzero(chunk.fill_null(False))
        if len(idx):
            idx = idx.slice(0, MAX_EXAMPLES - len(found))
            rows = pc.add(idx, start)
            picked = values.take(rows)
            found.extend(
                Example(row=r, value=None if v is None else str(v))
                for r, v in zip(rows.to_pylist(), picked.to_pylist(), strict=True)
            )
        start += len(chunk)
    return found


def _string_mask(values: pa.ChunkedArray, bad: Callable[[pa.Array], pa.Array]) -> pa.ChunkedArray | None:
    """Apply `bad(string array) -> bool array` to each chunk; dictionary chunks are decided on
    their dictionary and mapped to rows with a take. None when no row is offending."""
    out = []
    any_bad = False
    for chunk in values.chunks:
        if pa.types.is_dictionary(chunk.type):
            verdict = bad(chunk.dictionary)
            if not _count(verdict):
                out.append(pa.nulls(len(chunk), pa.bool_()))
                continue
            rows = verdict.take(chunk.indices)
        else:
            rows = pc.and_kleene(bad(chunk), pc.is_valid(chunk))  # a null is never offending here
        any_bad = any_bad or bool(_count(rows))
        out.append(rows)
    return pa.chunked_array(out, type=pa.bool_()) if any_bad else None


def _int_bound(value: float, below: bool) -> int | None:
    """An integer column violates `x < value` iff `x < ceil(value)` (`x > floor(value)` above).
    None when no int64 can violate the bound."""
    bound = math.ceil(value) if below else math.floor(value)
    if below and bound <= -(2**63):
        return None
    if not below and bound >= 2**63 - 1:
        return None
    return max(min(bound, 2**63 - 1), -(2**63))


# -- one chunk ----------------------------------------------------------------------------------


def check_table(table: pa.Table, contract: DataContract, *, present: list[str] | None = None) -> Partial:
    """Evaluate every per-row rule of the contract on one chunk.

    `present` names the columns of the whole file (readers may load only declared ones).
    """
    part = Partial(rows=table.num_rows, present=list(present if present is not None else table.column_names))
    part.types = {name: str(table.schema.field(name).type) for name in table.column_names}
    for spec in contract.columns:
        if spec.name not in table.column_names:
            continue
        values = table.column(spec.name)
        if not _type_ok(spec.type, values.type):
            part.failed_types.add(spec.name)
            message = f"declared {spec.type}, file has {values.type}"
            mask = _unconvertible(values, spec.type)
            bad = _count(mask) if mask is not None else 0
            if mask is None:
                part.tally(f"type:{spec.name}").add(table.num_rows, [], message)
            elif bad:
                part.tally(f"type:{spec.name}").add(bad, _examples(mask, values), message)
            else:
                # every value is text that would convert, but the column itself has the wrong type
                part.tally(f"type:{spec.name}").add(
                    table.num_rows, _examples(pc.is_valid(values), values), f"{message} (every row)"
                )
            continue
        _check_column(part, spec, values)
        if contract.key == spec.name:
            part.keys = values
    for columns in contract.unique:
        if all(n in table.column_names and n not in part.failed_types for n in columns):
            part.composite[unique_rule(columns)] = table.select(columns)
    return part


def unique_rule(columns: list[str]) -> str:
    return "unique:" + "+".join(columns)


_TEXT_FORMS = {
    "int": r"^\s*[+-]?[0-9]+\s*$",
    "float": r"^\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$|^\s*[+-]?(?i:nan|inf|infinity)\s*$",
    "bool": r"^\s*(?i:true|false|1|0)\s*$",
}


def _unconvertible(values: pa.ChunkedArray, declared: str) -> pa.ChunkedArray | None:
    """For a text column declared int/float/bool: the rows whose text is not such a value."""
    if declared not in _TEXT_FORMS or not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return None
    return pc.invert(pc.match_substring_regex(values, _TEXT_FORMS[declared]))


def _check_column(part: Partial, spec: ColumnSpec, values: pa.ChunkedArray) -> None:
    nulls = values.null_count
    if pa.types.is_floating(values.type):
        nulls += _count(pc.is_nan(values))
    part.nulls[spec.name] = nulls
    if not spec.nullable and nulls:
        null_mask = pc.is_null(values, nan_is_null=True)
        part.tally(f"nulls:{spec.name}").add(nulls, _examples(null_mask, values))

    if spec.min is not None or spec.max is not None:
        _check_range(part, spec, values)
    if spec.categories is not None:
        allowed = pa.array(spec.categories, pa.string())
        mask = _string_mask(values, lambda arr: pc.invert(pc.is_in(arr.cast(pa.string()), value_set=allowed)))
        if mask is not None:
            part.tally(f"categories:{spec.name}").add(_count(mask), _examples(mask, values))
    if spec.pattern is not None:
        regex = f"^(?:{spec.pattern})$"
        try:
            mask = _string_mask(values, lambda arr: pc.invert(pc.match_substring_regex(arr.cast(pa.string()), regex)))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            part.tally(f"pattern:{spec.name}").add(len(values), [], f"pattern cannot be evaluated: {exc}")
            return
        if mask is not None:
            part.tally(f"pattern:{spec.name}").add(_count(mask), _examples(mask, values))


def _check_range(part: Partial, spec: ColumnSpec, values: pa.ChunkedArray) -> None:
    is_int = pa.types.is_integer(values.type)
    masks = []
    for bound, below in ((spec.min, True), (spec.max, False)):
        if bound is None:
            continue
        if is_int:
            ib = _int_bound(bound, below)
            if ib is None:
                continue
            try:
                scalar = pa.scalar(ib, values.type)
            except (pa.ArrowInvalid, OverflowError):
                # the bound is outside the column type's range: either every row or none
                info = np.iinfo(values.type.to_pandas_dtype())
                if (below and ib > info.max) or (not below and ib < info.min):
                    masks.append(pc.is_valid(values))
                continue
        else:
            scalar = pa.scalar(bound, pa.float64())
        masks.append(pc.less(values, scalar) if below else pc.greater(values, scalar))
    counts = [_count(m) for m in masks]
    if any(counts):
        mask = masks[0] if len(masks) == 1 else pc.or_kleene(masks[0], masks[1])
        part.tally(f"range:{spec.name}").add(sum(counts), _examples(mask, values))


# -- uniqueness over all chunks --------------------------------------------------------------------


def duplicate_rows(keys: pa.ChunkedArray) -> tuple[int, pa.ChunkedArray | None]:
    """Rows whose (non-null) key value appears more than once, and the mask of those rows.

    Integer keys: a strictly increasing column passes in one comparison pass; a dense range is
    counted with np.bincount; anything else is sorted. Other keys: Arrow's hash-based unique.
    """
    valid = keys.drop_null() if keys.null_count else keys
    n = len(valid)
    if n < 2:
        return 0, None
    if pa.types.is_timestamp(valid.type) or pa.types.is_date(valid.type):
        valid = valid.cast(pa.int64()) if pa.types.is_timestamp(valid.type) else valid.cast(pa.int32()).cast(pa.int64())
    if pa.types.is_integer(valid.type):
        arr = valid.combine_chunks() if valid.num_chunks != 1 else valid.chunk(0)
        v = arr.to_numpy(zero_copy_only=False)
        if bool(np.all(v[1:] > v[:-1])):
            return 0, None
        lo, hi = int(v.min()), int(v.max())
        if hi - lo <= 4 * n + 1024:
            counts = np.bincount(v - lo, minlength=hi - lo + 1)
            if int(counts.max()) <= 1:
                return 0, None
            dup_values = pa.array(np.flatnonzero(counts > 1) + lo)
        else:
            s = np.sort(v)
            eq = s[1:] == s[:-1]
            if not bool(eq.any()):
                return 0, None
            dup_values = pa.array(np.unique(s[1:][eq]))
    else:
        if len(pc.unique(valid)) == n:
            return 0, None
        counts = pc.value_counts(valid)
        dup_values = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    probe = keys
    if pa.types.is_timestamp(keys.type):
        probe = keys.cast(pa.int64())
    elif pa.types.is_date(keys.type):
        probe = keys.cast(pa.int32()).cast(pa.int64())
    elif pa.types.is_dictionary(keys.type):
        probe = keys.cast(keys.type.value_type)
        dup_values = dup_values.cast(keys.type.value_type) if pa.types.is_dictionary(dup_values.type) else dup_values
    mask = pc.is_in(probe, value_set=dup_values.cast(probe.type))
    return _count(mask), mask


# -- the report -----------------------------------------------------------------------------------


def finish(
    partials: list[Partial],
    contract: DataContract,
    *,
    dataset: str,
    contract_version: int,
    source: str = "",
    fmt: FileFormat | None = None,
    size_bytes: int = 0,
    elapsed_ms: float = 0.0,
) -> ValidationReport:
    """Merge the chunks' partials (in file order) into the report."""
    rows = sum(p.rows for p in partials)
    present = partials[0].present if partials else []
    declared = [c.name for c in contract.columns]
    missing = [n for n in declared if n not in present]
    extra = [] if contract.allow_extra_columns else [n for n in present if n not in declared]
    results: list[RuleResult] = []

    problems = []
    if missing:
        problems.append(f"missing {missing}")
    if extra:
        problems.append(f"not in the contract {extra}")
    results.append(
        RuleResult(
            rule="columns", passed=not problems, offending=len(missing) + len(extra), message="; ".join(problems)
        )
    )
    too_few = rows < contract.min_rows
    too_many = contract.max_rows is not None and rows > contract.max_rows
    results.append(
        RuleResult(
            rule="rows",
            passed=not (too_few or too_many),
            offending=(contract.min_rows - rows) if too_few else (rows - contract.max_rows if too_many else 0),  # type: ignore[operator]
            message=f"{rows} rows; the contract wants {contract.min_rows}..{contract.max_rows or 'any'}",
        )
    )

    merged: dict[str, RuleTally] = {}
    offset = 0
    for part in partials:
        for rule, tally in part.tallies.items():
            shifted = [Example(row=e.row + offset, value=e.value) for e in tally.examples]
            merged.setdefault(rule, RuleTally()).add(tally.offending, shifted, tally.message)
        offset += part.rows
    failed_types = set().union(*(p.failed_types for p in partials)) if partials else set()

    for spec in contract.columns:
        name = spec.name
        if name in missing:
            continue
        if name in failed_types:
            results.append(_result(f"type:{name}", name, merged.get(f"type:{name}")))
            continue
        results.append(RuleResult(rule=f"type:{name}", column=name, passed=True))
        nulls = sum(p.nulls.get(name, 0) for p in partials)
        if not spec.nullable:
            results.append(_result(f"nulls:{name}", name, merged.get(f"nulls:{name}")))
        elif spec.max_null_fraction is not None:
            fraction = nulls / rows if rows else 0.0
            results.append(
                RuleResult(
                    rule=f"nulls:{name}",
                    column=name,
                    passed=fraction <= spec.max_null_fraction,
                    offending=nulls if fraction > spec.max_null_fraction else 0,
                    message=f"null fraction {fraction:.4f}; at most {spec.max_null_fraction}",
                )
            )
        if spec.min is not None or spec.max is not None:
            results.append(_result(f"range:{name}", name, merged.get(f"range:{name}")))
        if spec.categories is not None:
            results.append(_result(f"categories:{name}", name, merged.get(f"categories:{name}")))
        if spec.pattern is not None:
            results.append(_result(f"pattern:{name}", name, merged.get(f"pattern:{name}")))
        if contract.key == name:
            results.append(_unique(name, [p.keys for p in partials]))

    for columns in contract.unique:
        rule = unique_rule(columns)
        results.append(_unique_together(rule, columns, [p.composite.get(rule) for p in partials]))

    failed = [r.rule for r in results if not r.passed]
    fingerprint = schema_fingerprint(present, partials[0].types) if partials else ""
    return ValidationReport(
        dataset=dataset,
        contract_version=contract_version,
        source=source,
        format=fmt,
        verdict="failed" if failed else "passed",
        reason=f"failed rules: {', '.join(failed)}" if failed else "",
        rows=rows,
        columns=len(present),
        size_bytes=size_bytes,
        chunks=len(partials),
        schema_fingerprint=fingerprint,
        rules=results,
        elapsed_ms=elapsed_ms,
    )


def _result(rule: str, column: str, tally: RuleTally | None) -> RuleResult:
    if tally is None or not tally.offending:
        return RuleResult(rule=rule, column=column, passed=True)
    return RuleResult(
        rule=rule,
        column=column,
        passed=False,
        offending=tally.offending,
        examples=tally.examples[:MAX_EXAMPLES],
        message=tally.message,
    )


def _unique(name: str, keys: list[pa.ChunkedArray | None]) -> RuleResult:
    parts = [k for k in keys if k is not None]
    if not parts:
        return RuleResult(rule=f"unique:{name}", column=name, passed=True)
    chunks = [c for k in parts for c in k.chunks]
    all_keys = pa.chunked_array(chunks, type=parts[0].type) if len({k.type for k in parts}) == 1 else None
    if all_keys is None:  # dictionaries differ per chunk: compare the values
        all_keys = pa.chunked_array([c.cast(parts[0].type.value_type) for c in chunks])
    count, mask = duplicate_rows(all_keys)
    if not count or mask is None:
        return RuleResult(rule=f"unique:{name}", column=name, passed=True)
    return RuleResult(
        rule=f"unique:{name}",
        column=name,
        passed=False,
        offending=count,
        examples=_examples(mask, all_keys),
        message="rows whose key value appears more than once",
    )


def _unique_together(rule: str, columns: list[str], parts: list[pa.Table | None]) -> RuleResult:
    """Rows sharing the values of all `columns` with another row (rows with a null in any of the
    columns are not compared): sort by the columns once, compare each row with the one before."""
    tables = [t for t in parts if t is not None]
    if len(tables) != len(parts) or not tables:  # a column is missing or mistyped: reported there
        return RuleResult(rule=rule, column=columns[0], passed=True)
    all_rows = pa.concat_tables([_decoded(t) for t in tables], promote_options="permissive").combine_chunks()
    rows = all_rows.num_rows
    valid = np.ones(rows, dtype=bool)
    for name in columns:
        valid &= pc.is_valid(all_rows.column(name)).to_numpy(zero_copy_only=False)
    candidates = np.flatnonzero(valid)
    if len(candidates) < 2:
        return RuleResult(rule=rule, column=columns[0], passed=True)
    work = all_rows.take(pa.array(candidates))
    order = pc.sort_indices(work, sort_keys=[(n, "ascending") for n in columns]).to_numpy()
    same = np.ones(len(order) - 1, dtype=bool)
    for name in columns:
        col = work.column(name).take(pa.array(order))
        same &= pc.equal(col[1:], col[:-1]).to_numpy(zero_copy_only=False)
    if not same.any():
        return RuleResult(rule=rule, column=columns[0], passed=True)
    dup_sorted = np.zeros(len(order), dtype=bool)
    dup_sorted[1:] |= same
    dup_sorted[:-1] |= same
    mask = np.zeros(rows, dtype=bool)
    mask[candidates[order[dup_sorted]]] = True
    shown = pc.binary_join_element_wise(
        *(pc.binary_join_element_wise(pa.scalar(f"{n}="), all_rows.column(n).cast(pa.string()), "") for n in columns),
        ", ",
    )
    return RuleResult(
        rule=rule,
        column=columns[0],
        passed=False,
        offending=int(mask.sum()),
        examples=_examples(pa.chunked_array([pa.array(mask)]), shown),
        message=f"rows whose ({', '.join(columns)}) values appear more than once",
    )


def _decoded(table: pa.Table) -> pa.Table:
    """`table` with dictionary columns as their values (chunks' dictionaries differ)."""
    plain = [pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type) for f in table.schema]
    return table.cast(pa.schema(plain))


def unreadable(
    reason: str,
    *,
    dataset: str,
    contract_version: int = 0,
    source: str = "",
    fmt: FileFormat | None = None,
    size_bytes: int = 0,
    rule: str = "readable",
) -> ValidationReport:
    """The report of a file that could not be read at all (rule "readable") or has no contract
    (rule "contract")."""
    return ValidationReport(
        dataset=dataset,
        contract_version=contract_version,
        source=source,
        format=fmt,
        verdict="unreadable" if rule == "readable" else "failed",
        reason=reason,
        size_bytes=size_bytes,
        chunks=0,
        rules=[RuleResult(rule=rule, passed=False, message=reason)],
    )


# -- partials between the steps of a distributed validation -----------------------------------------


def partial_to_doc(part: Partial) -> tuple[dict[str, object], bytes | None]:
    """A partial as a JSON document, and its key column and unique column sets as Arrow IPC bytes
    (None when the contract declares neither)."""
    doc: dict[str, object] = {
        "rows": part.rows,
        "present": part.present,
        "types": part.types,
        "nulls": part.nulls,
        "failed_types": sorted(part.failed_types),
        "tallies": {
            rule: {
                "offending": t.offending,
                "examples": [e.model_dump() for e in t.examples],
                "message": t.message,
            }
            for rule, t in part.tallies.items()
        },
    }
    keys = None
    columns: dict[str, pa.ChunkedArray] = {"key": part.keys} if part.keys is not None else {}
    for rule, composite in part.composite.items():
        columns.update({f"{rule}\t{name}": composite.column(name) for name in composite.column_names})
    if columns:
        sink = pa.BufferOutputStream()
        table = pa.table(columns)
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        keys = sink.getvalue().to_pybytes()
    return doc, keys


def partial_from_doc(doc: dict[str, Any], keys: bytes | None) -> Partial:
    part = Partial(
        rows=int(doc["rows"]),
        present=list(doc["present"]),
        types=dict(doc["types"]),
        nulls={k: int(v) for k, v in doc["nulls"].items()},
        failed_types=set(doc["failed_types"]),
    )
    for rule, t in doc["tallies"].items():
        part.tallies[rule] = RuleTally(
            offending=int(t["offending"]),
            examples=[Example.model_validate(e) for e in t["examples"]],
            message=str(t["message"]),
        )
    if keys is not None:
        table = pa.ipc.open_stream(pa.BufferReader(keys)).read_all()
        if "key" in table.column_names:
            part.keys = table.column("key")
        grouped: dict[str, dict[str, pa.ChunkedArray]] = {}
        for name in table.column_names:
            if "\t" in name:
                rule, column = name.split("\t", 1)
                grouped.setdefault(rule, {})[column] = table.column(name)
        part.composite = {rule: pa.table(cols) for rule, cols in grouped.items()}
    return part
