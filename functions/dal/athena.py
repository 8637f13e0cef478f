"""The offline store's distributed engine: Glue tables over Parquet prefixes, Athena queries in the
stack's workgroup, and the Parquet objects a query writes.

A query is waited for with a bounded poll (GetQueryExecution); one that fails, is cancelled or
outlives the wait (it is then stopped) is an OfflineQueryFailed naming which and the engine's reason.
"""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.dal.clients import client, error_code, store_error
from functions.models.errors import OfflineQueryFailed

_PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
_PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
_PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"


def register_parquet_table(database: str, name: str, location: str, columns: list[dict[str, str]]) -> None:
    """Create (or replace the definition of) the external Parquet table `database`.`name` over the
    objects under `location` (an s3:// prefix ending with `/`)."""
    table: dict[str, Any] = {
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"classification": "parquet", "EXTERNAL": "TRUE"},
        "StorageDescriptor": {
            "Columns": columns,
            "Location": location,
            "InputFormat": _PARQUET_INPUT,
            "OutputFormat": _PARQUET_OUTPUT,
            "SerdeInfo": {"SerializationLibrary": _PARQUET_SERDE, "Parameters": {"serialization.format": "1"}},
        },
    }
    glue = client("glue")
    try:
        try:
            glue.create_table(DatabaseName=database, TableInput=table)
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) != "AlreadyExistsException":
                raise
            glue.update_table(DatabaseName=database, TableInput=table)
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "offline table registration") from exc


def run_query(sql: str, *, workgroup: str, database: str, max_wait_seconds: float, poll_seconds: float) -> str:
    """Run `sql` in `workgroup` and wait for it; its execution id once it succeeded."""
    athena = client("athena")
    try:
        started = athena.start_query_execution(
            QueryString=sql, WorkGroup=workgroup, QueryExecutionContext={"Database": database}
        )
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "offline join query start") from exc
    query_id = str(started["QueryExecutionId"])
    deadline = time.monotonic() + max_wait_seconds
    while True:
        try:
            status = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"]
        except (ClientError, BotoCoreError) as exc:
            raise store_error(exc, "offline join query status") from exc
        state = status.get("State")
        if state == "SUCCEEDED":
            return query_id
        if state in ("FAILED", "CANCELLED"):
            reason = status.get("StateChangeReason") or status.get("AthenaError", {}).get("ErrorMessage") or "no reason"
            verb = "failed" if state == "FAILED" else "was cancelled"
            raise OfflineQueryFailed(f"the offline join query {query_id} {verb}: {reason}")
        if time.monotonic() >= deadline:
            try:
                athena.stop_query_execution(QueryExecutionId=query_id)
            except (ClientError, BotoCoreError) as exc:
                raise store_error(exc, "offline join query stop") from exc
            raise OfflineQueryFailed(
                f"the offline join query {query_id} did not finish within {max_wait_seconds:g} s (stopped)"
            )
        time.sleep(poll_seconds)


def list_keys(bucket: str, prefix: str) -> list[str]:
    """The keys under `prefix`, sorted."""
    keys: list[str] = []
    try:
        for page in client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "offline join result listing") from exc
    return sorted(keys)
