"""A test fake for Athena's query execution only (moto accepts StartQueryExecution but runs no SQL).

FakeAthena stands in for the boto3 Athena client: StartQueryExecution runs the submitted statement
in DuckDB over the S3 objects (from moto) of the tables registered in the (moto) Glue database the
query names, exactly as they are registered (LOCATION, columns); an `UNLOAD (<select>) TO '<s3
prefix>' WITH (format = 'PARQUET')` writes its result as Parquet parts under that prefix where
Athena would, in several parts listed out of row order (Athena's UNLOAD promises no order either).
GetQueryExecution reports the outcome; `outcome` can be set to FAILED, CANCELLED or RUNNING (never
finishing) to exercise the caller's error handling. Glue, S3 and every line of our code stay real.
"""

from __future__ import annotations

import io
import re
import tempfile
from pathlib import Path
from typing import Any

import boto3
import duckdb
import pyarrow.parquet as pq

_UNLOAD = re.compile(r"^UNLOAD \((?P<select>.*)\)\s*TO '(?P<to>s3://[^']+)' WITH \(format = 'PARQUET'\)$", re.S)
PARTS = 3


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


class FakeAthena:
    def __init__(self) -> None:
        self.outcome = "SUCCEEDED"
        self.reason = ""
        self.queries: list[dict[str, Any]] = []
        self.stopped: list[str] = []

    def start_query_execution(self, **params: Any) -> dict[str, Any]:
        query_id = f"q{len(self.queries) + 1}"
        self.queries.append({"id": query_id, **params})
        if self.outcome == "SUCCEEDED":
            self._run(params["QueryString"], params["QueryExecutionContext"]["Database"])
        return {"QueryExecutionId": query_id}

    def get_query_execution(self, QueryExecutionId: str) -> dict[str, Any]:
        state = "CANCELLED" if QueryExecutionId in self.stopped else self.outcome
        status: dict[str, Any] = {"State": state}
        if self.reason:
            status["StateChangeReason"] = self.reason
        return {"QueryExecution": {"QueryExecutionId": QueryExecutionId, "Status": status}}

    def stop_query_execution(self, QueryExecutionId: str) -> dict[str, Any]:
        self.stopped.append(QueryExecutionId)
        return {}

    def _run(self, statement: str, database: str) -> None:
        found = _UNLOAD.match(statement)
        assert found, f"the fake runs only UNLOAD ... TO ... WITH (format = 'PARQUET'): {statement[:200]}"
        s3, glue = boto3.client("s3"), boto3.client("glue")
        with tempfile.TemporaryDirectory() as tmp, duckdb.connect() as db:
            db.execute(f'CREATE SCHEMA "{database}"')
            for table in glue.get_tables(DatabaseName=database)["TableList"]:
                bucket, prefix = _split(table["StorageDescriptor"]["Location"])
                listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
                keys = [o["Key"] for o in listed if not o["Key"].rsplit("/", 1)[1].startswith(("_", "."))]
                files = []
                for i, key in enumerate(keys):
                    path = Path(tmp) / f"{table['Name']}-{i}.parquet"
                    path.write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
                    files.append(str(path))
                columns = ", ".join(f'"{c["Name"]}"' for c in table["StorageDescriptor"]["Columns"])
                db.execute(
                    f'CREATE VIEW "{database}"."{table["Name"]}" AS SELECT {columns} FROM read_parquet({files!r})'
                )
            result = db.sql(found["select"]).to_arrow_table()
        bucket, prefix = _split(found["to"])
        assert not s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount"), "UNLOAD's TO must be empty"
        size = -(-result.num_rows // PARTS) or 1
        for part in range(PARTS):  # the last rows in the first-listed part
            sink = io.BytesIO()
            pq.write_table(result.slice((PARTS - 1 - part) * size, size), sink)
            s3.put_object(Bucket=bucket, Key=f"{prefix}{part:05d}_part", Body=sink.getvalue())
