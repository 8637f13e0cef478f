"""Reads of the online feature store (layout: functions/models/online.py) for prediction-time
lookups: the item of every entity a prediction request names, projected to the entries of the
views the model uses, in as few BatchGetItem calls as DynamoDB allows (100 keys per call, whatever
the number of views), unprocessed keys retried with a bounded backoff.

boto3 only (the inference layer carries no pyarrow). A throttled call, or keys still unprocessed
after the last retry, is a Throttled (429); any other failure a StoreUnavailable (503): both carry
Retry-After, and no prediction is computed with values the store did not return.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.dal.clients import client, store_error
from functions.models.errors import Throttled
from functions.models.online import MAX_BATCH_GET_KEYS, view_attribute

PK = "pk"
MAX_ATTEMPTS = 5  # per chunk: the first call and up to four retries of its unprocessed keys
BACKOFF_BASE_SECONDS = 0.01  # 10, 20, 40, 80 ms (full jitter): well inside the API's 29 s
_WHAT = "online feature lookup"


def projection(views: Sequence[str]) -> tuple[str, dict[str, str]]:
    """The ProjectionExpression reading `pk` and the entries of `views`, with its attribute names
    (every name goes through a placeholder: view attributes hold `:` and may be reserved words)."""
    names = {"#pk": PK} | {f"#v{i}": view_attribute(v) for i, v in enumerate(views)}
    return ", ".join(names), names


@dataclass
class Fetched:
    """The items found, by `pk` (raw DynamoDB attribute maps; absent keys: no item), and how many
    BatchGetItem requests it took."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: int = 0


def batch_get(
    table: str,
    keys: Sequence[str],
    views: Sequence[str],
    *,
    sleep: Callable[[float], None] = time.sleep,
    dynamodb: Any = None,
) -> Fetched:
    """The items of `keys` (distinct `pk` values) from `table`, each with `pk` and its entries of
    `views` (those it holds). `dynamodb`: a client answering
    batch_get_item (default: the environment's boto3 client; the benchmark passes a stub)."""
    fetched = Fetched()
    if not keys:
        return fetched
    ddb = dynamodb if dynamodb is not None else client("dynamodb")
    expression, names = projection(list(dict.fromkeys(views)))
    for start in range(0, len(keys), MAX_BATCH_GET_KEYS):
        pending: list[dict[str, Any]] = [{PK: {"S": k}} for k in keys[start : start + MAX_BATCH_GET_KEYS]]
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                sleep(random.uniform(0, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1)))
            wanted = {"Keys": pending, "ProjectionExpression": expression, "ExpressionAttributeNames": names}
            try:
                reply = ddb.batch_get_item(RequestItems={table: wanted})
            except (ClientError, BotoCoreError) as exc:
                raise store_error(exc, _WHAT) from exc
            fetched.requests += 1
            for item in reply.get("Responses", {}).get(table, []):
                fetched.items[item[PK]["S"]] = item
            pending = reply.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
            if not pending:
                break
        else:
            raise Throttled(f"{_WHAT} was throttled: {len(pending)} key(s) still unprocessed; retry shortly")
    return fetched
