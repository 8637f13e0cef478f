"""Materialization benchmark: one chunk worker (functions/logic/materialize.py run_chunk) writing a
feature view's latest row per entity into an online table in moto, in-process on one core.

A source version of `--entities` entities with `--rows-per-entity` rows each (shuffled, Parquet row
groups of `--row-group` rows) is seeded as a validated dataset version with its contract; a view of
four features (float, int, string, bool) over it is materialized through the real steps (plan, each
chunk, finish). The online table, the metadata table and the bucket are moto's, so the rates
measure our code plus moto's in-process DynamoDB, not AWS (on AWS each UpdateItem is a network round
trip: a worker's rate is bounded by its latency, and the workflow runs chunks in parallel).

Figures: source rows/second and entities/second per chunk worker (wall and CPU), the online
table's write requests per 1,000 entities (one conditional UpdateItem of the view's entry per entity
and chunk it appears in: botocore's calls counted, retries included), and the same for a second run of the same version
(every write skipped as already there). Printed, never asserted.

    .venv/bin/python benchmarks/materialize.py [--entities 2000] [--rows-per-entity 3] [--row-group 65536]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ONLINE = "bench-online"
METADATA = "bench-metadata"
BUCKET = "bench-data"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def source_table(entities: int, rows_per_entity: int, seed: int = 7) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = entities * rows_per_entity
    entity = np.repeat(np.arange(entities, dtype=np.int64), rows_per_entity)
    step = np.tile(np.arange(rows_per_entity, dtype=np.int64), entities)
    micros = int(T0.timestamp() * 1e6) + step * 86_400_000_000 + rng.integers(0, 3_600_000_000, n)
    order = rng.permutation(n)
    return pa.table(
        {
            "customer": pa.array(entity[order]),
            "at": pa.array(micros[order], pa.timestamp("us", tz="UTC")),
            "spend": pa.array(rng.gamma(2.0, 50.0, n)[order]),
            "orders": pa.array(rng.integers(0, 20, n)[order]),
            "segment": pa.array(np.array(["a", "b", "c"])[rng.integers(0, 3, n)][order]),
            "active": pa.array(rng.random(n)[order] < 0.5),
        }
    )


def setup(table: pa.Table, row_group: int) -> None:
    import boto3

    from functions.dal import datasets as datasets_dal
    from functions.dal import feature_views as views_dal
    from functions.models.audit import Actor
    from functions.models.contracts import DataContract
    from functions.models.datasets import DatasetVersion
    from functions.models.features import FeatureView
    from infra import constants as c

    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName=ONLINE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    dynamodb.create_table(
        TableName=METADATA,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in (c.PK, c.SK, c.GSI1_PK, c.GSI1_SK)],
        KeySchema=[{"AttributeName": c.PK, "KeyType": "HASH"}, {"AttributeName": c.SK, "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": c.GSI1,
                "KeySchema": [
                    {"AttributeName": c.GSI1_PK, "KeyType": "HASH"},
                    {"AttributeName": c.GSI1_SK, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    actor = Actor(identity="bench", correlation_id="")
    types = {"customer": "int", "at": "timestamp", "spend": "float", "orders": "int", "segment": "string"}
    columns = [{"name": n, "type": t} for n, t in {**types, "active": "bool"}.items()]
    contract = DataContract.model_validate({"columns": columns, "unique": [["customer", "at"]]})
    contract_version = datasets_dal.put_contract(METADATA, "source", contract, actor, T0).version
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=row_group)
    data = buf.getvalue()
    put = s3.put_object(Bucket=BUCKET, Key="validated/source/bench.parquet", Body=data)
    draft = DatasetVersion(
        dataset="source",
        version=1,
        key="validated/source/bench.parquet",
        bucket=BUCKET,
        version_id=put.get("VersionId", ""),
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        format="parquet",
        rows=table.num_rows,
        schema_fingerprint="bench",
        contract_version=contract_version,
        report_uri=f"s3://{BUCKET}/report.json",
        created_at=T0,
    )
    datasets_dal.create_version(METADATA, draft, upload="bench", actor=actor)
    view = {
        "name": "bench",
        "entity_keys": ["customer"],
        "source": "source",
        "timestamp_column": "at",
        "ttl_seconds": 86_400 * 30,
        "features": [
            {"name": "spend", "type": "float"},
            {"name": "orders", "type": "int"},
            {"name": "segment", "type": "string"},
            {"name": "active", "type": "bool"},
        ],
    }
    views_dal.put_view(METADATA, FeatureView.model_validate(view), "bench", T0)


def one_run(entities: int) -> dict[str, Any]:
    """Plan, each chunk timed, finish; the online table's UpdateItem calls counted."""
    import boto3

    from functions.dal import clients
    from functions.logic import materialize, materialize_jobs
    from functions.models.audit import Actor
    from functions.models.materialize import MaterializeRequest
    from functions.models.settings import get_settings

    settings = get_settings()
    puts = [0]

    def count(params: dict[str, Any], **_: Any) -> None:
        if params.get("TableName") == ONLINE:
            puts[0] += 1

    clients.client.cache_clear()
    boto3.DEFAULT_SESSION = None
    session = boto3.Session()
    session.events.register("provide-client-params.dynamodb.UpdateItem", count)
    boto3.DEFAULT_SESSION = session
    clients.client.cache_clear()
    original = materialize_jobs._hand_over
    materialize_jobs._hand_over = lambda _s, record: record  # type: ignore[assignment]
    try:
        run = materialize_jobs.request_materialization(
            settings, "bench", MaterializeRequest(), Actor(identity="bench", correlation_id="")
        )
    finally:
        materialize_jobs._hand_over = original  # type: ignore[assignment]
    tasks = materialize.plan(settings, "bench", run.materialization_id)
    wall = cpu = 0.0
    rows = written = skipped = 0
    for task in tasks:
        w0, c0 = time.perf_counter(), time.process_time()
        result = materialize.run_chunk(settings, task)
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        rows += result.rows_read
        written += result.entities_written
        skipped += result.skipped_older
    done = materialize.finish(settings, "bench", run.materialization_id)
    return {
        "chunks": len(tasks),
        "rows": rows,
        "written": written,
        "skipped": skipped,
        "wall": wall,
        "cpu": cpu,
        "puts": puts[0],
        "status": done.status.value,
        "per_1000": 1000 * puts[0] / entities,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entities", type=int, default=2_000)
    parser.add_argument("--rows-per-entity", type=int, default=3)
    parser.add_argument("--row-group", type=int, default=65_536)
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "STEPWISE_ONLINE_TABLE": ONLINE,
        "STEPWISE_METADATA_TABLE": METADATA,
        "STEPWISE_DATA_BUCKET": BUCKET,
        "STEPWISE_MATERIALIZE_CHUNK_BYTES": str(64 * 1024**2),
    }.items():
        os.environ[key] = value
    from moto import mock_aws

    table = source_table(args.entities, args.rows_per_entity)
    with mock_aws():
        setup(table, args.row_group)
        first = one_run(args.entities)
        # a second run of the same version (another view version would re-plan; the same one finds the
        # done markers): the markers are cleared so every chunk runs and every write finds its row
        from functions.dal import feature_views as views_dal
        from functions.models.features import FeatureView

        view = views_dal.get_view(METADATA, "bench")
        views_dal.put_view(METADATA, FeatureView.model_validate(view.view.model_dump()), "bench", T0)
        again = one_run(args.entities)
    figures: dict[str, Any] = {
        "entities": args.entities,
        "source rows": table.num_rows,
        "chunks": first["chunks"],
        "chunk worker source rows/s (wall)": first["rows"] / first["wall"],
        "chunk worker source rows/s (CPU)": first["rows"] / first["cpu"],
        "chunk worker entities written/s (wall)": first["written"] / first["wall"],
        "online write requests per 1,000 entities": first["per_1000"],
        "entities written, skipped": f"{first['written']}, {first['skipped']}",
        "rerun: write requests per 1,000 entities": again["per_1000"],
        "rerun: entities written, skipped": f"{again['written']}, {again['skipped']}",
        "rerun chunk worker source rows/s (wall)": again["rows"] / again["wall"],
        "measured at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    for name, value in figures.items():
        print(f"{name}: {value:.3g}" if isinstance(value, float) else f"{name}: {value}")
    out = os.environ.get("STEPWISE_BENCH_JSON")
    if out:
        Path(out).write_text(json.dumps(figures))


if __name__ == "__main__":
    main()
