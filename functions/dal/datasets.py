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
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.dal import pages
from functions.dal.audit import audit_put
from functions.dal.clients import client, error_code, query_items, store_error
from functions.dal.versioned import Cancelled, counter_update, put_new, transact, write_next
from functions.dal.workflow import start_execution
from functions.models.audit import Actor, AuditEvent, contract_target, dataset_target, iso
from functions.models.contracts import DataContract
from functions.models.datasets import ContractRecord, DatasetSummary, DatasetVersion, LifecycleStart
from functions.models.errors import Conflict, NotFound
from functions.models.registry import NAME_PATTERN

HEAD_SK = "HEAD"
DATASETS_INDEX_PK = "DATASETS"
MAX_ATTEMPTS = 8
MAX_PAGE = 1000


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
    if "layout_seconds" in item and "N" in item["layout_seconds"]:
        updates["layout_seconds"] = float(item["layout_seconds"]["N"])
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


def set_layout_seconds(table: str, name: str, version: int, seconds: float) -> None:
    """Record on a version the one-time cost of the offline layouts built when it was validated."""
    try:
        client("dynamodb").update_item(
            TableName=table,
            Key=_key(name, version_sk(version)),
            UpdateExpression="SET layout_seconds = :s",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":s": {"N": repr(round(seconds, 6))}},
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


def list_datasets_page(
    table: str, limit: int, next_token: str | None = None
) -> tuple[list[DatasetSummary], str | None]:
    """Up to `limit` datasets by name, after the one `next_token` names, and the next page's token
    (None when none is left). A token that is not one of this listing: InvalidInput."""
    params: dict[str, Any] = {
        "TableName": table,
        "IndexName": "gsi1",
        "KeyConditionExpression": "gsi1pk = :p",
        "ExpressionAttributeValues": {":p": {"S": DATASETS_INDEX_PK}},
    }
    if next_token is not None:
        after = pages.decode("datasets", next_token, NAME_PATTERN)
        params["ExclusiveStartKey"] = {
            **_key(after, HEAD_SK),
            "gsi1pk": {"S": DATASETS_INDEX_PK},
            "gsi1sk": {"S": after},
        }
    items = _paged(params, limit + 1)
    found = [_summary(i) for i in items[:limit]]
    more = len(items) > limit
    return found, pages.encode("datasets", found[-1].dataset) if more and found else None


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


def start_chunked_validation(state_machine_arn: str, name: str, payload: dict[str, Any]) -> str:
    """Start the chunked-validation state machine once per upload (a repeated start is a no-op)."""
    arn, _ = start_execution(state_machine_arn, name, payload)
    return arn
