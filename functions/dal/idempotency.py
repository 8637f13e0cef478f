"""Powertools idempotency on the metadata table, for every handler AWS may deliver twice
(validation: S3 notifications; drift and the audit export: schedules and asynchronous invokes).

    pk=idempotency#<unit>  sk=<fn>#<hash of the key>   one Powertools record per delivered identity

Each unit has its own partition (`idempotency#validate`, `idempotency#drift-check`,
`idempotency#audit-export`): IAM can scope a function's record writes to its own partition with
`dynamodb:LeadingKeys`, and units never share a persistence layer (a layer keeps the first
IdempotencyConfig it is given, so two units sharing one would use each other's key paths).

Each record's expiry (epoch seconds, `IdempotencyConfig.expires_after_seconds` ahead) is written to
EXPIRY_ATTRIBUTE, the metadata table's TTL attribute, so DynamoDB deletes records once they expire.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyInconsistentStateError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from botocore.exceptions import BotoCoreError, ClientError

from functions.dal.clients import client, store_error
from functions.models.errors import Conflict, StepwiseError, StoreUnavailable

T = TypeVar("T")
PK_PREFIX = "idempotency#"
# The tables' TTL attribute (infra/constructs/tables.py); Powertools' own default is "expiration".
EXPIRY_ATTRIBUTE = "expires_at"


def idempotency_store(table: str, partition: str) -> DynamoDBPersistenceLayer:
    """A new Powertools persistence layer on the metadata table's pk/sk, in `partition`."""
    if not partition.startswith(PK_PREFIX):
        raise ValueError(f"idempotency partitions start with {PK_PREFIX!r}: {partition!r}")
    return DynamoDBPersistenceLayer(
        table_name=table,
        key_attr="pk",
        sort_key_attr="sk",
        static_pk_value=partition,
        expiry_attr=EXPIRY_ATTRIBUTE,
        boto3_client=client("dynamodb"),
    )


def run_once(
    fn: Callable[..., T],
    *,
    data: Any,
    table: str,
    partition: str,
    config: IdempotencyConfig,
    changed: str = "an event with the same identity and a different payload was already handled; "
    "give the new request its own identity",
) -> T:
    """`fn(data=data)` once per idempotency key (Powertools), the first outcome for a repeat.

    Powertools' own errors leave as typed ones: the same key with a different payload is a Conflict
    saying `changed` (IdempotencyValidationError); a delivery of the same key still running (or dead
    before its in-progress record expired) is a Conflict naming the retry (the caller, or Lambda's
    own retry of an asynchronous event, tries again later); a failed idempotency record read/write
    is the store error of its cause (Throttled, StoreUnavailable)."""
    once = idempotent_function(
        data_keyword_argument="data", config=config, persistence_store=idempotency_store(table, partition)
    )(fn)
    try:
        return once(data=data)  # type: ignore[no-any-return]
    except IdempotencyValidationError as exc:
        raise Conflict(changed) from exc
    except IdempotencyAlreadyInProgressError as exc:
        raise Conflict(
            "a delivery of the same event is in progress (or died before its lease expired); retry after it"
        ) from exc
    except (IdempotencyPersistenceLayerError, IdempotencyInconsistentStateError) as exc:
        cause = exc.__cause__
        if isinstance(cause, StepwiseError):
            raise cause from exc
        if isinstance(cause, (ClientError, BotoCoreError)):
            raise store_error(cause, "idempotency record") from exc
        raise StoreUnavailable("idempotency record failed; retry later") from exc
