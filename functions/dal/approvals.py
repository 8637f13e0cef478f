"""Approval requests in the metadata table, the task-token callbacks and the SNS notice.

Layout: see functions/models/approvals.py. The task token is an attribute of its own, read
only by `get` for the callback; it stays on a decided request until the workflow has been called
back (`clear_token`), so a decision whose callback failed can be delivered by a retry.
ApprovalRequest (what the API returns) never contains it.

Every AWS failure leaves as a typed error (functions/dal/clients.py `store_error`): Throttled
(429), StoreUnavailable (503), Conflict (409); never the AWS message, which names resources.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.dal import pages
from functions.dal.clients import client, error_code, store_error
from functions.dal.releases import attr
from functions.models.approvals import (
    APPROVAL_SK,
    DECIDED_INDEX_PK,
    ID_PATTERN,
    PENDING_INDEX_PK,
    ApprovalRequest,
    ApprovalStatus,
    approval_pk,
)
from functions.models.audit import iso
from functions.models.errors import Gone
from functions.observability import logger

_GONE_CODES = ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken")


@dataclass(frozen=True)
class StoredApproval:
    request: ApprovalRequest
    task_token: str  # server-side only


def _data(request: ApprovalRequest) -> dict[str, Any]:
    return attr(request.model_dump_json())


def _index_sk(request: ApprovalRequest) -> str:
    return f"{iso(request.requested_at)}#{request.id}"


def put_item(table: str, request: ApprovalRequest, task_token: str) -> dict[str, Any]:
    """TransactWriteItems `Put` of a pending request; a retried task replaces a pending one's token,
    never a decided one."""
    return {
        "Put": {
            "TableName": table,
            "Item": {
                "pk": attr(approval_pk(request.id)),
                "sk": attr(APPROVAL_SK),
                "gsi1pk": attr(PENDING_INDEX_PK),
                "gsi1sk": attr(_index_sk(request)),
                "kind": attr("approval"),
                "status": attr(request.status.value),
                "task_token": attr(task_token),
                "data": _data(request),
            },
            "ConditionExpression": "attribute_not_exists(pk) OR #status = :pending",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":pending": attr(ApprovalStatus.PENDING.value)},
        }
    }


def replace_pending(table: str, request: ApprovalRequest, task_token: str) -> None:
    """A retried approval task: the pending request again, with the attempt's new task token."""
    try:
        client("dynamodb").put_item(**put_item(table, request, task_token)["Put"])
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "approval write") from exc


def decision_item(table: str, after: ApprovalRequest) -> dict[str, Any]:
    """TransactWriteItems `Update`: PENDING -> decided (or EXPIRED); fails if decided already. The
    task token stays until `clear_token` (the callback delivered)."""
    return {
        "Update": {
            "TableName": table,
            "Key": {"pk": attr(approval_pk(after.id)), "sk": attr(APPROVAL_SK)},
            "UpdateExpression": "SET #status = :to, #data = :data, gsi1pk = :decided",
            "ConditionExpression": "attribute_exists(pk) AND #status = :pending",
            "ExpressionAttributeNames": {"#status": "status", "#data": "data"},
            "ExpressionAttributeValues": {
                ":to": attr(after.status.value),
                ":data": _data(after),
                ":decided": attr(DECIDED_INDEX_PK),
                ":pending": attr(ApprovalStatus.PENDING.value),
            },
        }
    }


def clear_token(table: str, id_: str) -> None:
    """The workflow has the decision: forget the task token (a decided request only)."""
    try:
        client("dynamodb").update_item(
            TableName=table,
            Key={"pk": attr(approval_pk(id_)), "sk": attr(APPROVAL_SK)},
            UpdateExpression="REMOVE task_token",
            ConditionExpression="attribute_exists(pk) AND #status <> :pending",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":pending": attr(ApprovalStatus.PENDING.value)},
        )
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "approval write") from exc


def _request(item: dict[str, Any]) -> ApprovalRequest:
    return ApprovalRequest.model_validate_json(item["data"]["S"])


def get(table: str, id_: str) -> StoredApproval | None:
    try:
        reply = client("dynamodb").get_item(
            TableName=table, Key={"pk": attr(approval_pk(id_)), "sk": attr(APPROVAL_SK)}, ConsistentRead=True
        )
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "approval read") from exc
    item = reply.get("Item")
    if not item:
        return None
    return StoredApproval(request=_request(item), task_token=item.get("task_token", {}).get("S", ""))


_INDEX_SK = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z#" + ID_PATTERN[1:]


def list_pending_page(
    table: str, limit: int, next_token: str | None = None
) -> tuple[list[ApprovalRequest], str | None]:
    """Up to `limit` pending requests, oldest first, after the one `next_token` names, and the next
    page's token (None when none is left). Pages continue after a position, not an offset, so a
    request decided between two reads shifts nothing. A token of another listing: InvalidInput."""
    key, values = "gsi1pk = :p", {":p": attr(PENDING_INDEX_PK)}
    if next_token is not None:
        key += " AND gsi1sk > :after"
        values[":after"] = attr(pages.decode("approvals:pending", next_token, _INDEX_SK))
    params = {
        "TableName": table,
        "IndexName": "gsi1",
        "KeyConditionExpression": key,
        "ExpressionAttributeValues": values,
    }
    items, more = pages.query_page(params, limit, "approval")
    token = pages.encode("approvals:pending", items[-1]["gsi1sk"]["S"]) if more and items else None
    return [_request(i) for i in items], token


def send_success(task_token: str, output: dict[str, Any]) -> None:
    _callback("send_task_success", taskToken=task_token, output=json.dumps(output, default=str))


def send_failure(task_token: str, error: str, cause: str) -> None:
    _callback("send_task_failure", taskToken=task_token, error=error[:256], cause=cause[:32768])


def _callback(method: str, **kwargs: str) -> None:
    try:
        getattr(client("stepfunctions"), method)(**kwargs)
    except ClientError as exc:
        code = error_code(exc)
        if code in _GONE_CODES:
            raise Gone(f"the workflow no longer waits for this decision ({code})") from exc
        raise store_error(exc, "the workflow callback") from exc
    except BotoCoreError as exc:
        raise store_error(exc, "the workflow callback") from exc


def publish(topic_arn: str, subject: str, message_structure: str) -> str:
    """Publish a per-protocol message (SNS MessageStructure `json`: "default" plus protocol keys)."""
    try:
        reply = client("sns").publish(
            TopicArn=topic_arn, Subject=subject[:100], Message=message_structure, MessageStructure="json"
        )
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, "approval notice") from exc
    return str(reply.get("MessageId", ""))


def read_parameter(name: str) -> str:
    """An SSM parameter's value ("" when it does not exist or cannot be read: what reads it here, the
    console link of a notification, is optional, and its absence never fails the caller)."""
    try:
        reply = client("ssm").get_parameter(Name=name)
    except (ClientError, BotoCoreError) as exc:
        logger.warning("parameter not read", extra={"parameter": name, "error": type(exc).__name__})
        return ""
    return str(reply.get("Parameter", {}).get("Value", ""))
