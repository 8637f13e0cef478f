"""Stack settings, read from CDK context (cdk.json or -c key=value)."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from constructs import Construct
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

APPROVER_PATTERN = r"^(arn:aws[a-z-]*:(iam|sts)::\d{12}:.+|group:[\w+=,.@-]{1,128}|cognito:.+)$"


class StackConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: str = Field("dev", pattern=r"^[a-z][a-z0-9-]{0,15}$")
    architecture: Literal["arm64", "x86_64"] = "arm64"
    log_retention_days: int = Field(30, ge=1)
    # S3 lifecycle: captured inference traffic (data bucket captures/) and validation/drift reports
    # (artifacts bucket reports/) expire after this many days; noncurrent versions after 90 days
    capture_retention_days: int = Field(90, ge=1, le=3650)
    report_retention_days: int = Field(365, ge=1, le=3650)
    api_throttle_rate: float = Field(50.0, gt=0, allow_inf_nan=False)
    api_throttle_burst: int = Field(100, gt=0)
    # an existing regional WAFv2 web ACL to associate with the API stage (None: no WAF)
    waf_web_acl_arn: str | None = Field(None, pattern=r"^arn:aws[a-z-]*:wafv2:[a-z0-9-]+:\d{12}:regional/webacl/.+")
    # API access (README "Security model"): an existing Cognito user pool whose ID tokens authorize the
    # control-plane routes (browser/SSO callers; None: IAM on every route); prediction clients that
    # also need an API key, each with its own throttle and daily quota (empty: no API keys)
    cognito_user_pool_arn: str | None = Field(
        None, pattern=r"^arn:aws[a-z-]*:cognito-idp:[a-z0-9-]+:\d{12}:userpool/.+"
    )
    prediction_api_clients: tuple[Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")], ...] = Field(
        (), max_length=50
    )
    prediction_client_rate: float = Field(20.0, gt=0, allow_inf_nan=False)
    prediction_client_burst: int = Field(40, gt=0)
    prediction_client_quota_per_day: int = Field(100_000, gt=0)
    # serving: the inference function (None: unreserved, shares the account pool)
    inference_reserved_concurrency: int | None = Field(None, ge=0)
    inference_memory_mb: int = Field(1024, ge=128, le=10_240)
    inference_alias_cache_ttl_seconds: float = Field(5.0, ge=0, le=300, allow_inf_nan=False)
    # approvals: how long the workflow waits for a decision (the lifecycle state machine's
    # own timeout must be longer); four-eyes: the run's starter cannot approve it (off for demos only)
    approval_timeout_seconds: int = Field(7 * 24 * 3600, ge=1, le=365 * 24 * 3600)
    four_eyes: bool = True
    # roles whose session names name the person for four-eyes (README "Security model"); any other
    # assumed role counts as one person whatever its session name (Identity Center's
    # AWSReservedSSO_* roles always count per session, which Identity Center fixes to the user)
    trusted_session_roles: tuple[Annotated[str, Field(pattern=r"^[\w+=,.@-]{1,64}$")], ...] = Field((), max_length=50)
    # who may approve or reject: IAM user or role ARNs (a role: every session of it) or
    # `group:<Cognito group>`; empty: anyone the API lets call the route (README "Security model")
    approvers: tuple[Annotated[str, Field(pattern=APPROVER_PATTERN)], ...] = Field((), max_length=100)
    # refused decisions (403 on approve/reject) in 5 minutes that raise the alarm
    refused_decisions_alarm_threshold: int = Field(5, ge=1)
    # a model's `lookups` alarm: % of its prediction-time feature lookups missing or expired
    lookup_miss_alarm_percent: float = Field(20.0, gt=0, le=100, allow_inf_nan=False)
    # separation of duties: persona name (infra/constructs/personas.py) -> role ARNs its managed
    # policy is attached to by the stack (empty: the admin attaches the policies the outputs name)
    persona_roles: dict[str, tuple[Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+")], ...]] = Field(
        default_factory=dict, max_length=6
    )
    # separation of duties with the Cognito user pool: persona name -> Cognito group names; a caller
    # authorized by the pool may call only the routes of its groups' personas (checked by the API
    # function; needs cognito_user_pool_arn)
    persona_groups: dict[str, tuple[Annotated[str, Field(pattern=r"^[\w+=,.@-]{1,128}$")], ...]] = Field(
        default_factory=dict, max_length=6
    )
    # the web console on AWS (README "Security model", infra/constructs/console.py): its own stack
    # with the assets in a private bucket behind CloudFront, a Cognito user pool (created unless an
    # existing pool's id and managed-login domain are given) and a second REST API with the pool's
    # authorizer in front of the same functions
    console: bool = True
    console_user_pool_id: str | None = Field(None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d_[0-9A-Za-z]+$")
    console_user_pool_domain: str | None = Field(None, pattern=r"^https://[a-z0-9.-]+$")  # the pool's login domain
    console_mfa: Literal["off", "optional", "required"] = "required"  # TOTP (authenticator apps)
    # a custom domain: its ACM certificate (in us-east-1, as CloudFront requires) and names
    console_certificate_arn: str | None = Field(None, pattern=r"^arn:aws[a-z-]*:acm:us-east-1:\d{12}:certificate/.+")
    console_domain_names: tuple[Annotated[str, Field(pattern=r"^[a-z0-9.-]{1,253}$")], ...] = Field((), max_length=10)
    # an existing WAFv2 web ACL of CloudFront scope (us-east-1, global) to put in front of the console
    console_waf_web_acl_arn: str | None = Field(
        None, pattern=r"^arn:aws[a-z-]*:wafv2:us-east-1:\d{12}:global/webacl/.+"
    )
    # governance: retired artifacts move to a colder storage class after this many days;
    # audit exports stay locked (Object Lock, governance mode) this long
    retired_artifact_transition_days: int = Field(30, ge=1, le=3650)
    audit_retention_days: int = Field(7 * 365, ge=1, le=36500)
    # monitoring: how many models' drift checks a scheduled round runs at once
    drift_concurrency: int = Field(10, ge=1, le=1_000)
    # features: the alarm on the oldest view's online age (seconds since the newest event time a
    # materialization wrote, measured when it finished), one alarm for every view
    online_freshness_alarm_seconds: int = Field(2 * 24 * 3600, ge=60, le=366 * 24 * 3600)

    @field_validator("trusted_session_roles", "approvers", "console_domain_names", mode="before")
    @classmethod
    def _roles(cls, value: object) -> object:
        """`-c stepwise:trusted_session_roles=MLOpsHuman,Other` (role names), `-c stepwise:approvers=ARN,group:G`,
        or a list in cdk.json."""
        return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value

    @field_validator("prediction_api_clients", mode="before")
    @classmethod
    def _clients(cls, value: object) -> object:
        """`-c stepwise:prediction_api_clients=shop,batch` or a list in cdk.json; names unique."""
        names = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        if isinstance(names, list | tuple) and len(set(names)) != len(names):
            raise ValueError(f"prediction_api_clients names must be unique: {names}")
        return names

    @field_validator("persona_roles", "persona_groups", mode="before")
    @classmethod
    def _json_mapping(cls, value: object) -> object:
        """`-c stepwise:persona_groups='{"Approver": ["leads"]}'` (the CDK CLI passes -c values as
        strings), or a mapping in cdk.json."""
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError as exc:
                raise ValueError(f"not a JSON object of persona -> names: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _persona_groups(self) -> StackConfig:
        """Groups are a user pool's: persona_groups needs cognito_user_pool_arn, and names known personas."""
        from infra.constructs.personas import PERSONAS

        unknown = sorted(set(self.persona_groups) - set(PERSONAS))
        if unknown:
            raise ValueError(f"persona_groups names unknown personas {unknown}; known: {list(PERSONAS)}")
        if self.persona_groups and not (self.cognito_user_pool_arn or self.console):
            raise ValueError("persona_groups maps Cognito groups, so it needs cognito_user_pool_arn or console")
        if bool(self.console_user_pool_id) != bool(self.console_user_pool_domain):
            raise ValueError("console_user_pool_id and console_user_pool_domain name an existing pool together")
        if bool(self.console_certificate_arn) != bool(self.console_domain_names):
            raise ValueError("console_certificate_arn and console_domain_names name a custom domain together")
        return self

    @property
    def console_persona_groups(self) -> dict[str, tuple[str, ...]]:
        """Cognito group names per persona: with the console on, the pool's group named after each
        persona (the stack creates them), plus the groups `persona_groups` maps."""
        from infra.constructs.personas import PERSONAS

        own = {p: (p,) for p in PERSONAS} if self.console else {}
        return {
            p: tuple(dict.fromkeys((*own.get(p, ()), *self.persona_groups.get(p, ()))))
            for p in PERSONAS
            if p in own or p in self.persona_groups
        }

    @classmethod
    def from_context(cls, scope: Construct) -> StackConfig:
        values = {}
        for name in cls.model_fields:
            raw = scope.node.try_get_context(f"stepwise:{name}")
            if raw is not None:
                values[name] = raw
        return cls.model_validate(values)
