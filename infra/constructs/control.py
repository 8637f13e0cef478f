"""The control-plane API function: health and OpenAPI routes, registry/specs/runs routes, and
approval/rollback routes (functions/handlers/api.py and its routers).

Routes that need the lifecycle workflow are added once it exists (`add_model_routes`,
`add_release_routes`); other components (ingestion, monitoring, governance) add their own routes
to the same function, given as a prop.
"""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra import constants as c
from infra.constructs.api import Api
from infra.constructs.function import FunctionFactory
from infra.grants import (
    StartableWorkflow,
    allow_objects,
    allow_table,
    allow_workflow_start,
    grant_decisions,
    grant_health_probes,
    grant_release_access,
    synchronous_only,
)

API_HANDLER = "functions.handlers.api.lambda_handler"
MODEL_ROUTES = (
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{name}/versions"),
    ("GET", "/v1/models/{name}/versions/{version}"),
    ("GET", "/v1/models/{name}/runs"),
    ("PUT", "/v1/specs/{name}"),
    ("GET", "/v1/specs/{name}"),
    ("POST", "/v1/models/{name}/train"),
    ("PUT", "/v1/feature-views/{name}"),  # functions/handlers/routes/features.py
    ("GET", "/v1/feature-views/{name}"),
    ("GET", "/v1/feature-views"),
)
IMPORT_ROUTES = (  # functions/handlers/routes/imports.py
    ("POST", "/v1/models/{name}/imports/upload"),
    ("POST", "/v1/models/{name}/imports"),
)
RELEASE_ROUTES = (
    ("GET", "/v1/approvals"),
    ("GET", "/v1/approvals/{approval_id}"),
    ("POST", "/v1/approvals/{approval_id}/approve"),
    ("POST", "/v1/approvals/{approval_id}/reject"),
    ("POST", "/v1/models/{name}/rollback"),
)


class ControlApi(Construct):
    """Exposes `function` (the control-plane API Lambda)."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        functions: FunctionFactory,
        api: Api,
        data_bucket: s3.IBucket,
        artifacts_bucket: s3.IBucket,
        registry_table: dynamodb.ITable,
        metadata_table: dynamodb.ITable,
    ) -> None:
        super().__init__(scope, id_)
        self._api = api
        self._artifacts = artifacts_bucket
        self._registry, self._metadata = registry_table, metadata_table
        self.function: lambda_.Function = functions(c.API_FUNCTION_ID, API_HANDLER, description="Control-plane API")
        synchronous_only(self.function)
        grant_health_probes(
            self.function, buckets=[data_bucket, artifacts_bucket], tables=[registry_table, metadata_table]
        )
        api.add_route("GET", "/v1/health", self.function)
        api.add_route("GET", "/v1/openapi.json", self.function)  # functions/handlers/routes/openapi.py

    def add_model_routes(self, *, lifecycle: StartableWorkflow) -> None:
        """Registry reads, specs and runs (functions/handlers/routes/models.py), feature views
        (routes/features.py); training starts the workflow."""
        fn = self.function
        allow_table(fn, self._registry, ["dynamodb:GetItem", "dynamodb:Query"], index=True)
        allow_table(
            fn, self._metadata, ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"]
        )
        allow_workflow_start(fn, lifecycle)
        for method, path in MODEL_ROUTES:
            self._api.add_route(method, path, fn)

    def add_import_routes(self) -> None:
        """Bring your own model: presigned uploads under imports/ (the URL is signed with this
        function's role, so it needs PutObject there; HEAD of the upload needs GetObject) and import
        records with their audit events (the metadata writes of add_model_routes)."""
        fn = self.function
        allow_objects(
            fn, self._artifacts, c.PREFIX_IMPORTS, ["s3:PutObject", "s3:GetObject"], "imported models' uploads"
        )
        for method, path in IMPORT_ROUTES:
            self._api.add_route(method, path, fn)

    def add_release_routes(
        self,
        *,
        lifecycle: StartableWorkflow,
        four_eyes: bool,
        trusted_session_roles: tuple[str, ...] = (),
        approvers: tuple[str, ...] = (),
    ) -> None:
        """Approvals and rollback; decisions answer the lifecycle's waiting task."""
        fn = self.function
        fn.add_environment(c.ENV_FOUR_EYES, "true" if four_eyes else "false")
        if trusted_session_roles:
            fn.add_environment(c.ENV_TRUSTED_SESSION_ROLES, ",".join(trusted_session_roles))
        if approvers:
            fn.add_environment(c.ENV_APPROVERS, ",".join(approvers))
        grant_release_access(fn, registry=self._registry, metadata=self._metadata, artifacts=self._artifacts)
        grant_decisions(fn, lifecycle.state_machine)
        for method, path in RELEASE_ROUTES:
            self._api.add_route(method, path, fn)
