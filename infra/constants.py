"""Construct ids, output names and environment variable names: one place, imported by tests."""

from __future__ import annotations

STACK_NAME = "Stepwise"  # the compute stack: the one the CLI names (--stack) and reads outputs of
STORES_STACK_NAME = "StepwiseStores"  # the stateful stores, retained; the compute stack imports them
CONSOLE_STACK_NAME = "StepwiseConsole"  # the web console on AWS (setting `console`): CloudFront, Cognito, its API
API_STAGE = "prod"

# construct ids
DATA_STORE_ID = "DataStore"
ARTIFACT_STORE_ID = "ArtifactStore"
ACCESS_LOGS_ID = "AccessLogs"
REGISTRY_ID = "Registry"
METADATA_ID = "Metadata"
ONLINE_STORE_ID = "OnlineStore"
AUDIT_ARCHIVE_ID = "AuditArchive"
API_ID = "Api"
API_FUNCTION_ID = "ApiFunction"
CONTROL_API_ID = "ControlApi"
BASE_LAYER_ID = "BaseLayer"
LIFECYCLE_ID = "Lifecycle"
LIFECYCLE_TASKS_ID = "LifecycleTasks"
TRAIN_FUNCTION_ID = "TrainFunction"
EVALUATE_FUNCTION_ID = "EvaluateFunction"
REGISTER_FUNCTION_ID = "RegisterFunction"
RUN_RECORD_FUNCTION_ID = "RunRecordFunction"
SAGEMAKER_TRAINING_ID = "SageMakerTraining"
APPROVALS_ID = "Approvals"
APPROVAL_FUNCTION_ID = "ApprovalFunction"
RELEASE_FUNCTION_ID = "ReleaseFunction"
SERVING_ID = "Serving"
INFERENCE_FUNCTION_ID = "InferenceFunction"
INFERENCE_LAYER_ID = "InferenceLayer"
OFFLINE_STORE_ID = "OfflineStore"

# stack outputs (clients resolve names through these)
OUT_DATA_BUCKET = "DataBucketName"
OUT_ARTIFACTS_BUCKET = "ArtifactsBucketName"
OUT_REGISTRY_TABLE = "RegistryTableName"
OUT_METADATA_TABLE = "MetadataTableName"
OUT_ONLINE_TABLE = "OnlineTableName"
OUT_API_URL = "ApiUrl"
OUT_API_ID = "RestApiId"
OUT_VERSION = "StackVersion"
OUT_LIFECYCLE_SM_ARN = "LifecycleStateMachineArn"
OUT_APPROVALS_TOPIC_ARN = "ApprovalsTopicArn"
OUT_KEY_ARN = "KeyArn"

# environment variables the functions read (functions/models/settings.py aliases the same names)
ENV_VERSION = "STEPWISE_VERSION"
ENV_CODE_VERSION = "STEPWISE_CODE_VERSION"
ENV_DATA_BUCKET = "STEPWISE_DATA_BUCKET"
ENV_ARTIFACTS_BUCKET = "STEPWISE_ARTIFACTS_BUCKET"
ENV_REGISTRY_TABLE = "STEPWISE_REGISTRY_TABLE"
ENV_METADATA_TABLE = "STEPWISE_METADATA_TABLE"
ENV_LIFECYCLE_SM_ARN = "STEPWISE_LIFECYCLE_SM_ARN"
ENV_APPROVALS_TOPIC_ARN = "STEPWISE_APPROVALS_TOPIC_ARN"
ENV_FOUR_EYES = "STEPWISE_FOUR_EYES"
ENV_TRUSTED_SESSION_ROLES = "STEPWISE_TRUSTED_SESSION_ROLES"
ENV_APPROVERS = "STEPWISE_APPROVERS"
ENV_PERSONA_GROUPS = "STEPWISE_PERSONA_GROUPS"
ENV_ALIAS_CACHE_TTL = "STEPWISE_ALIAS_CACHE_TTL"
ENV_ONLINE_TABLE = "STEPWISE_ONLINE_TABLE"  # the inference function's prediction-time feature lookups
ENV_MODEL_CACHE_SIZE = "STEPWISE_MODEL_CACHE_SIZE"
ENV_MAX_INSTANCES = "STEPWISE_MAX_INSTANCES"
ENV_CAPTURE_SAMPLE_RATE = "STEPWISE_CAPTURE_SAMPLE_RATE"
ENV_CAPTURE_FLUSH_ROWS = "STEPWISE_CAPTURE_FLUSH_ROWS"
ENV_CAPTURE_FLUSH_SECONDS = "STEPWISE_CAPTURE_FLUSH_SECONDS"

# table key schema (both tables)
PK = "pk"
SK = "sk"
GSI1 = "gsi1"
GSI1_PK = "gsi1pk"
GSI1_SK = "gsi1sk"
# The tables' TTL attribute: items carrying it (idempotency records) expire at that epoch second.
TTL_ATTRIBUTE = "expires_at"

# data bucket prefixes
PREFIX_RAW = "raw/"
PREFIX_VALIDATED = "validated/"
PREFIX_QUARANTINE = "quarantine/"
PREFIX_CAPTURES = "captures/"
PREFIX_FEEDBACK = "feedback/"

# artifacts bucket prefixes
PREFIX_MODELS = "models/"
PREFIX_CARDS = "cards/"  # artifacts bucket: model cards (writers of cards cannot touch models/)
PREFIX_OFFLINE = "offline/"  # artifacts bucket: feature views' offline layouts, one per source version
PREFIX_IMPORTS = "imports/"  # artifacts bucket: uploaded ONNX artifacts of imported models (untrusted until verified)

# ingestion: construct ids, outputs, env vars, artifacts prefix of validation reports
INGESTION_ID = "Ingestion"
VALIDATE_FUNCTION_ID = "ValidateFunction"
DATA_LAYER_ID = "DataLayer"
OUT_VALIDATE_FUNCTION = "ValidateFunctionName"
OUT_VALIDATE_DLQ_URL = "ValidateDeadLetterQueueUrl"
ENV_VALIDATE_CHUNK_BYTES = "STEPWISE_VALIDATE_CHUNK_BYTES"
ENV_VALIDATE_MAX_BYTES = "STEPWISE_VALIDATE_MAX_BYTES"
PREFIX_VALIDATION_REPORTS = "reports/validation/"
VALIDATE_CHUNKS_FUNCTION_ID = "ValidateChunksFunction"
OUT_VALIDATE_SM_ARN = "ValidateStateMachineArn"
ENV_VALIDATE_SM_ARN = "STEPWISE_VALIDATE_SM_ARN"
ENV_ATHENA_WORKGROUP = "STEPWISE_ATHENA_WORKGROUP"
ENV_OFFLINE_DATABASE = "STEPWISE_OFFLINE_DATABASE"
ENV_OFFLINE_JOIN_MAX_BYTES = "STEPWISE_OFFLINE_JOIN_MAX_BYTES"

# monitoring: construct ids, outputs, env vars, prefixes
MONITORING_ID = "Monitoring"
DRIFT_FUNCTION_ID = "DriftFunction"
OUT_DRIFT_FUNCTION = "DriftFunctionName"
OUT_ALARM_TOPIC_ARN = "AlarmTopicArn"
OUT_DASHBOARD = "MonitoringDashboardName"
ENV_DRIFT_FUNCTION = "STEPWISE_DRIFT_FUNCTION"
ENV_MODEL_ALARM_PREFIX = "STEPWISE_MODEL_ALARM_PREFIX"
ENV_LOOKUP_MISS_ALARM_PERCENT = "STEPWISE_LOOKUP_MISS_ALARM_PERCENT"  # the per-model `lookups` alarm
ENV_ALARM_TOPIC_ARN = "STEPWISE_ALARM_TOPIC_ARN"
ENV_VIEW_ALARM_PREFIX = "STEPWISE_VIEW_ALARM_PREFIX"  # per-view alarms (functions/logic/view_alarms.py)
ENV_ONLINE_FRESHNESS_ALARM_SECONDS = "STEPWISE_ONLINE_FRESHNESS_ALARM_SECONDS"  # the per-view `freshness` alarm
PREFIX_MONITORING = "monitoring/"  # data bucket: compacted captures, rows kept aside
PREFIX_DRIFT_REPORTS = "reports/drift/"  # artifacts bucket

# governance: construct ids, outputs, env vars, prefixes
GOVERNANCE_ID = "Governance"
AUDIT_EXPORT_FUNCTION_ID = "AuditExportFunction"
OUT_AUDIT_ARCHIVE_BUCKET = "AuditArchiveBucketName"
OUT_AUDIT_EXPORT_FUNCTION = "AuditExportFunctionName"
ENV_AUDIT_ARCHIVE_BUCKET = "STEPWISE_AUDIT_ARCHIVE_BUCKET"
ENV_AUDIT_EXPORT_FUNCTION = "STEPWISE_AUDIT_EXPORT_FUNCTION"
PREFIX_AUDIT_EXPORT = "audit/"  # audit archive bucket (Object Lock, governance mode): Parquet per day
RETIRED_TAG = "stepwise-retired"  # artifacts tagged "true" move to a colder class (lifecycle rule)

# Routes whose every valid request carries a JSON object body (besides every PUT): API Gateway's
# validator refuses any other body before the Lambda (infra/constructs/api.py). The handlers require
# one too (tests/integration/test_json_body_routes.py keeps the two in step).
JSON_BODY_ROUTES = frozenset(
    {
        ("POST", "/v1/models/{name}/predict"),
        ("POST", "/v1/models/{name}/feedback"),
        ("POST", "/v1/approvals/{approval_id}/approve"),
        ("POST", "/v1/approvals/{approval_id}/reject"),
        ("POST", "/v1/models/{name}/rollback"),
        ("POST", "/v1/models/{name}/versions/{version}/retire"),
        ("POST", "/v1/models/{name}/batch"),
    }
)

# reproduction: a registered version retrained inside the stack from its records
REPRODUCTION_ID = "Reproduction"
REPRODUCE_FUNCTION_ID = "ReproduceFunction"
OUT_REPRODUCE_FUNCTION = "ReproduceFunctionName"
ENV_REPRODUCE_FUNCTION = "STEPWISE_REPRODUCE_FUNCTION"

# batch scoring: the batch workflow (plan -> Distributed Map of chunk scorers -> finish)
BATCH_ID = "Batch"
BATCH_FUNCTION_ID = "BatchFunction"
OUT_BATCH_SM_ARN = "BatchStateMachineArn"
OUT_BATCH_FUNCTION = "BatchFunctionName"
ENV_BATCH_SM_ARN = "STEPWISE_BATCH_SM_ARN"  # functions/models/settings.py batch_state_machine_arn

# separation of duties: one managed policy per persona (infra/constructs/personas.py); outputs
# PersonaPolicy<Persona> name each policy's ARN
PERSONAS_ID = "Personas"
OUT_PERSONA_POLICY_PREFIX = "PersonaPolicy"
REFUSED_DECISIONS_METRIC = "DecisionsRefused"  # functions/handlers/routes/approvals.py emits it

# the web console on AWS (infra/constructs/console.py)
CONSOLE_ID = "Console"
CONSOLE_SCOPE_SERVER = "stepwise"  # the user pool's resource server: persona scopes are `stepwise/<Persona>`
CONSOLE_ACCESS_LOG_PREFIX = "console/"  # the console buckets' server access logs, in the access-log bucket
PRE_TOKEN_FUNCTION_ID = "PreTokenFunction"  # Cognito pre-token-generation trigger: persona scopes from groups
CONSOLE_CONFIG_FILE = "config.json"  # the console's runtime configuration, next to its assets
CONSOLE_APPROVAL_ROUTE = "/#/approvals/"  # + approval id: an approval's page (assets at the distribution's root)
CONSOLE_URL_PARAMETER = "/stepwise/{stage}/console/url"  # SSM parameter: the console's https URL
ENV_CONSOLE_URL_PARAMETER = "STEPWISE_CONSOLE_URL_PARAMETER"
OUT_CONSOLE_URL = "ConsoleUrl"
OUT_CONSOLE_API_URL = "ConsoleApiUrl"
OUT_CONSOLE_USER_POOL_ID = "ConsoleUserPoolId"
OUT_CONSOLE_CLIENT_ID = "ConsoleClientId"
OUT_CONSOLE_BUCKET = "ConsoleBucketName"
OUT_CONSOLE_PRE_TOKEN_FUNCTION = "ConsolePreTokenFunctionArn"

# materialization into the online feature store (infra/constructs/materialize.py)
MATERIALIZE_ID = "Materialize"
MATERIALIZE_FUNCTION_ID = "MaterializeFunction"
OUT_MATERIALIZE_SM_ARN = "MaterializeStateMachineArn"
OUT_MATERIALIZE_FUNCTION = "MaterializeFunctionName"
ENV_MATERIALIZE_FUNCTION = "STEPWISE_MATERIALIZE_FUNCTION"
ENV_MATERIALIZE_SM_ARN = "STEPWISE_MATERIALIZE_SM_ARN"
ENV_MATERIALIZE_CHUNK_BYTES = "STEPWISE_MATERIALIZE_CHUNK_BYTES"
