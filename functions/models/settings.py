"""Environment variables, read once into a typed model. Nothing else reads os.environ.

Field aliases are the environment variable names; infra/constants.py sets the same names
(tests/infra/test_core_stack.py, test_stack_env_var_names_match_the_functions_settings, keeps the
two in step).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    stack_version: str = Field("dev", alias="STEPWISE_VERSION")
    data_bucket: str = Field("", alias="STEPWISE_DATA_BUCKET")
    artifacts_bucket: str = Field("", alias="STEPWISE_ARTIFACTS_BUCKET")
    registry_table: str = Field("", alias="STEPWISE_REGISTRY_TABLE")
    metadata_table: str = Field("", alias="STEPWISE_METADATA_TABLE")
    lifecycle_state_machine_arn: str = Field("", alias="STEPWISE_LIFECYCLE_SM_ARN")
    approvals_topic_arn: str = Field("", alias="STEPWISE_APPROVALS_TOPIC_ARN")
    code_version: str = Field("dev", alias="STEPWISE_CODE_VERSION")
    # the SSM parameter holding the console's URL (approval notifications link to it; "" : no link)
    console_url_parameter: str = Field("", alias="STEPWISE_CONSOLE_URL_PARAMETER")
    # serving
    alias_cache_ttl_seconds: float = Field(5.0, alias="STEPWISE_ALIAS_CACHE_TTL", ge=0, allow_inf_nan=False)
    model_cache_size: int = Field(4, alias="STEPWISE_MODEL_CACHE_SIZE", ge=1, le=64)
    online_table: str = Field("", alias="STEPWISE_ONLINE_TABLE")  # the online feature store (lookups, materialization)
    max_instances: int = Field(1000, alias="STEPWISE_MAX_INSTANCES", ge=1, le=100_000)
    capture_sample_rate: float = Field(1.0, alias="STEPWISE_CAPTURE_SAMPLE_RATE", ge=0, le=1)
    capture_flush_rows: int = Field(20_000, alias="STEPWISE_CAPTURE_FLUSH_ROWS", ge=1, le=1_000_000)
    capture_flush_seconds: float = Field(
        60.0, alias="STEPWISE_CAPTURE_FLUSH_SECONDS", ge=0, le=3600, allow_inf_nan=False
    )
    # ingestion (validation of uploads): read whole up to chunk bytes, in chunks above, refuse above max
    validate_chunk_bytes: int = Field(256 * 1024**2, alias="STEPWISE_VALIDATE_CHUNK_BYTES", ge=1)
    validate_max_bytes: int = Field(50 * 1024**3, alias="STEPWISE_VALIDATE_MAX_BYTES", ge=1)
    validate_state_machine_arn: str = Field("", alias="STEPWISE_VALIDATE_SM_ARN")  # chunked validation (AWS)
    # imported models (functions/logic/imports.py): the largest ONNX artifact accepted, in bytes
    import_max_bytes: int = Field(256 * 1024**2, alias="STEPWISE_IMPORT_MAX_BYTES", ge=1)
    # offline store: a training set's point-in-time join runs in the function while the view layouts it
    # reads total at most this many Parquet bytes, on Athena above (when a workgroup is deployed)
    offline_join_max_bytes: int = Field(1024**3, alias="STEPWISE_OFFLINE_JOIN_MAX_BYTES", ge=1)
    athena_workgroup: str = Field("", alias="STEPWISE_ATHENA_WORKGROUP")
    offline_database: str = Field("", alias="STEPWISE_OFFLINE_DATABASE")  # Glue database over the layouts
    # how long a training set's Athena join is waited for (then stopped), and how often it is polled
    athena_max_wait_seconds: float = Field(600.0, alias="STEPWISE_ATHENA_MAX_WAIT", gt=0, allow_inf_nan=False)
    athena_poll_seconds: float = Field(1.0, alias="STEPWISE_ATHENA_POLL", gt=0, allow_inf_nan=False)
    # governance
    four_eyes: bool = Field(True, alias="STEPWISE_FOUR_EYES")
    # roles whose session names are trusted to name the person (besides Identity Center's
    # AWSReservedSSO_* roles): comma-separated role names
    trusted_session_roles: str = Field("", alias="STEPWISE_TRUSTED_SESSION_ROLES", max_length=4096)
    # who may approve or reject (comma-separated principals or `group:<Cognito group>`; empty: anyone
    # the API lets call the route)
    approvers: str = Field("", alias="STEPWISE_APPROVERS", max_length=16_384)
    # Cognito groups -> personas (JSON `{"Approver": ["leads"]}`): a Cognito caller may call only the
    # routes of its groups' personas (functions/models/personas.py); empty: the authorizer alone decides
    persona_groups: str = Field("", alias="STEPWISE_PERSONA_GROUPS", max_length=4096)
    audit_archive_bucket: str = Field("", alias="STEPWISE_AUDIT_ARCHIVE_BUCKET")  # Object Lock (governance)
    audit_export_function: str = Field("", alias="STEPWISE_AUDIT_EXPORT_FUNCTION")  # the on-demand export route
    reproduce_function: str = Field("", alias="STEPWISE_REPRODUCE_FUNCTION")  # the reproduce route's worker
    # batch scoring: the workflow the batch route starts, and the data bucket prefixes it may read
    batch_state_machine_arn: str = Field("", alias="STEPWISE_BATCH_SM_ARN")
    batch_input_prefixes: str = Field("validated/,raw/", alias="STEPWISE_BATCH_INPUT_PREFIXES")
    batch_chunk_bytes: int = Field(128 * 1024**2, alias="STEPWISE_BATCH_CHUNK_BYTES", ge=1)  # input bytes per chunk
    # scored rows a capturing job adds to monitoring per chunk (a deterministic uniform sample)
    batch_capture_rows: int = Field(10_000, alias="STEPWISE_BATCH_CAPTURE_ROWS", ge=0, le=1_000_000)
    # monitoring: the drift Lambda the API's drift route invokes
    drift_function_name: str = Field("", alias="STEPWISE_DRIFT_FUNCTION")
    # per-model alarms (functions/logic/model_alarms.py): names start with the prefix (the only alarm
    # names the grant allows); off when empty
    model_alarm_prefix: str = Field("", alias="STEPWISE_MODEL_ALARM_PREFIX", max_length=200)
    alarm_topic_arn: str = Field("", alias="STEPWISE_ALARM_TOPIC_ARN")
    lookup_miss_alarm_percent: float = Field(
        20.0, alias="STEPWISE_LOOKUP_MISS_ALARM_PERCENT", gt=0, le=100, allow_inf_nan=False
    )
    # per-view alarms (functions/logic/view_alarms.py): names start with the prefix (the only alarm
    # names the materialization function's grant allows); off when empty
    view_alarm_prefix: str = Field("", alias="STEPWISE_VIEW_ALARM_PREFIX", max_length=200)
    online_freshness_alarm_seconds: int = Field(
        2 * 24 * 3600, alias="STEPWISE_ONLINE_FRESHNESS_ALARM_SECONDS", ge=60, le=366 * 24 * 3600
    )
    # materialization into the online feature store (functions/logic/materialize.py)
    materialize_function: str = Field("", alias="STEPWISE_MATERIALIZE_FUNCTION")  # its worker (async starts)
    materialize_state_machine_arn: str = Field("", alias="STEPWISE_MATERIALIZE_SM_ARN")  # unset: in-process
    materialize_chunk_bytes: int = Field(32 * 1024**2, alias="STEPWISE_MATERIALIZE_CHUNK_BYTES", ge=1)

    @property
    def approver_entries(self) -> frozenset[str]:
        return frozenset(n.strip() for n in self.approvers.split(",") if n.strip())

    @property
    def personas_of_groups(self) -> dict[str, frozenset[str]]:
        """Cognito group -> the personas it maps to ({} when the setting is off). The stack writes
        the setting from a validated mapping; anything else found here is refused loudly."""
        if not self.persona_groups.strip():
            return {}
        mapping = json.loads(self.persona_groups)
        if not isinstance(mapping, dict):
            raise ValueError("STEPWISE_PERSONA_GROUPS must be a JSON object of persona -> group names")
        out: dict[str, set[str]] = {}
        for persona, groups in mapping.items():
            for group in groups:
                out.setdefault(str(group), set()).add(str(persona))
        return {group: frozenset(personas) for group, personas in out.items()}

    @property
    def trusted_session_role_names(self) -> frozenset[str]:
        return frozenset(n.strip() for n in self.trusted_session_roles.split(",") if n.strip())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this execution environment (read once per process). An empty variable counts as
    unset (its field keeps its default)."""
    return Settings.model_validate({k: v for k, v in os.environ.copy().items() if v != ""})
