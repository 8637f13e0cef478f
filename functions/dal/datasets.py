"""Datasets in the metadata table and their objects in the data bucket.

Key layout (metadata table, keys `pk`/`sk`, index `gsi1` on `gsi1pk`/`gsi1sk`):
    pk=DATASET#<name>  sk=HEAD              counters: latest_contract_version, latest_version;
                                            created_at, updated_at (gsi1pk=DATASETS, gsi1sk=<name>)
    pk=DATASET#<name>  sk=CONTRACT#<%08d>   ContractRecord as JSON in `doc` (never overwritten)
    pk=DATASET#<name>  sk=VERSION#<%08d>    DatasetVersion as JSON in `doc`; training_status,
                                            training_execution, training_reason as attributes
                                            (the one part that changes after creation)
    pk=DATASET#<name>  sk=UPLOAD#<id>       version: the dataset version an upload became, where
                                            <id> = sha256(bucket/key#version)[:32]
    pk=idempotency#validate  sk=<fn>#<hash>  Powertools records (validation; functions/dal/idempotency.py)

Numbers are assigned with one TransactWriteItems: the HEAD counter moves from n-1 to n only if it
still is n-1, the new item is put only if absent, and (for versions) the UPLOAD item is put only
if absent. A writer that lost the race reads the counter again; an upload that already has a
version gets that version back. Each write appends its audit event in the same transaction.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.dal.artifacts import get_object
from functions.dal.audit import audit_put
from functions.dal.clients import client, error_code, is_missing, query_items, store_error
from functions.dal.versioned import Cancelled, counter_update, put_new, transact, write_next
from functions.dal.workflow import start_execution
from functions.models.audit import Actor, AuditEvent, contract_target, dataset_target, iso
from functions.models.contracts import DataContract
from functions.models.datasets import ContractRecord, DatasetSummary, DatasetVersion, LifecycleStart
from functions.models.errors import Conflict, NotFound

HEAD_SK = "HEAD"
DATASETS_INDEX_PK = "DATASETS"
MAX_ATTEMPTS = 8
MAX_PAGE = 1000
COPY_OBJECT_LIMIT = 5 * 1024**3  # CopyObject's limit; bigger objects use a multipart copy


def dataset_pk(name: str) -> str:
    return f"DATASET#{name}"


def contract_sk(version: int) -> str:
    return f"CONTRACT#{version:08d}"


def version_sk(version: int) -> str:
    return f"VERSION#{version:08d}"


def upload_id(bucket: str, key: str, version: str) -> str:
    return hashlib.sha256(f"{bucket}/{key}#{version}".encode()).hexdigest()[:32]


def _key(name: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": dataset_pk(name)}, "sk": {"S": sk}}


def _get(table: str, name: str, sk: str) -> dict[str, Any] | None:
    try:
        return client("dynamodb").get_item(TableName=table, Key=_key(name, sk), ConsistentRead=True).get("Item")  # type: ignore[no-any-return]
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "dataset read") from exc


def _head(table: str, name: str) -> dict[str, Any]:
    return _get(table, name, HEAD_SK) or {}


def _counter(head: dict[str, Any], attr: str) -> int:
    return int(head[attr]["N"]) if attr in head else 0


def _head_update(table: str, name: str, attr: str, previous: int, now: datetime) -> dict[str, Any]:
    return counter_update(
        table,
        _key(name, HEAD_SK),
        attr,
        previous,
        also_set="updated_at = :now, created_at = if_not_exists(created_at, :now), "
        "gsi1pk = :ix, gsi1sk = :name, dataset = :name",
        values={":now": {"S": iso(now)}, ":ix": {"S": DATASETS_INDEX_PK}, ":name": {"S": name}},
    )


def _put(table: str, name: str, sk: str, attrs: dict[str, Any]) -> dict[str, Any]:
    return put_new(table, {**_key(name, sk), **attrs})


# -- contracts -------------------------------------------------------------------------------------


def put_contract(table: str, name: str, contract: DataContract, actor: Actor, now: datetime) -> ContractRecord:
    """Store `contract` as the next contract version of dataset `name`; older versions stay."""
    contract = contract.model_copy(update={"dataset": name})

    def build(number: int) -> tuple[list[dict[str, Any]], ContractRecord]:
        record = ContractRecord(
            dataset=name, version=number, contract=contract, created_at=now, created_by=actor.identity
        )
        event = AuditEvent.of(actor, "contract.put", contract_target(name), version=number, after={"version": number})
        items = [
            _head_update(table, name, "latest_contract_version", number - 1, now),
            _put(table, name, contract_sk(number), {"kind": {"S": "contract"}, "doc": {"S": record.model_dump_json()}}),
            audit_put(table, event),
        ]
        return items, record

    return write_next(
        lambda: _counter(_head(table, name), "latest_contract_version"),
        build,
        what="contract write",
        busy=f"dataset {name}: too many concurrent contract writers, try again",
    )


def get_contract(table: str, name: str, version: int | None = None) -> ContractRecord:
    """One contract version (the latest when `version` is None); NotFound when absent."""
    number = version if version is not None else _counter(_head(table, name), "latest_contract_version")
    if number < 1:
        raise NotFound(f"dataset {name!r} has no contract")
    item = _get(table, name, contract_sk(number))
    if not item:
        raise NotFound(f"dataset {name!r} has no contract version {number}")
    return ContractRecord.model_validate_json(item["doc"]["S"])


def list_contracts(table: str, name: str) -> list[ContractRecord]:
    return [ContractRecord.model_validate_json(i["doc"]["S"]) for i in _query_prefix(table, name, "CONTRACT#")]


# -- dataset versions ------------------------------------------------------------------------------


def next_version(table: str, name: str) -> int:
    """The number the next version of `name` would get (a read; `put_version` checks it)."""
    return _counter(_head(table, name), "latest_version") + 1


def put_version(table: str, record: DatasetVersion, upload: str, actor: Actor) -> DatasetVersion:
    """Write `record` with its number; Conflict if another writer took the number first.
    An upload that already became a version returns that version instead (no second one)."""
    event = AuditEvent.of(
        actor,
        "dataset.version.create",
        dataset_target(record.dataset),
        version=record.version,
        after={"key": record.key, "sha256": record.sha256, "rows": record.rows},
    )
    items = [
        _head_update(table, record.dataset, "latest_version", record.version - 1, record.created_at),
        _put(
            table,
            record.dataset,
            version_sk(record.version),
            {
                "kind": {"S": "dataset_version"},
                "doc": {"S": record.model_dump_json()},
                "training_status": {"S": record.training_status},
            },
        ),
        _put(
            table, record.dataset, f"UPLOAD#{upload}", {"kind": {"S": "upload"}, "version": {"N": str(record.version)}}
        ),
        audit_put(table, event),
    ]
    try:
        transact(items, "dataset version write")
    except Cancelled as exc:
        reasons = exc.reasons
        if len(reasons) > 2 and reasons[2] == "ConditionalCheckFailed":
            existing = version_of_upload(table, record.dataset, upload)
            if existing is not None:
                return get_version(table, record.dataset, existing)
        raise Conflict(f"dataset {record.dataset}: version {record.version} was taken") from exc
    return record


def create_version(table: str, draft: DatasetVersion, upload: str, actor: Actor) -> DatasetVersion:
    """Give `draft` the next free number (retrying lost races) and store it."""
    for _ in range(MAX_ATTEMPTS):
        existing = version_of_upload(table, draft.dataset, upload)
        if existing is not None:
            return get_version(table, draft.dataset, existing)
        record = draft.model_copy(update={"version": next_version(table, draft.dataset)})
        try:
            return put_version(table, record, upload, actor)
        except Conflict:
            continue
    raise Conflict(f"dataset {draft.dataset}: too many concurrent uploads, try again")


def version_of_upload(table: str, name: str, upload: str) -> int | None:
    item = _get(table, name, f"UPLOAD#{upload}")
    return int(item["version"]["N"]) if item else None


def _version_from_item(item: dict[str, Any]) -> DatasetVersion:
    record = DatasetVersion.model_validate_json(item["doc"]["S"])
    updates: dict[str, Any] = {
        attr: item[attr]["S"]
        for attr in ("training_status", "training_execution", "training_reason")
        if attr in item and "S" in item[attr]
    }
    return record.model_copy(update=updates) if updates else record


def get_version(table: str, name: str, version: int) -> DatasetVersion:
    item = _get(table, name, version_sk(version))
    if not item:
        raise NotFound(f"dataset {name!r} has no version {version}")
    return _version_from_item(item)


def list_versions(table: str, name: str, limit: int = MAX_PAGE) -> list[DatasetVersion]:
    return [_version_from_item(i) for i in _query_prefix(table, name, "VERSION#", limit)]


def set_training_status(table: str, name: str, version: int, start: LifecycleStart) -> None:
    try:
        client("dynamodb").update_item(
            TableName=table,
            Key=_key(name, version_sk(version)),
            UpdateExpression="SET training_status = :s, training_execution = :e, training_reason = :r",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={
                ":s": {"S": start.status},
                ":e": {"S": start.execution_arn},
                ":r": {"S": start.reason},
            },
        )
    except (ClientError, BotoCoreError) as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            raise NotFound(f"dataset {name!r} has no version {version}") from exc
        raise store_error(exc, "dataset version update") from exc


def get_summary(table: str, name: str) -> DatasetSummary:
    head = _head(table, name)
    if not head:
        raise NotFound(f"no dataset named {name!r}")
    return _summary(head)


def list_datasets(table: str, limit: int = MAX_PAGE) -> list[DatasetSummary]:
    params: dict[str, Any] = {
        "TableName": table,
        "IndexName": "gsi1",
        "KeyConditionExpression": "gsi1pk = :p",
        "ExpressionAttributeValues": {":p": {"S": DATASETS_INDEX_PK}},
    }
    return [_summary(i) for i in _paged(params, limit)]


def _summary(item: dict[str, Any]) -> DatasetSummary:
    return DatasetSummary(
        dataset=item["dataset"]["S"],
        latest_contract_version=_counter(item, "latest_contract_version"),
        latest_version=_counter(item, "latest_version"),
        created_at=datetime.fromisoformat(item["created_at"]["S"].replace("Z", "+00:00")),
        updated_at=datetime.fromisoformat(item["updated_at"]["S"].replace("Z", "+00:00")),
    )


def _query_prefix(table: str, name: str, prefix: str, limit: int = MAX_PAGE) -> list[dict[str, Any]]:
    params: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "pk = :p AND begins_with(sk, :s)",
        "ExpressionAttributeValues": {":p": {"S": dataset_pk(name)}, ":s": {"S": prefix}},
        "ConsistentRead": True,
    }
    return _paged(params, limit)


def _paged(params: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    return query_items(params, limit, "dataset")


# -- idempotency -----------------------------------------------------------------------------------


# -- objects in the data bucket --------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    version_id: str
    etag: str


def head_object(bucket: str, key: str, version_id: str = "") -> ObjectInfo:
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id:
        kwargs["VersionId"] = version_id
    try:
        reply = client("s3").head_object(**kwargs)
    except (ClientError, BotoCoreError) as exc:
        if is_missing(exc, version_id=version_id):
            raise NotFound(f"s3://{bucket}/{key} (version {version_id or 'latest'}) does not exist") from exc
        raise store_error(exc, "object read (head)") from exc
    return ObjectInfo(
        size=int(reply.get("ContentLength", 0)),
        version_id=str(reply.get("VersionId") or ""),
        etag=str(reply.get("ETag", "")).strip('"'),
    )


def read_object(bucket: str, key: str, version_id: str = "") -> bytes:
    return get_object(bucket, key, version_id if version_id != "null" else "")


@dataclass
class S3RangeSource:
    """A ByteSource over ranged GETs of one object version (for files read in chunks)."""

    bucket: str
    key: str
    version_id: str
    size: int

    def read(self, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key, "Range": f"bytes={start}-{end - 1}"}
        if self.version_id and self.version_id != "null":
            kwargs["VersionId"] = self.version_id
        try:
            return client("s3").get_object(**kwargs)["Body"].read()  # type: ignore[no-any-return]
        except (ClientError, BotoCoreError) as exc:
            raise store_error(exc, "ranged object read") from exc


def sha256_of(source: S3RangeSource, part: int = 64 * 1024**2) -> str:
    """sha256 of an object streamed in parts (constant memory)."""
    digest = hashlib.sha256()
    for start in range(0, source.size, part):
        digest.update(source.read(start, min(source.size, start + part)))
    return digest.hexdigest()


def copy_object(bucket: str, key: str, version_id: str, dest_key: str, size: int) -> str:
    """Copy one object version within the bucket; the destination's version id ("" if unversioned)."""
    src: dict[str, str] = {"Bucket": bucket, "Key": key}
    if version_id and version_id != "null":
        src["VersionId"] = version_id
    s3 = client("s3")
    try:
        if size <= COPY_OBJECT_LIMIT:
            reply = s3.copy_object(Bucket=bucket, Key=dest_key, CopySource=src)
            return str(reply.get("VersionId") or "")
        s3.copy(CopySource=src, Bucket=bucket, Key=dest_key)  # managed multipart copy
        return head_object(bucket, dest_key).version_id
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "object copy") from exc


def delete_object(bucket: str, key: str, version_id: str = "") -> None:
    """Delete one object version (only that one: a newer upload of the same key stays)."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id and version_id != "null":
        kwargs["VersionId"] = version_id
    try:
        client("s3").delete_object(**kwargs)
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "object delete") from exc


def start_chunked_validation(state_machine_arn: str, name: str, payload: dict[str, Any]) -> str:
    """Start the chunked-validation state machine once per upload (a repeated start is a no-op)."""
    arn, _ = start_execution(state_machine_arn, name, payload)
    return arn


def put_bytes(bucket: str, key: str, body: bytes) -> None:
    try:
        client("s3").put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/octet-stream")
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "object write") from exc


def put_json(bucket: str, key: str, body: str) -> str:
    """Write a JSON document; its version id ("" if unversioned)."""
    try:
        reply = client("s3").put_object(Bucket=bucket, Key=key, Body=body.encode(), ContentType="application/json")
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "object write") from exc
    return str(reply.get("VersionId") or "")
