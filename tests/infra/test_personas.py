"""Separation of duties as a test: every persona's managed policy (infra/constructs/personas.py),
evaluated against every API route of the synthesized template and a sample of S3 requests, must
give exactly the access the matrix below declares. A route the template gains without a matrix
entry fails here, and so does a policy widened beyond its row.

The evaluator (stepwise/local/policy.py, which the local cloud's --strict-auth uses too) is small
and says what it models: Allow and Deny statements, Action/NotAction and Resource/NotResource with
IAM's wildcards. It does not model conditions (it refuses a statement that has one), policy
variables, permission boundaries, SCPs, session policies, resource policies (the API has none;
bucket policies only deny non-TLS) or the other policies a role may carry.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from infra import constants as c
from stepwise.local import policy
from stepwise.local.assembly import Assembly
from stepwise.local.policy import NotModeled, allowed, as_list

Template = dict[str, Any]
PERSONAS = ("DataProducer", "DataScientist", "Approver", "Operator", "Auditor", "Client")
P, S, A, OP, AU, CL = PERSONAS
READERS = {S, A, OP, AU}  # every persona that reads the registry
DATA_READERS = READERS | {P}

# route -> the personas allowed to call it (the declared separation of duties)
MATRIX: dict[str, set[str]] = {
    "GET /v1/health": DATA_READERS,
    "GET /v1/openapi.json": DATA_READERS,
    "GET /v1/datasets": DATA_READERS,
    "GET /v1/datasets/{name}": DATA_READERS,
    "GET /v1/datasets/{name}/contract": DATA_READERS,
    "GET /v1/datasets/{name}/contracts": DATA_READERS,
    "GET /v1/datasets/{name}/versions": DATA_READERS,
    "GET /v1/datasets/{name}/versions/{version}": DATA_READERS,
    "GET /v1/datasets/{name}/reports": DATA_READERS,
    "PUT /v1/datasets/{name}/contract": {S},
    "GET /v1/models": READERS,
    "GET /v1/models/{name}/versions": READERS,
    "GET /v1/models/{name}/versions/{version}": READERS,
    "GET /v1/models/{name}/versions/{version}/card": READERS,
    "GET /v1/models/{name}/versions/{version}/lineage": READERS,
    "GET /v1/models/{name}/versions/{version}/reproduce": READERS,
    "GET /v1/models/{name}/runs": READERS,
    "GET /v1/models/{name}/drift/settings": READERS,
    "GET /v1/drift/rounds": READERS,
    "GET /v1/models/{name}/drift/checks": READERS,
    "GET /v1/models/{name}/drift/checks/{check_id}": READERS,
    "GET /v1/explain/{request_id}": READERS,
    "GET /v1/specs/{name}": READERS,
    "GET /v1/feature-views": READERS,
    "GET /v1/feature-views/{name}": READERS,
    "GET /v1/feature-views/{name}/materializations": READERS,
    "GET /v1/feature-views/{name}/materializations/{materialization_id}": READERS,
    "POST /v1/feature-views/{name}/materialize": {S, OP},
    "GET /v1/approvals": READERS,
    "GET /v1/approvals/{approval_id}": READERS,
    "GET /v1/models/{name}/batch": READERS,
    "GET /v1/models/{name}/batch/{job}": READERS,
    "GET /v1/models/{name}/batch/{job}/rows/{row}": READERS,
    "POST /v1/models/{name}/batch": {S, OP},
    "PUT /v1/specs/{name}": {S},
    "PUT /v1/feature-views/{name}": {S},
    "POST /v1/models/{name}/train": {S},
    "POST /v1/models/{name}/imports/upload": {S},
    "POST /v1/models/{name}/imports": {S},
    "POST /v1/models/{name}/drift": {S},
    "POST /v1/models/{name}/versions/{version}/reproduce": {S},
    "POST /v1/approvals/{approval_id}/approve": {A},
    "POST /v1/approvals/{approval_id}/reject": {A},
    "POST /v1/models/{name}/rollback": {OP},
    "POST /v1/models/{name}/versions/{version}/retire": {OP},
    "POST /v1/models/{name}/versions/{version}/restore": {OP},
    "PUT /v1/models/{name}/drift/settings": {OP},
    "POST /v1/audit/export": {OP},
    "GET /v1/audit": {AU},
    "POST /v1/models/{name}/predict": {CL},
    "POST /v1/models/{name}/feedback": {CL},
}
# (action, bucket output, key) -> the personas allowed; a sample of each prefix and its neighbours
OBJECTS: dict[tuple[str, str, str], set[str]] = {
    ("s3:PutObject", c.OUT_DATA_BUCKET, "raw/churn/2026-11.parquet"): {P},
    ("s3:PutObject", c.OUT_DATA_BUCKET, "validated/churn/1.parquet"): set(),
    ("s3:PutObject", c.OUT_DATA_BUCKET, "quarantine/churn/x.parquet"): set(),
    ("s3:GetObject", c.OUT_DATA_BUCKET, "raw/churn/2026-11.parquet"): set(),
    ("s3:GetObject", c.OUT_DATA_BUCKET, "captures/churn/1/part.jsonl.gz"): set(),
    ("s3:DeleteObject", c.OUT_DATA_BUCKET, "raw/churn/2026-11.parquet"): set(),
    ("s3:GetObject", c.OUT_ARTIFACTS_BUCKET, "reports/validation/churn/v1.json"): {P, S, A, OP, AU},
    ("s3:GetObject", c.OUT_ARTIFACTS_BUCKET, "reports/drift/churn/report.html"): {S, A, OP, AU},
    ("s3:GetObject", c.OUT_ARTIFACTS_BUCKET, "models/churn/1/model.onnx"): set(),
    ("s3:GetObject", c.OUT_DATA_BUCKET, "predictions/churn/0123456789abcdef0123/_manifest.json"): {S, OP},
    ("s3:PutObject", c.OUT_DATA_BUCKET, "predictions/churn/0123456789abcdef0123/_manifest.json"): set(),
    ("s3:PutObject", c.OUT_ARTIFACTS_BUCKET, "reports/validation/churn/v1.json"): set(),
    ("s3:GetObject", c.OUT_AUDIT_ARCHIVE_BUCKET, "audit/2026/11/26/events.parquet"): {AU},
    ("s3:PutObject", c.OUT_AUDIT_ARCHIVE_BUCKET, "audit/2026/11/26/events.parquet"): set(),
}
SAMPLE_PARAMS = {
    "name": "churn",
    "version": "7",
    "approval_id": "churn-7",
    "check_id": "abc123",
    "materialization_id": "0123456789abcdef0123",
    "request_id": "req-1",
    "job": "0123456789abcdef0123",
    "row": "c1",
}


# -- the template ---------------------------------------------------------------------------------
def template_routes(template: Template) -> dict[str, str]:
    """'METHOD /path/{param}' of every API Gateway method -> its REST API's logical id."""
    resources = template["Resources"]

    def path_of(ref: Any) -> str:
        if isinstance(ref, dict) and ref.get("Ref") in resources:
            props = resources[ref["Ref"]]["Properties"]
            return path_of(props["ParentId"]).rstrip("/") + "/" + props["PathPart"]
        return "/"

    return {
        f"{r['Properties']['HttpMethod']} {path_of(r['Properties']['ResourceId'])}": r["Properties"]["RestApiId"]["Ref"]
        for r in resources.values()
        if r["Type"] == "AWS::ApiGateway::Method" and r["Properties"]["HttpMethod"] != "OPTIONS"
    }


def persona_statements(template: Template) -> dict[str, list[dict[str, Any]]]:
    out = policy.persona_statements(template)
    for name, output in template["Outputs"].items():
        if name.startswith(c.OUT_PERSONA_POLICY_PREFIX):
            assert template["Resources"][output["Value"]["Ref"]]["Type"] == "AWS::IAM::ManagedPolicy", name
    return out


def route_arn(api: str, route: str) -> str:
    method, path = route.split(" ", 1)
    return policy.invoke_arn(api, method, re.sub(r"\{(\w+)\}", lambda m: SAMPLE_PARAMS[m.group(1)], path))


def object_arn(template: Template, bucket_output: str, key: str) -> str:
    return f"arn-of:<{template['Outputs'][bucket_output]['Value']['Ref']}>/{key}"


def check_personas(template: Template) -> list[str]:
    """Every difference between the evaluated policies and the declared matrices, as lines."""
    problems: list[str] = []
    policies = persona_statements(template)
    if set(policies) != set(PERSONAS):
        problems.append(f"persona policies {sorted(policies)}, declared {sorted(PERSONAS)}")
    routes = template_routes(template)
    problems += [
        f"{r}: a route without a matrix entry (declare who may call it)" for r in sorted(set(routes) - set(MATRIX))
    ]
    problems += [
        f"{r}: a matrix entry for a route the template does not have" for r in sorted(set(MATRIX) - set(routes))
    ]
    for route, api in sorted(routes.items()):
        for persona, statements in sorted(policies.items()):
            got = allowed(statements, "execute-api:Invoke", route_arn(api, route))
            if got != (persona in MATRIX.get(route, set())):
                problems.append(f"{persona} {'may' if got else 'may not'} call {route}")
    for (action, bucket, key), who in sorted(OBJECTS.items()):
        for persona, statements in sorted(policies.items()):
            got = allowed(statements, action, object_arn(template, bucket, key))
            if got != (persona in who):
                problems.append(f"{persona} {'may' if got else 'may not'} {action} {bucket}/{key}")
    return problems


# -- tests ----------------------------------------------------------------------------------------
def test_personas_are_kept_to_their_routes_and_prefixes(assembly: Assembly) -> None:
    # Given the synthesized template's persona policies and every route of its API
    # When each persona's policy is evaluated against each route and each sample object request
    problems = check_personas(assembly.template)
    # Then each allows exactly what the matrices declare
    assert problems == [], "\n".join(problems)


def test_personas_policies_allow_exactly_the_reviewed_actions(assembly: Assembly) -> None:
    policies = persona_statements(assembly.template)
    actions = {
        persona: {str(a) for s in statements for a in as_list(s["Action"])} for persona, statements in policies.items()
    }
    invoke, read = {"execute-api:Invoke"}, {"execute-api:Invoke", "s3:GetObject"}
    assert actions == {P: read | {"s3:PutObject"}, S: read, A: read, OP: read, AU: read, CL: invoke}
    assert all(s["Effect"] == "Allow" and "Condition" not in s for st in policies.values() for s in st)


def test_personas_check_catches_a_widened_policy(assembly: Assembly) -> None:
    # Given a copy where the client's policy names every POST route under /v1/models
    widened = copy.deepcopy(assembly.template)
    client = widened["Resources"][widened["Outputs"][f"{c.OUT_PERSONA_POLICY_PREFIX}{CL}"]["Value"]["Ref"]]
    invoke = client["Properties"]["PolicyDocument"]["Statement"][0]
    first = invoke["Resource"][0]
    invoke["Resource"].append({"Fn::Join": ["", [*first["Fn::Join"][1][:-1], "/prod/POST/v1/models/*"]]})
    # When the check runs, Then it names the routes the client may now call
    problems = check_personas(widened)
    assert "Client may call POST /v1/models/{name}/rollback" in problems, problems
    assert "Client may call POST /v1/models/{name}/versions/{version}/retire" in problems, problems


def test_personas_check_catches_a_route_without_a_matrix_entry(assembly: Assembly) -> None:
    # Given a copy with one more method (DELETE on the spec resource)
    grown = copy.deepcopy(assembly.template)
    method = next(
        lid
        for lid, r in grown["Resources"].items()
        if r["Type"] == "AWS::ApiGateway::Method" and r["Properties"]["HttpMethod"] == "PUT"
    )
    extra = copy.deepcopy(grown["Resources"][method])
    extra["Properties"]["HttpMethod"] = "DELETE"
    grown["Resources"]["ShadowDelete1234"] = extra
    # When the check runs, Then the new route needs an entry
    problems = check_personas(grown)
    assert any(p.startswith("DELETE ") and "without a matrix entry" in p for p in problems), problems


def test_personas_evaluator_deny_wins_and_conditions_are_refused() -> None:
    allow = {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "arn:x/prod/*"}
    deny = {"Effect": "Deny", "Action": "execute-api:*", "Resource": "arn:x/prod/POST/*"}
    assert allowed([allow, deny], "execute-api:Invoke", "arn:x/prod/GET/v1/models")
    assert not allowed([allow, deny], "execute-api:Invoke", "arn:x/prod/POST/v1/models/a/rollback")
    assert not allowed([], "execute-api:Invoke", "arn:x/prod/GET/v1/models")  # implicit deny
    assert allowed([{**allow, "Action": "EXECUTE-API:invoke"}], "execute-api:Invoke", "arn:x/prod/GET/a")
    assert not allowed([{**allow, "Resource": "arn:x/prod/GET/?"}], "execute-api:Invoke", "arn:x/prod/GET/ab")
    with pytest.raises(NotModeled):
        allowed(
            [{**allow, "Condition": {"Bool": {"aws:SecureTransport": "true"}}}], "execute-api:Invoke", "arn:x/prod/a"
        )


def test_personas_setting_attaches_policies_to_the_given_roles(tmp_path_factory: pytest.TempPathFactory) -> None:
    from stepwise.local.assembly import synthesize

    role = "arn:aws:iam::123456789012:role/MLOpsApprovers"
    attached = synthesize(tmp_path_factory.mktemp("cdk.out.personas"), context={"stepwise:persona_roles": {A: [role]}})
    template = attached.template
    approver = template["Resources"][template["Outputs"][f"{c.OUT_PERSONA_POLICY_PREFIX}{A}"]["Value"]["Ref"]]
    assert approver["Properties"]["Roles"] == ["MLOpsApprovers"]
    others = [
        template["Resources"][o["Value"]["Ref"]]
        for n, o in template["Outputs"].items()
        if n.startswith(c.OUT_PERSONA_POLICY_PREFIX) and not n.endswith(A)
    ]
    assert all("Roles" not in p["Properties"] for p in others)


def test_personas_refused_decisions_alarm_notifies_the_monitoring_topic(assembly: Assembly) -> None:
    alarms = [
        r["Properties"]
        for r in assembly.template["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"].get("MetricName") == c.REFUSED_DECISIONS_METRIC
    ]
    (alarm,) = alarms
    assert (alarm["Namespace"], alarm["Statistic"], alarm["Period"], alarm["Threshold"]) == ("Stepwise", "Sum", 300, 5)
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "stepwise"}] and alarm["AlarmActions"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("approvers", "bob"),
        ("trusted_session_roles", "not a role/name"),
        ("persona_roles", {"Approver": ["arn:aws:iam::123456789012:user/bob"]}),
        ("persona_groups", {"Approver": ["leads"]}),  # Cognito groups without the user pool
        ("persona_groups", {"Approver": ["not a group"]}),
    ],
)
def test_personas_settings_refuse_bad_values_naming_the_setting(field: str, value: Any) -> None:
    from pydantic import ValidationError

    from infra.config import StackConfig

    with pytest.raises(ValidationError, match=field):
        StackConfig.model_validate({field: value, "console": False})  # the console brings its own user pool


POOL = "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_AbCdEf123"


def test_personas_groups_setting_refuses_an_unknown_persona() -> None:
    from pydantic import ValidationError

    from infra.config import StackConfig

    with pytest.raises(ValidationError, match="persona_groups names unknown personas"):
        StackConfig.model_validate({"cognito_user_pool_arn": POOL, "persona_groups": {"Boss": ["leads"]}})


def test_personas_groups_setting_from_the_command_line_is_json() -> None:
    from infra.config import StackConfig

    # Given -c stepwise:persona_groups='{...}' (the CDK CLI passes a string)
    config = StackConfig.model_validate({"cognito_user_pool_arn": POOL, "persona_groups": '{"Approver": ["leads"]}'})
    assert config.persona_groups == {"Approver": ("leads",)}


def test_personas_groups_runtime_routes_are_the_policies_routes() -> None:
    # Given the routes the API function holds a Cognito caller's personas to (functions never import infra)
    from functions.models import personas as runtime
    from infra.constructs.personas import PERSONA_ROUTES

    # Then they are the policies' routes, and the declared matrix's, persona by persona
    assert {p: frozenset(f"{m} {path}" for m, path in r) for p, r in PERSONA_ROUTES.items()} == runtime.PERSONA_ROUTES
    assert {p: frozenset(r for r, who in MATRIX.items() if p in who) for p in PERSONAS} == runtime.PERSONA_ROUTES


def test_personas_groups_setting_reaches_the_api_function(tmp_path_factory: pytest.TempPathFactory) -> None:
    import json

    from stepwise.local.assembly import synthesize

    groups = {A: ["leads", "approvers"], AU: ["audit"]}
    context = {"stepwise:cognito_user_pool_arn": POOL, "stepwise:persona_groups": groups, "stepwise:console": False}
    template = synthesize(tmp_path_factory.mktemp("cdk.out.groups"), context=context).template
    envs = [
        r["Properties"]["Environment"]["Variables"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
        and c.ENV_PERSONA_GROUPS in r["Properties"].get("Environment", {}).get("Variables", {})
    ]
    # Then the control API function, and only it, holds the mapping
    (env,) = envs
    assert json.loads(env[c.ENV_PERSONA_GROUPS]) == groups
