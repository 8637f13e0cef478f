"""Batch job records in the metadata table (key layout: functions/models/batch.py), each write with
its audit event in the same TransactWriteItems call."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.dal.audit import audit_put
from functions.dal.clients import client, store_error
from functions.dal.versioned import create_audited, read_item
from functions.models.audit import AuditEvent
from functions.models.batch import BatchJob, job_pk, job_sk
from functions.models.errors import Conflict


def _key(model: str, job_id: str) -> dict[str, Any]:
    return {"pk": {"S": job_pk(model)}, "sk": {"S": job_sk(job_id)}}


def _item(job: BatchJob) -> dict[str, Any]:
    return {
        **_key(job.model, job.job_id),
        "kind": {"S": "batch-job"},
        "status": {"S": job.status.value},
        "version": {"N": str(job.version)},
        "doc": {"S": job.model_dump_json(exclude={"joined"})},
    }


def get(table: str, model: str, job_id: str) -> BatchJob | None:
    item = read_item(table, _key(model, job_id), "batch job read")
    return BatchJob.model_validate_json(item["doc"]["S"]) if item else None


def create(table: str, job: BatchJob, event: AuditEvent) -> None:
    """Store a new job with its audit event; Conflict (nothing written) when the id exists."""
    if not create_audited(table, _item(job), audit_put(table, event), "batch job write"):
        raise Conflict(f"batch job {job.job_id} exists")


def replace(table: str, job: BatchJob, event: AuditEvent | None = None) -> None:
    """Store the job's new state (and its audit event when the change is audited)."""
    put = {"Put": {"TableName": table, "Item": _item(job), "ConditionExpression": "attribute_exists(pk)"}}
    items = [put] + ([audit_put(table, event)] if event is not None else [])
    try:
        client("dynamodb").transact_write_items(TransactItems=items)
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "batch job update") from exc


def list_jobs(table: str, model: str) -> list[BatchJob]:
    """Every job of the model (every page of its partition), newest first."""
    jobs: list[BatchJob] = []
    kwargs: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "pk = :p AND begins_with(sk, :j)",
        "ExpressionAttributeValues": {":p": {"S": job_pk(model)}, ":j": {"S": "JOB#"}},
    }
    try:
        while True:
            reply = client("dynamodb").query(**kwargs)
            jobs += [BatchJob.model_validate_json(i["doc"]["S"]) for i in reply.get("Items", [])]
            if "LastEvaluatedKey" not in reply:
                break
            kwargs["ExclusiveStartKey"] = reply["LastEvaluatedKey"]
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "batch job list") from exc
    return sorted(jobs, key=lambda j: j.requested_at, reverse=True)
