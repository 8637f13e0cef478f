"""boto3 clients, created once per execution environment and only here (and in dal/)."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from functions.models.errors import StoreUnavailable

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10)


@cache
def client(service: str) -> Any:
    return boto3.client(service, config=_CONFIG)  # type: ignore[call-overload]


@cache
def resource(service: str) -> Any:
    return boto3.resource(service, config=_CONFIG)  # type: ignore[call-overload]


QUERY_PAGE = 1000


def query_items(params: dict[str, Any], limit: int, what: str) -> list[dict[str, Any]]:
    """Up to `limit` items of a DynamoDB Query, page after page. A store error is a
    StoreUnavailable naming `what` was being read (never the table or the request)."""
    items: list[dict[str, Any]] = []
    params = dict(params)
    try:
        while len(items) < limit:
            reply = client("dynamodb").query(**params, Limit=min(QUERY_PAGE, limit - len(items)))
            items.extend(reply.get("Items", []))
            if "LastEvaluatedKey" not in reply:
                break
            params["ExclusiveStartKey"] = reply["LastEvaluatedKey"]
    except ClientError as exc:
        raise StoreUnavailable(f"{what} read failed: {exc.response.get('Error', {}).get('Code', 'error')}") from exc
    return items
