"""Separation of duties at run time: the API routes each persona may call, by route key
(`METHOD /resource/{param}`, API Gateway's resource path), for callers whose Cognito groups the
stack maps to personas (setting `persona_groups`, README "Security model").

The stack's managed policies (infra/constructs/personas.py, PERSONA_ROUTES) grant the same routes
to IAM callers; functions never import infra, so this is the same table as data, and
tests/infra/test_personas.py holds the two equal.
"""

from __future__ import annotations

# the console's access tokens carry `stepwise/<Persona>` scopes for the user's personas (added by the
# pre-token-generation trigger); each method of the console's API requires its personas' scopes
SCOPE_SERVER = "stepwise"

DATASET_READS: frozenset[str] = frozenset(
    {
        "GET /v1/health",
        "GET /v1/openapi.json",
        "GET /v1/datasets",
        "GET /v1/datasets/{name}",
        "GET /v1/datasets/{name}/contract",
        "GET /v1/datasets/{name}/contracts",
        "GET /v1/datasets/{name}/versions",
        "GET /v1/datasets/{name}/versions/{version}",
        "GET /v1/datasets/{name}/reports",
    }
)
READS: frozenset[str] = DATASET_READS | {
    "GET /v1/models",
    "GET /v1/models/{name}/versions",
    "GET /v1/models/{name}/versions/{version}",
    "GET /v1/models/{name}/versions/{version}/card",
    "GET /v1/models/{name}/versions/{version}/lineage",
    "GET /v1/models/{name}/versions/{version}/reproduce",
    "GET /v1/models/{name}/runs",
    "GET /v1/models/{name}/drift/settings",
    "GET /v1/drift/rounds",
    "GET /v1/models/{name}/drift/checks",
    "GET /v1/models/{name}/drift/checks/{check_id}",
    "GET /v1/models/{name}/batch",
    "GET /v1/models/{name}/batch/{job}",
    "GET /v1/models/{name}/batch/{job}/rows/{row}",
    "GET /v1/explain/{request_id}",
    "GET /v1/specs/{name}",
    "GET /v1/feature-views",
    "GET /v1/feature-views/{name}",
    "GET /v1/feature-views/{name}/materializations",
    "GET /v1/feature-views/{name}/materializations/{materialization_id}",
    "GET /v1/approvals",
    "GET /v1/approvals/{approval_id}",
}
PERSONA_ROUTES: dict[str, frozenset[str]] = {
    "DataProducer": DATASET_READS,
    "DataScientist": READS
    | {
        "PUT /v1/datasets/{name}/contract",
        "PUT /v1/specs/{name}",
        "PUT /v1/feature-views/{name}",
        "POST /v1/feature-views/{name}/materialize",
        "POST /v1/models/{name}/train",
        "POST /v1/models/{name}/imports/upload",
        "POST /v1/models/{name}/imports",
        "POST /v1/models/{name}/batch",
        "POST /v1/models/{name}/drift",
        "POST /v1/models/{name}/versions/{version}/reproduce",
    },
    "Approver": READS | {"POST /v1/approvals/{approval_id}/approve", "POST /v1/approvals/{approval_id}/reject"},
    "Operator": READS
    | {
        "POST /v1/models/{name}/rollback",
        "POST /v1/models/{name}/batch",
        "POST /v1/models/{name}/versions/{version}/retire",
        "POST /v1/models/{name}/versions/{version}/restore",
        "PUT /v1/models/{name}/drift/settings",
        "POST /v1/audit/export",
        "POST /v1/feature-views/{name}/materialize",
    },
    "Auditor": READS | {"GET /v1/audit"},
    "Client": frozenset({"POST /v1/models/{name}/predict", "POST /v1/models/{name}/feedback"}),
}
# refusals of these routes are audited (who, what, why) like a refused decision
GUARDED_ROUTES: frozenset[str] = frozenset(
    {
        "POST /v1/approvals/{approval_id}/approve",
        "POST /v1/approvals/{approval_id}/reject",
        "POST /v1/models/{name}/rollback",
        "POST /v1/models/{name}/versions/{version}/retire",
    }
)
