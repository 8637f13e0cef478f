"""Approvals and releases: requests, decisions, release strategies, workflow task events and the
typed errors the state machine matches by name.

Approval request layout (metadata table):
    pk=APPROVAL#<id>  sk=APPROVAL
    gsi1pk=APPROVALS#PENDING (then APPROVALS#DECIDED)  gsi1sk=<requested-at iso>#<id>
    status (S), task_token (S, server-side only), data (S: ApprovalRequest as JSON, no token)
The id is `<model>-<version>` (one request per version), so `stepwise approve MODEL VERSION`
needs no lookup.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from functions.models.errors import Conflict, StepwiseError
from functions.models.registry import NAME_PATTERN, GateVerdict

APPROVAL_SK = "APPROVAL"
PENDING_INDEX_PK = "APPROVALS#PENDING"
DECIDED_INDEX_PK = "APPROVALS#DECIDED"
ID_PATTERN = r"^[a-z][a-z0-9-]{0,62}-[0-9]{1,9}$"
DEFAULT_APPROVAL_TIMEOUT_SECONDS = 7 * 24 * 3600


def approval_id(model: str, version: int) -> str:
    return f"{model}-{version}"


def approval_pk(id_: str) -> str:
    return f"APPROVAL#{id_}"


# -- typed errors (class names are matched by the state machine's Retry/Catch) ------------
class ApprovalRejected(StepwiseError):
    """An approver rejected the version (SendTaskFailure error name)."""

    status_code = 409


class ApprovalExpired(StepwiseError):
    """Nobody decided before the approval's timeout; the version is REJECTED (expired)."""

    status_code = 410


class CanaryCheckFailed(StepwiseError):
    """The canary's error rate, latency or quality failed its check; the canary was rolled back."""

    status_code = 409


class ServingMismatch(StepwiseError):
    """After a release step, what serving resolves differs from what the step wrote."""

    status_code = 500


class IllegalTransition(Conflict):
    """A status change the declared state machine does not allow (names from and to)."""


class StaleExpectation(Conflict):
    """A rollback's expected aliases (what the caller saw serving) are not the registry's now:
    nothing is rolled back (names what was expected and what is there)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _reason(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("a reason is required")
    return value


# -- approvals ------------------------------------------------------------------------
class ApprovalStatus(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"


class ProductionComparison(_Model):
    production_version: int | None = None
    production_metrics: dict[str, float] = Field(default_factory=dict, max_length=200)
    primary_metric: str = ""
    delta: float | None = None  # candidate minus production on the primary metric


class Decision(_Model):
    approved: bool
    who: str = Field(min_length=1, max_length=2048)
    reason: str = Field(min_length=1, max_length=4096)
    at: datetime


class ApprovalRequest(_Model):
    """What an approver sees. The task token is kept beside it, never inside it."""

    id: str = Field(pattern=ID_PATTERN)
    model: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1)
    status: ApprovalStatus = ApprovalStatus.PENDING
    metrics: dict[str, float] = Field(default_factory=dict, max_length=200)
    gates: list[GateVerdict] = Field(default_factory=list, max_length=200)
    comparison: ProductionComparison = Field(default_factory=lambda: ProductionComparison())
    artifact_sha256: str = ""
    started_by: str = ""
    run_id: str = ""
    execution: str = ""  # the waiting workflow execution
    requested_at: datetime
    expires_at: datetime
    decision: Decision | None = None


SSO_ROLE_PREFIX = "AWSReservedSSO_"  # IAM Identity Center fixes these roles' session name to the user
UNKNOWN_STARTERS = frozenset({"s3:upload"})  # an upload whose notification named no principal
_ASSUMED_ROLE = re.compile(r"^arn:aws[a-z-]*:sts::(?P<account>[0-9]{12}):assumed-role/(?P<role>[^/]+)/(?P<session>.+)$")
_ROLE = re.compile(r"^arn:aws[a-z-]*:iam::(?P<account>[0-9]{12}):role/(?:.*/)?(?P<role>[^/]+)$")
_USER = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:user/(?:.*/)?(?P<name>[^/]+)$")
_ROLE_ID = re.compile(r"^(?P<id>AROA[A-Z0-9]+):(?P<session>.+)$")  # IAM's unique role id + session


def _role_trusts_sessions(role: str, trusted_roles: frozenset[str]) -> bool:
    return role.startswith(SSO_ROLE_PREFIX) or role in trusted_roles


def person_keys(identity: str) -> set[str]:
    """A recorded principal (a run's `started_by`) in every form four-eyes compares: an IAM user's
    ARN or unique id; an assumed role's ARN at two grains (role + session, and the role alone); the
    caller id API Gateway and S3 events give an assumed role (`AROA...:session`, with S3's `AWS:`
    prefix) at the same two grains. Anything else (a Cognito name, a plain name) is itself."""
    value = identity.strip().removeprefix("AWS:")
    if not value:
        return set()
    if match := _ASSUMED_ROLE.match(value):
        role = f"role:{match['account']}/{match['role']}"
        return {f"{role}/{match['session']}", role}
    if match := _ROLE_ID.match(value):
        return {value, match["id"]}
    if match := _ROLE.match(value):  # a role named by its ARN (an allow-list entry)
        return {f"role:{match['account']}/{match['role']}"}
    return {value}


class CallerIdentity(_Model):
    """The caller as the authorizer names it (requestContext.identity, or a Cognito token's claims)."""

    user_arn: str = Field(default="", max_length=2048)
    caller: str = Field(default="", max_length=2048)
    access_key: str = Field(default="", max_length=256)
    groups: tuple[str, ...] = Field(default=(), max_length=100)  # a Cognito caller's cognito:groups

    @property
    def principal(self) -> str:
        """The name recorded as approver: the ARN when there is one."""
        return self.user_arn or self.caller or self.access_key

    def allowed_by(self, entries: frozenset[str]) -> bool:
        """Whether an allow-list names this caller: `group:<name>` a Cognito group it is in; any
        other entry a principal (an IAM user or role ARN, a role's every session, a Cognito name)."""
        if any(e.startswith("group:") and e.removeprefix("group:") in self.groups for e in entries):
            return True
        mine = person_keys(self.user_arn) | person_keys(self.caller)
        return bool(mine & set().union(*(person_keys(e) for e in entries if not e.startswith("group:"))))

    def person(self, trusted_roles: frozenset[str] = frozenset()) -> set[str]:
        """The caller's person in the forms `person_keys` gives a recorded principal, at the grain
        the caller's kind allows: an IAM user is itself; an assumed role is the role + session only
        when the session names the person (an Identity Center role, or a role in `trusted_roles`),
        otherwise the role alone, whatever session name the caller chose. A Cognito caller is its
        pool's username and its token's subject."""
        if match := _ASSUMED_ROLE.match(self.user_arn):
            role = f"role:{match['account']}/{match['role']}"
            by_session = _role_trusts_sessions(match["role"], trusted_roles)
            keys = {f"{role}/{match['session']}" if by_session else role}
            if id_match := _ROLE_ID.match(self.caller):
                keys.add(self.caller if by_session else id_match["id"])
            return keys
        if self.user_arn.startswith("cognito:"):
            pool = self.user_arn.removeprefix("cognito:").split("/", 1)[0]
            return {self.user_arn} | ({f"cognito:{pool}/{self.caller}", self.caller} if self.caller else set())
        # an IAM user (or a local caller): also its bare name and access key, the forms a starter
        # may be recorded in that cannot be told apart from this person, so they count as it
        keys = person_keys(self.user_arn) | person_keys(self.caller) | person_keys(self.access_key)
        if match := _USER.match(self.user_arn):
            keys.add(match["name"])
        return keys

    def is_(self, identity: str, trusted_roles: frozenset[str] = frozenset()) -> bool:
        """Whether `identity` (e.g. ModelVersion.started_by) names this caller's person."""
        return bool(self.person(trusted_roles) & person_keys(identity))


class DecisionRequest(_Model):
    """Body of POST /v1/approvals/{id}/approve|reject. The approver is never in the body."""

    reason: str = Field(max_length=4096)

    _check = field_validator("reason")(_reason)


class ApprovalList(_Model):
    approvals: list[ApprovalRequest] = Field(max_length=1000)
    next_token: str | None = None  # more pending requests: pass it as ?next_token= for the next page


# -- releases -------------------------------------------------------------------------
class CanaryCheck(_Model):
    """Thresholds of the automatic check after the bake time."""

    max_error_rate: float = Field(default=0.01, ge=0, le=1)
    max_latency_ms: float = Field(default=500.0, gt=0)
    # the latency statistic compared with max_latency_ms; moto computes no percentiles (its
    # GetMetricData fails on them), so tests against moto with traffic use "Maximum"
    latency_stat: Literal["p99", "p95", "p90", "p50", "Maximum", "Average"] = "p99"
    min_quality: float | None = None  # on the primary metric, where labels arrived
    min_requests: int = Field(default=0, ge=0)  # fewer requests than this count as "no data"
    # a canary no request reached has shown nothing: it fails (and is rolled back) unless the
    # spec says "pass" explicitly (a quiet model whose owner accepts promoting it untested)
    on_no_data: Literal["pass", "fail"] = "fail"


class ReleaseStrategy(_Model):
    kind: Literal["all_at_once", "canary"] = "all_at_once"
    weight: float = Field(default=0.1, gt=0, lt=1)
    bake_seconds: int = Field(default=600, ge=0, le=7 * 24 * 3600)
    check: CanaryCheck = Field(default_factory=lambda: CanaryCheck())


class ApprovalTaskEvent(_Model):
    """Payload of the waitForTaskToken task (the state machine builds it)."""

    token: str = Field(min_length=1, max_length=4096)
    model: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1)
    execution: str = ""
    timeout_seconds: int = Field(default=DEFAULT_APPROVAL_TIMEOUT_SECONDS, ge=1)


class ReleaseTaskEvent(_Model):
    """Payload of every release task: which step, on which version, with which strategy."""

    action: Literal["promote", "start_canary", "check_canary", "complete_canary", "rollback_canary", "expire"]
    model: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1)
    execution: str = ""
    strategy: ReleaseStrategy = Field(default_factory=lambda: ReleaseStrategy())
    reason: str = ""
    error: dict[str, Any] | None = None  # the caught error ($.error) when rolling back


class ReleaseResult(_Model):
    model: str
    version: int
    action: str
    production_version: int | None
    candidate_version: int | None
    candidate_weight: float
    revision: int
    verdict: Literal["pass", "fail", "no_data"] | None = None
    detail: str = ""
    bake_seconds: int | None = None  # set by start_canary: the workflow's Wait reads it


class RollbackRequest(_Model):
    """Body of POST /v1/models/{name}/rollback.

    `expected_production_version` and `expected_canary_version` are what the caller saw serving
    (absent canary: none was in progress). The rollback happens only if they still hold, so a
    retried or raced call answers 409 instead of rolling back a version nobody looked at. The
    production version is required: without it a call's meaning depends on when it arrives."""

    reason: str = Field(max_length=4096)
    to_version: int | None = Field(default=None, ge=1)
    expected_production_version: int = Field(ge=1)
    expected_canary_version: int | None = Field(default=None, ge=1)

    _check = field_validator("reason")(_reason)


class CanaryMetrics(_Model):
    """What the canary check reads: None means no data."""

    requests: int | None = None
    error_rate: float | None = None
    latency_ms: float | None = None  # the check's latency statistic
    quality: float | None = None
