"""boto3 clients, created once per execution environment and only here (and in dal/)."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from functions.models.errors import Conflict, StepwiseError, StoreUnavailable, Throttled

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10)


@cache
def client(service: str) -> Any:
    return boto3.client(service, config=_CONFIG)  # type: ignore[call-overload]


@cache
def resource(service: str) -> Any:
    return boto3.resource(service, config=_CONFIG)  # type: ignore[call-overload]


QUERY_PAGE = 1000

# error codes AWS uses for "slow down" (botocore's standard retry mode knows the same list)
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "EC2ThrottledException",
    }
)


# What S3 answers when the object (or the version asked for) is not there: a missing key, version
# or bucket by name; HEAD requests carry only the HTTP status (404, and 405 for a version that is a
# delete marker).
MISSING_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "NoSuchBucket", "NotFound", "404", "405", "MethodNotAllowed"})
# What S3 answers for a version id it cannot parse: no object has it, so it is missing too.
BAD_VERSION_CODES = frozenset({"InvalidArgument", "400"})


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError ("error" when it names none); the exception's type name
    for anything else (BotoCoreError timeouts and connection failures)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "error"))
    return type(exc).__name__


def is_missing(exc: BaseException, *, version_id: str = "") -> bool:
    """Whether an S3 failure says the object (or the version `version_id` asked for) does not exist."""
    code = error_code(exc)
    return code in MISSING_CODES or (bool(version_id) and code in BAD_VERSION_CODES)


def store_error(exc: Exception, what: str) -> StepwiseError:
    """The typed error for a failed AWS call while doing `what` ("model read", "version write").

    Throttling -> Throttled (429), a failed condition -> Conflict (409), anything else the store
    refused, failed or did not answer in time -> StoreUnavailable (503). The message names `what`
    and, except for permission refusals, the AWS error code; never a resource name, an ARN or the
    policy that refused (those go to the logs via the exception's cause)."""
    if isinstance(exc, StepwiseError):
        return exc
    if isinstance(exc, ClientError):
        code = error_code(exc)
        if code in THROTTLING_CODES:
            return Throttled(f"{what} was throttled; retry shortly")
        if code == "ConditionalCheckFailedException":
            return Conflict(f"{what} conflicts with a concurrent change; read again and retry")
        if "AccessDenied" in code or code in {"UnauthorizedOperation", "KMS.AccessDeniedException"}:
            return StoreUnavailable(f"{what} failed: the store refused the call; retry later")
        return StoreUnavailable(f"{what} failed: {code}; retry later")
    if isinstance(exc, BotoCoreError):  # timeouts, connection errors: nothing was answered
        return StoreUnavailable(f"{what} failed: the store did not answer ({type(exc).__name__}); retry later")
    raise TypeError(f"not an AWS error: {type(exc).__name__}") from exc


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
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, f"{what} read") from exc
    return items
