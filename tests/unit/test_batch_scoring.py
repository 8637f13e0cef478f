"""Batch chunk scoring (functions/logic/batch.py) on a model trained and exported by the lifecycle's
own code: predictions identical to the predict path's, deterministic parts, rejects with reasons,
every row accounted for."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from functions.logic import batch
from functions.logic import training as tr
from functions.logic.serving_runtime import OnnxModel
from functions.logic.validation_files import BytesSource
from functions.models.batch import BatchInputInvalid
from functions.models.registry import Artifact, Feature, ModelVersion, VersionStatus
from tests.unit.lifecycle_data import classification_table
from tests.unit.test_training import fit_and_export, make_spec

NOW = datetime(2026, 12, 6, tzinfo=UTC)


@cache
def _trained() -> tuple[bytes, list[Feature], list[str]]:
    spec = make_spec("HistGradientBoostingClassifier")
    prepared, fitted, onnx = fit_and_export(spec)
    return onnx, prepared.features, list(fitted.class_labels or [])


def loaded(*, b_nullable: bool = False) -> OnnxModel:
    onnx, features, labels = _trained()
    features = [f.model_copy(update={"nullable": f.name != "b" or b_nullable}) for f in features]
    version = ModelVersion(
        model="toy-model",
        version=4,
        status=VersionStatus.APPROVED,
        created_at=NOW,
        updated_at=NOW,
        task="classification",
        features=features,
        graph_inputs=tr.graph_inputs_for(features),
        target="label",
        class_labels=labels,
        artifacts={
            "onnx": Artifact(
                uri="s3://artifacts/models/toy-model/4/model.onnx",
                sha256=hashlib.sha256(onnx).hexdigest(),
                size_bytes=len(onnx),
            )
        },
    )
    return OnnxModel.load(version, onnx, max_instances=1_000)


def input_table(rows: int = 400) -> pa.Table:
    table = classification_table(rows=rows).drop_columns(["label"])
    return table.append_column("id", pa.array([f"row-{i}" for i in range(rows)]))


def parquet_bytes(table: pa.Table, row_group_size: int) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=row_group_size)
    return sink.getvalue()


def row_path(model: OnnxModel, table: pa.Table) -> tuple[list, list]:  # type: ignore[type-arg]
    """What POST /predict answers for these rows (the version's request model, then score)."""
    instances = [{k: v for k, v in row.items() if k in model.feature_names} for row in table.to_pylist()]
    request = model.request_model.model_validate({"instances": instances})
    return model.score(model.rows(request.instances))  # type: ignore[attr-defined, return-value]


def score_all(model: OnnxModel, data: bytes, name: str, chunk_bytes: int, passthrough: list[str]):  # type: ignore[no-untyped-def]
    source = BytesSource(data)
    fmt, chunks = batch.plan(source, name, chunk_bytes)
    return [batch.score_chunk(model, source, fmt, chunk, passthrough) for chunk in chunks]


def test_parquet_chunks_score_every_row_as_the_predict_path_does() -> None:
    # Given a Parquet file of 4 row groups planned as 2 chunks
    model = loaded(b_nullable=True)
    table = input_table()
    data = parquet_bytes(table, row_group_size=100)
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    sizes = [meta.row_group(i).total_byte_size for i in range(4)]
    outputs = score_all(model, data, "in.parquet", max(sizes[0] + sizes[1], sizes[2] + sizes[3]), ["id"])
    # Then every row is scored once, with the predict path's predictions and probabilities
    assert len(outputs) == 2
    parts = pa.concat_tables(pq.read_table(io.BytesIO(part)) for part, _, _ in outputs)
    assert parts.column_names == ["id", "prediction", "probabilities", "model_version"]
    assert parts.column("id").to_pylist() == table.column("id").to_pylist()
    predictions, probabilities = row_path(model, table)
    assert parts.column("prediction").to_pylist() == predictions
    assert parts.column("probabilities").to_pylist() == probabilities
    assert set(parts.column("model_version").to_pylist()) == {4}
    assert [c.rows for _, _, c in outputs] == [200, 200]
    assert all(rejects is None and c.rejected == 0 for _, rejects, c in outputs)


def test_a_chunk_scored_twice_gives_identical_bytes() -> None:
    model = loaded()
    table = input_table()
    table = table.set_column(0, "a", table.column("a").fill_null(0.5))
    table = table.set_column(1, "b", pa.array([None if i % 50 == 0 else i % 10 for i in range(400)], pa.int64()))
    data = parquet_bytes(table, row_group_size=100)
    first = score_all(model, data, "in.parquet", 1 << 20, ["id"])
    second = score_all(loaded(), data, "in.parquet", 1 << 20, ["id"])
    assert [(p, r) for p, r, _ in first] == [(p, r) for p, r, _ in second]
    assert first[0][1] is not None  # the null b rows were rejected, deterministically too


def test_rows_that_do_not_fit_the_contract_are_rejected_with_their_reason() -> None:
    # Given rows with a missing non-nullable feature, an infinite float and a fine rest
    model = loaded()
    table = input_table(300)
    a = table.column("a").to_pylist()
    b = table.column("b").to_pylist()
    a[7] = float("inf")
    b[11] = None
    b[12] = None
    table = table.set_column(0, "a", pa.array(a, pa.float64())).set_column(1, "b", pa.array(b, pa.int64()))
    ((part, rejects, counts),) = score_all(model, parquet_bytes(table, 128), "x.parquet", 1 << 20, ["id"])
    # Then they are counted per reason and listed in the rejects part; the rest is scored
    assert counts.rows == 300 and counts.scored == 297 and counts.rejected == 3
    assert counts.reasons == {"missing:b": 2, "range:a": 1}
    assert rejects is not None
    report = pq.read_table(io.BytesIO(rejects)).to_pylist()
    assert [(r["id"], r["row"]) for r in report] == [("row-7", 7), ("row-11", 11), ("row-12", 12)]
    assert "'a'" in report[0]["reason"] and "missing" in report[1]["reason"]
    scored = pq.read_table(io.BytesIO(part))
    assert "row-7" not in scored.column("id").to_pylist() and scored.num_rows == 297
    kept = table.filter(pa.array([i not in (7, 11, 12) for i in range(300)]))
    assert scored.column("prediction").to_pylist() == row_path(model, kept)[0]


def test_csv_rows_that_do_not_parse_are_rejected_and_the_others_scored() -> None:
    # Given a CSV in several chunks with a non-numeric b and a row with too few fields
    model = loaded(b_nullable=True)
    table = input_table(400)
    sink = io.BytesIO()
    pcsv.write_csv(table, sink)
    lines = sink.getvalue().decode().splitlines()
    lines[51] = lines[51].replace(lines[51].split(",")[1], "seven", 1)  # data row 50
    lines[302] = "1.5,3"  # data row 301
    data = ("\n".join(lines) + "\n").encode()
    outputs = score_all(model, data, "in.csv", 4_000, ["id"])
    assert len(outputs) > 2
    total = sum(c.rows for _, _, c in outputs)
    scored = sum(c.scored for _, _, c in outputs)
    assert total == 400 and scored == 398
    reports = [pq.read_table(io.BytesIO(r)).to_pylist() for _, r, _ in outputs if r is not None]
    rows = sorted(r["reason"] for report in reports for r in report)
    assert len(rows) == 2 and all(r for r in rows)
    assert sum(c.reasons.get("unparseable", 0) for _, _, c in outputs) == 2
    parts = pa.concat_tables(pq.read_table(io.BytesIO(p)) for p, _, _ in outputs)
    ids = parts.column("id").to_pylist()
    assert "row-50" not in ids and "row-301" not in ids and len(ids) == 398
    kept = table.filter(pa.array([i not in (50, 301) for i in range(400)]))
    assert parts.column("prediction").to_pylist() == row_path(model, kept)[0]


def test_json_lines_with_a_broken_line_reject_only_that_line() -> None:
    model = loaded(b_nullable=True)
    table = input_table(60)
    lines = [json.dumps(row) for row in table.to_pylist()]
    lines[5] = '{"a": 1.0, "b": '
    lines[9] = '{"a": "high", "b": 3, "c": "red", "id": "row-9"}'
    ((part, rejects, counts),) = score_all(model, ("\n".join(lines) + "\n").encode(), "in.jsonl", 1 << 20, ["id"])
    assert (counts.rows, counts.scored, counts.rejected) == (60, 58, 2)
    assert rejects is not None
    assert [r["row"] for r in pq.read_table(io.BytesIO(rejects)).to_pylist()] == [5, 9]
    assert pq.read_table(io.BytesIO(part)).num_rows == 58


def test_columns_the_model_needs_are_checked_before_anything_is_scored() -> None:
    model = loaded()
    with pytest.raises(BatchInputInvalid) as caught:
        batch.check_columns(["a", "c"], model.version.features, ["id", "prediction"], what="toy-model v4")
    fields = [d["field"] for d in caught.value.details]
    assert fields == ["columns.b", "passthrough.id", "passthrough.prediction", "passthrough.prediction"]


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("in.parquet", b"", "empty"),
        ("in.txt", b"hello\n", "unsupported format"),
        ("in.parquet", b"PAR1 not really parquet PAR1", "cannot read"),
    ],
)
def test_an_input_that_cannot_be_planned_is_refused(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(BatchInputInvalid, match=reason):
        batch.plan(BytesSource(data), name, 1 << 20)


def test_a_regressor_part_has_no_probabilities_column() -> None:
    spec = make_spec("HistGradientBoostingRegressor")
    prepared, _, onnx = fit_and_export(spec)
    version = ModelVersion(
        model="toy-reg",
        version=1,
        status=VersionStatus.APPROVED,
        created_at=NOW,
        updated_at=NOW,
        task="regression",
        features=prepared.features,
        graph_inputs=tr.graph_inputs_for(prepared.features),
        target="y",
        artifacts={
            "onnx": Artifact(uri="s3://a/m.onnx", sha256=hashlib.sha256(onnx).hexdigest(), size_bytes=len(onnx))
        },
    )
    model = OnnxModel.load(version, onnx, max_instances=1_000)
    table = prepared.table.select(["a", "b", "c"])
    ((part, _, _),) = score_all(model, parquet_bytes(table, 1000), "r.parquet", 1 << 20, [])
    scored = pq.read_table(io.BytesIO(part))
    assert scored.column_names == ["prediction", "model_version"]
    expected = row_path(model, table)[0]
    assert np.array_equal(np.array(scored.column("prediction").to_pylist()), np.array(expected))
