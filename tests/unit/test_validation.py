"""Validation rules one at a time, the readers, and chunked validation giving the same report."""

from __future__ import annotations

import io
import itertools
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from functions.logic.validation import check_table, duplicate_rows, finish, partial_from_doc, partial_to_doc
from functions.logic.validation_files import BytesSource, Limits, plan_chunks, validate_source
from functions.models.contracts import DataContract
from functions.models.datasets import ValidationReport

CONTRACT = DataContract.model_validate(
    {
        "columns": [
            {"name": "id", "type": "int", "nullable": False},
            {"name": "score", "type": "float", "min": 0, "max": 1, "max_null_fraction": 0.5},
            {"name": "kind", "type": "category", "categories": ["a", "b"]},
            {"name": "code", "type": "string", "pattern": "[A-Z]{2}[0-9]*"},
            {"name": "flag", "type": "bool"},
            {"name": "at", "type": "timestamp"},
            {"name": "label", "type": "int", "nullable": False, "min": 0, "max": 1},
        ],
        "key": "id",
        "target": "label",
        "min_rows": 2,
        "max_rows": 10,
    }
)


def rows() -> dict[str, list[Any]]:
    return {
        "id": [1, 2, 3, 4],
        "score": [0.0, 0.5, None, 1.0],
        "kind": ["a", "b", None, "a"],
        "code": ["AB", "CD12", None, "EF3"],
        "flag": [True, False, None, True],
        "at": ["2026-01-01T00:00:00", "2026-01-02T00:00:00", None, "2026-01-03T12:00:00"],
        "label": [0, 1, 1, 0],
    }


def to_parquet(cols: dict[str, list[Any]], **kwargs: Any) -> bytes:
    table = pa.table({k: pa.array(v) if k != "at" else pa.array(v).cast(pa.timestamp("us")) for k, v in cols.items()})
    buf = io.BytesIO()
    pq.write_table(table, buf, **kwargs)
    return buf.getvalue()


def to_csv(cols: dict[str, list[Any]]) -> bytes:
    names = list(cols)
    lines = [",".join(names)]
    for i in range(len(cols[names[0]])):
        lines.append(
            ",".join(
                ""
                if cols[n][i] is None
                else str(cols[n][i]).lower()
                if isinstance(cols[n][i], bool)
                else str(cols[n][i])
                for n in names
            )
        )
    return ("\n".join(lines) + "\n").encode()


def to_jsonl(cols: dict[str, list[Any]]) -> bytes:
    names = list(cols)
    n = len(cols[names[0]])
    return b"".join(json.dumps({k: cols[k][i] for k in names}).encode() + b"\n" for i in range(n))


WRITERS = {"parquet": to_parquet, "csv": to_csv, "jsonl": to_jsonl}


def check(data: bytes, fmt: str, limits: Limits = Limits()) -> ValidationReport:  # noqa: B008
    return validate_source(BytesSource(data), f"file.{fmt}", CONTRACT, dataset="d", contract_version=1, limits=limits)


def failed(report: ValidationReport) -> list[str]:
    return [r.rule for r in report.rules if not r.passed]


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_validation_good_file_passes_every_rule(fmt: str) -> None:
    report = check(WRITERS[fmt](rows()), fmt)
    assert report.verdict == "passed", report.reason
    assert report.rows == 4 and report.format == fmt and report.schema_fingerprint


def _with(**changes: list[Any]) -> dict[str, list[Any]]:
    return {**rows(), **changes}


VIOLATIONS = {
    "rows": ({k: v[:1] for k, v in rows().items()}, 1),
    "columns": ({k: v for k, v in rows().items() if k != "flag"}, 1),
    "nulls:label": (_with(label=[0, None, 1, 0]), 1),
    "nulls:score": (_with(score=[None, None, None, 1.0]), 3),
    "range:score": (_with(score=[0.0, 1.5, None, -0.1]), 2),
    "range:label": (_with(label=[0, 1, 2, 0]), 1),
    "categories:kind": (_with(kind=["a", "c", None, "a"]), 1),
    "pattern:code": (_with(code=["AB", "abc", None, "EF3"]), 1),
    "unique:id": (_with(id=[1, 2, 1, 4]), 2),
    "type:label": (_with(label=["x", "1", "0", "y"]), 2),
}


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("rule", sorted(VIOLATIONS))
def test_validation_each_rule_violated_alone_names_that_rule(rule: str, fmt: str) -> None:
    # Given a file that breaks exactly one rule; When validated
    cols, offending = VIOLATIONS[rule]
    report = check(WRITERS[fmt](cols), fmt)
    # Then only that rule fails, with its offending count and examples
    assert failed(report) == [rule]
    result = next(r for r in report.rules if r.rule == rule)
    if rule not in ("rows", "columns") and not (rule.startswith("type") and fmt == "parquet"):
        assert result.offending == offending
        if not rule.startswith("nulls:score"):
            assert len(result.examples) == offending


def test_validation_extra_column_fails_columns_unless_allowed() -> None:
    data = to_parquet({**rows(), "extra": [1, 2, 3, 4]})
    assert failed(check(data, "parquet")) == ["columns"]
    relaxed = CONTRACT.model_copy(update={"allow_extra_columns": True})
    report = validate_source(BytesSource(data), "f.parquet", relaxed, dataset="d", contract_version=1)
    assert report.passed


def test_validation_nan_counts_as_null() -> None:
    report = check(to_parquet(_with(score=[float("nan"), float("nan"), None, 0.5])), "parquet")
    assert failed(report) == ["nulls:score"]


def test_validation_examples_are_capped_at_twenty() -> None:
    n = 50
    cols = {k: (v * 13)[:n] for k, v in rows().items()}
    cols["id"] = list(range(n))
    cols["label"] = [5] * n
    big = CONTRACT.model_copy(update={"max_rows": 100})
    data = to_parquet(cols)
    report = validate_source(BytesSource(data), "f.parquet", big, dataset="d", contract_version=1)
    result = next(r for r in report.rules if r.rule == "range:label")
    assert result.offending == n and len(result.examples) == 20
    assert [e.row for e in result.examples] == list(range(20))


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("f.parquet", b"", "empty file"),
        ("f.parquet", b"PAR1 not really PAR1", "cannot read parquet"),
        ("f.csv", "id,kind\n1,é\n".encode("latin-1"), "not UTF-8"),
        ("f.jsonl", b'{"id": 1,\n', "cannot read jsonl"),
        ("f.xlsx", b"PK\x03\x04", "unsupported format"),
    ],
)
def test_validation_unreadable_file_gets_a_report_not_an_exception(name: str, data: bytes, reason: str) -> None:
    report = validate_source(BytesSource(data), name, CONTRACT, dataset="d", contract_version=1)
    assert report.verdict == "unreadable" and reason in report.reason
    assert failed(report) == ["readable"]


def test_validation_too_big_file_is_refused_before_reading() -> None:
    report = check(to_csv(rows()), "csv", Limits(max_bytes=10))
    assert report.verdict == "unreadable" and "too big" in report.reason


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_validation_chunked_report_equals_whole_report(fmt: str) -> None:
    # Given a file with violations spread over it
    n = 40
    cols = {k: (v * 10)[:n] for k, v in rows().items()}
    cols["id"] = [*range(n - 1), 5]  # a duplicate across chunks
    cols["score"][33] = 7.0
    contract = CONTRACT.model_copy(update={"max_rows": 100})
    data = to_parquet(cols, row_group_size=4) if fmt == "parquet" else WRITERS[fmt](cols)
    # When validated whole and in small chunks
    whole = validate_source(BytesSource(data), f"f.{fmt}", contract, dataset="d", contract_version=1)
    chunked = validate_source(
        BytesSource(data), f"f.{fmt}", contract, dataset="d", contract_version=1, limits=Limits(chunk_bytes=64)
    )
    # Then the reports agree rule by rule, examples included
    assert chunked.chunks > 3 and whole.chunks == 1
    assert chunked.rules == whole.rules
    assert failed(whole) == ["unique:id", "range:score"]
    assert [e.row for e in next(r for r in whole.rules if r.rule == "unique:id").examples] == [5, 39]


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_validation_unique_column_set_fails_on_rows_repeating_every_column_of_it(fmt: str) -> None:
    # Given a contract declaring (code, at) unique, and a file whose rows 1 and 38 repeat both
    # (rows sharing only one of them, or with a null in one, are fine)
    n = 40
    cols = {k: (v * 10)[:n] for k, v in rows().items()}
    cols["id"] = list(range(n))
    cols["code"] = [f"AB{i}" for i in range(n)]
    cols["at"] = [f"2026-01-01T00:00:{i % 60:02d}" for i in range(n)]
    cols["code"][38], cols["at"][38] = cols["code"][1], cols["at"][1]
    cols["code"][20] = cols["code"][2]  # same code, another time
    cols["code"][30], cols["code"][31], cols["at"][30], cols["at"][31] = None, None, cols["at"][3], cols["at"][3]
    contract = CONTRACT.model_copy(update={"max_rows": 100, "unique": [["code", "at"]]})
    data = to_parquet(cols, row_group_size=4) if fmt == "parquet" else WRITERS[fmt](cols)
    # When validated whole and in small chunks (the chunks' partials pass through their stored form)
    whole = validate_source(BytesSource(data), f"f.{fmt}", contract, dataset="d", contract_version=1)
    chunked = validate_source(
        BytesSource(data), f"f.{fmt}", contract, dataset="d", contract_version=1, limits=Limits(chunk_bytes=64)
    )
    # Then the rule names the set and its two rows, the same way both times
    assert chunked.chunks > 3 and chunked.rules == whole.rules
    assert failed(whole) == ["unique:code+at"]
    rule = next(r for r in whole.rules if r.rule == "unique:code+at")
    assert rule.offending == 2 and [e.row for e in rule.examples] == [1, 38]
    assert rule.examples[0].value is not None and rule.examples[0].value.startswith("code=AB1, at=2026-01-01 00:00:01")


def test_validation_unique_column_set_survives_the_distributed_partials() -> None:
    # Given two chunks checked separately, one sent through its stored form (JSON + Arrow IPC)
    contract = CONTRACT.model_copy(update={"max_rows": 100, "unique": [["code", "at"]]})
    table = pq.read_table(io.BytesIO(to_parquet(rows())))
    first = check_table(table.slice(0, 2), contract)
    repeated = pa.concat_tables([table.slice(0, 1), table.slice(2)])  # row 0 again, then rows 2 and 3
    second = partial_from_doc(*partial_to_doc(check_table(repeated, contract)))
    # When the partials are merged, Then the repeat across the two chunks is found
    report = finish([first, second], contract, dataset="d", contract_version=1)
    rule = next(r for r in report.rules if r.rule == "unique:code+at")
    assert not rule.passed and [e.row for e in rule.examples] == [0, 2]


def test_plan_chunks_csv_ranges_cover_every_line_once() -> None:
    data = to_csv({k: (v * 25)[:100] for k, v in rows().items()})
    source = BytesSource(data)
    chunks = plan_chunks(source, "csv", 100)
    assert chunks[0].start == data.index(b"\n") + 1 and chunks[-1].end == len(data)
    assert all(a.end == b.start for a, b in itertools.pairwise(chunks))
    assert all(data[c.start - 1 : c.start] == b"\n" for c in chunks)


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ([1, 2, 3], 0),
        ([3, 1, 2, 3], 2),
        ([10**15, 1, 10**15], 2),  # sparse range: sort path
        ([None, None, 1], 0),  # nulls are not duplicates of each other
        (["a", "b", "a", None], 2),
    ],
)
def test_duplicate_rows_counts_rows_with_repeated_keys(keys: list[Any], expected: int) -> None:
    count, _ = duplicate_rows(pa.chunked_array([pa.array(keys)]))
    assert count == expected


def test_validation_unexpected_reader_failure_still_gets_a_report() -> None:
    # Given a source whose bytes cannot be fetched consistently (a bug or a torn read)
    class Torn(BytesSource):
        def read(self, start: int, end: int) -> bytes:
            if start > 0:
                raise RuntimeError("torn read")
            return super().read(start, end)

    data = to_csv({k: (v * 30)[:100] for k, v in rows().items()})
    report = validate_source(
        Torn(data), "f.csv", CONTRACT, dataset="d", contract_version=1, limits=Limits(chunk_bytes=64)
    )
    # Then the verdict is a report that names the failure, not an exception
    assert report.verdict == "unreadable" and "RuntimeError: torn read" in report.reason


def test_validation_parquet_text_column_declared_float_fails_type_even_when_every_value_parses() -> None:
    # Given a typed file whose float column holds the numbers as text
    report = check(to_parquet(_with(score=["0.0", "0.5", None, "1.0"])), "parquet")
    # Then the type rule fails for every row, naming the file's type
    assert failed(report) == ["type:score"]
    rule = next(r for r in report.rules if r.rule == "type:score")
    assert rule.offending == 4 and "string" in (rule.message or "")
