"""Audit events: append-only records of every state-changing action.

Key layout (metadata table, keys `pk`/`sk`, index `gsi1` on `gsi1pk`/`gsi1sk`):
    pk=AUDIT#<target>  sk=<iso time>#<event id>   gsi1pk=AUDIT  gsi1sk=<iso time>#<event id>

A target names what changed, as `<kind>/<name>`: `model/churn-model`, `dataset/churn`,
`contract/churn`. Events about one version of a model use the model's target and set `version`,
so `stepwise audit churn-model` is one query. Nothing updates or deletes an audit item.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

AUDIT_INDEX_PK = "AUDIT"
TARGET_PATTERN = r"^[a-z][a-z0-9_-]{0,31}/[A-Za-z0-9._:@/-]{1,256}$"


def audit_pk(target: str) -> str:
    return f"AUDIT#{target}"


def model_target(name: str) -> str:
    return f"model/{name}"


def dataset_target(name: str) -> str:
    return f"dataset/{name}"


def contract_target(name: str) -> str:
    return f"contract/{name}"


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """Sortable UTC ISO time with microseconds: the sort key's prefix."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Actor(BaseModel):
    """Who acts, and the correlation id that ties the action to its logs.

    `identity` is the caller's IAM principal (API: requestContext.identity.userArn / caller /
    accessKey) or, for automatic steps, `workflow:<execution arn or name>`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    identity: str = Field(min_length=1, max_length=2048)
    correlation_id: str = Field("", max_length=256)


class AuditEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    event_id: str = Field(default_factory=lambda: uuid.uuid4().hex, pattern=r"^[0-9a-f]{32}$")
    time: datetime = Field(default_factory=utcnow)
    who: str = Field(min_length=1, max_length=2048)
    action: str = Field(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")  # e.g. "version.promote", "approval.decide"
    target: str = Field(pattern=TARGET_PATTERN)
    version: int | None = Field(default=None, ge=1)
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    reason: str = Field("", max_length=4096)
    correlation_id: str = Field("", max_length=256)

    @field_validator("time")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("audit times are timezone-aware (UTC)")
        return value.astimezone(UTC)

    @classmethod
    def of(
        cls,
        actor: Actor,
        action: str,
        target: str,
        *,
        version: int | None = None,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        reason: str = "",
    ) -> AuditEvent:
        return cls(
            who=actor.identity,
            correlation_id=actor.correlation_id,
            action=action,
            target=target,
            version=version,
            before=before,
            after=after,
            reason=reason,
        )

    @property
    def sort_key(self) -> str:
        return f"{iso(self.time)}#{self.event_id}"
