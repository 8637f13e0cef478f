"""Least privilege as a test: the exact IAM actions each Lambda function's role may use.

The table below was generated once from the synthesized template, reviewed, and frozen: a grant
that adds an action to a function fails here until the table (and its review) changes with it.
Besides the action sets, every statement is held to:
- no `Resource: "*"` except for actions AWS documents as having no resource-level permissions
  (RESOURCE_LESS), and then only on a policy whose cdk-nag IAM5 `Resource::*` finding is
  acknowledged with a reason;
- no wildcard actions (`s3:*`, `dynamodb:Get*`), no NotAction/NotResource on an Allow (explicit
  Deny statements only narrow, and are not counted);
- no S3 object grant on a whole bucket (`<bucket>/*`): object grants name a prefix;
- no AWS-managed policy, except on CDK's own bucket-notification handler.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from infra import constants as c
from stepwise.local.assembly import Assembly

Template = dict[str, Any]

_LOGS = {"logs:CreateLogStream", "logs:PutLogEvents"}
_XRAY = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
_BASE = _LOGS | _XRAY
# per-model alarms (functions/logic/model_alarms.py): alarm names under the stack's prefix only
_MODEL_ALARMS = {"cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"}
# per-view alarms (functions/logic/view_alarms.py): created and read, never deleted (views are not)
_VIEW_ALARMS = {"cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms"}
_LIFECYCLE_TABLES = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"}
_VALIDATION = {
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:PutObject",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:Query",
    "dynamodb:DeleteItem",
    "states:StartExecution",
    "states:DescribeExecution",
}

# function logical-id prefix -> the exact set of actions its role allows (all its policies)
EXPECTED_ACTIONS: dict[str, set[str]] = {
    "ApiFunction": _BASE
    | {
        "s3:ListBucket",  # health: HeadBucket
        "s3:GetObject",  # rollback verifies artifacts/models/* sha256; lineage reads captures, reports; imports/ HEAD
        "s3:GetObjectVersion",  # batch: the pinned version of the input (validated/, raw/)
        "s3:PutObject",  # governance: model cards under cards/ only (never models/); imports/: presigned uploads
        "s3:PutObjectTagging",  # governance: retired artifacts tagged for the colder storage class
        "dynamodb:DescribeTable",  # health
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:ConditionCheckItem",
        "states:StartExecution",  # POST /train, POST /batch
        "states:DescribeExecution",
        "states:SendTaskSuccess",  # approvals answer the waiting task
        "states:SendTaskFailure",
        "lambda:InvokeFunction",  # POST /drift, /audit/export, .../reproduce: those functions only
    }
    | _MODEL_ALARMS,  # rollback and retirement sync the model's alarms
    # registry GetItem; the online feature store: GetItem/BatchGetItem (that table only, see below)
    "InferenceFunction": _BASE | {"dynamodb:GetItem", "dynamodb:BatchGetItem", "s3:GetObject", "s3:PutObject"},
    "ApprovalFunction": _BASE
    | {"sns:Publish", "dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem"}
    | {"dynamodb:UpdateItem"}
    | {"ssm:GetParameter"},  # the console's URL (its stack's parameter), linked from the notification
    # the console user pool's pre-token trigger: the groups -> personas mapping is in its environment
    "PreTokenFunction": _BASE,
    "ReleaseFunction": _BASE
    | {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem", "cloudwatch:GetMetricData"}
    | {"s3:GetObject"}  # promote and canary verify artifacts/models/* sha256 before serving them
    | _MODEL_ALARMS,  # each release step syncs the model's alarms
    "TrainFunction": _BASE
    | _LIFECYCLE_TABLES
    | {"s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"}
    # the offline store's Athena join: its workgroup only, its Glue database's tables only, the
    # artifacts bucket listed under offline/ and work/athena/ only
    | {"athena:StartQueryExecution", "athena:GetQueryExecution", "athena:GetQueryResults", "athena:StopQueryExecution"}
    | {"glue:GetDatabase", "glue:GetTable", "glue:CreateTable", "glue:UpdateTable"}
    | {"s3:ListBucket", "s3:GetBucketLocation"},
    # evaluation writes the reference profile with the holdout outputs under models/; an import
    # run's VerifyImport reads imports/ (GetObject only) and copies the verified bytes to models/
    "EvaluateFunction": _BASE | _LIFECYCLE_TABLES | {"s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"},
    # registration writes the model card under models/ and reads the validation report
    "RegisterFunction": _BASE | _LIFECYCLE_TABLES | {"dynamodb:Query", "s3:GetObject", "s3:PutObject"},
    "RunRecordFunction": _BASE | _LIFECYCLE_TABLES,
    "ValidateFunction": _BASE
    | _VALIDATION
    | {"lambda:InvokeFunction"}  # a validated version announced to the materialization function
    | {"sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"},  # on-failure destination
    "ValidateChunksFunction": _BASE | _VALIDATION | {"lambda:InvokeFunction"},
    # materialization: reads source versions under validated/, writes the online table (UpdateItem
    # only, nothing else on it, and on nothing else: test_materialize_infra.py) and its run records
    # (PutItem), starts its own workflow
    "MaterializeFunction": _BASE
    | {"s3:GetObject", "s3:GetObjectVersion", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"}
    | {"dynamodb:UpdateItem"}
    | {"states:StartExecution", "states:DescribeExecution"}
    | _VIEW_ALARMS  # per-view alarms after a successful run, under the stack's view-alarm prefix
    | {"sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"},  # on-failure destination
    "DriftFunction": _BASE
    | {
        "s3:ListBucket",  # conditioned on captures/ and monitoring/ prefixes
        "s3:GetObject",
        "s3:PutObject",
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",  # idempotency records only (LeadingKeys idempotency#drift-check)
        "dynamodb:DeleteItem",
        "states:StartExecution",  # retraining
        "states:DescribeExecution",
        "sqs:SendMessage",  # on-failure destination
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
    },
    # governance: nightly audit export (gsi1 Query) into the Object Lock archive; Powertools
    # idempotency records of exported days (LeadingKeys idempotency#audit-export)
    "AuditExportFunction": _BASE
    | {"dynamodb:Query", "s3:PutObject", "sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"}
    | {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"},
    # governance: retrains a version from its records (reads validated/ and models/ only); its writes
    # are its reproduction records and their audit events (LeadingKeys REPRODUCE#*, AUDIT#*)
    "ReproduceFunction": _BASE
    | {"s3:GetObject", "s3:GetObjectVersion", "dynamodb:GetItem", "dynamodb:PutItem"}
    | {"sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"},  # on-failure destination
    # batch scoring (the training image): reads inputs under validated/ and raw/ and the job's ONNX
    # artifact under models/, writes parts, rejects and reports under predictions/ and capture samples
    # under captures/
    "BatchFunction": _BASE
    | {"s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "dynamodb:GetItem", "dynamodb:PutItem"},
    # CDK's singleton behind Custom::S3BucketNotifications (plus AWSLambdaBasicExecutionRole); the data
    # bucket is the stores stack's, so the handler reads its notifications to merge the compute stack's in
    "BucketNotificationsHandler": _XRAY | {"s3:PutBucketNotification", "s3:GetBucketNotification"},
}

# Actions with no resource-level permissions (Service Authorization Reference: resource types "-").
RESOURCE_LESS = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "cloudwatch:PutMetricData",
    "cloudwatch:GetMetricData",
}

# Every other role (state machines, SageMaker jobs): the Resource "*" grants reviewed and frozen.
# (role logical id without its hash, action); resource-less actions (RESOURCE_LESS, STATES_LOGS) aside.
STATES_LOGS = {  # Step Functions log delivery and X-Ray: no resource-level permissions
    "logs:CreateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:DescribeLogGroups",
    "logs:DescribeResourcePolicies",
    "logs:GetLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:UpdateLogDelivery",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
}
REVIEWED_STAR_GRANTS = {
    # (The SageMaker training role has no "*" grant: the workflow task gets it as an immutable role,
    # so CDK's grants for the JSON-path input channel are not added; infra/constructs/lifecycle.py.)
    ("LifecycleStateMachineRole", "sagemaker:ListTags"),  # CDK's training-job task grant
}

MANAGED_POLICY_ALLOWED = {"BucketNotificationsHandler": {"AWSLambdaBasicExecutionRole"}}


# -- reading the template ---------------------------------------------------------------------
def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _role_of(function: dict[str, Any]) -> str:
    role = function["Properties"]["Role"]
    assert isinstance(role, dict) and "Fn::GetAtt" in role, role
    return str(role["Fn::GetAtt"][0])


def function_roles(template: Template) -> dict[str, str]:
    """Lambda function logical id -> its role's logical id."""
    return {lid: _role_of(r) for lid, r in template["Resources"].items() if r["Type"] == "AWS::Lambda::Function"}


def role_statements(template: Template, role: str) -> list[tuple[str, dict[str, Any]]]:
    """(policy logical id, statement) for every statement attached to the role: its inline
    policies and every AWS::IAM::Policy that lists it."""
    resources = template["Resources"]
    out: list[tuple[str, dict[str, Any]]] = []
    for policy in resources[role]["Properties"].get("Policies", []):
        out += [(role, s) for s in _as_list(policy["PolicyDocument"]["Statement"])]
    for lid, res in resources.items():
        if res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            roles = res["Properties"].get("Roles", [])
            if {"Ref": role} in roles:
                out += [(lid, s) for s in _as_list(res["Properties"]["PolicyDocument"]["Statement"])]
    return out


def _prefix_of(logical_id: str) -> str | None:
    matches = [p for p in EXPECTED_ACTIONS if logical_id.startswith(p)]
    return max(matches, key=len) if matches else None  # ValidateChunksFunction before ValidateFunction


def _acknowledged_star_policies(report: dict[str, Any]) -> dict[str, str]:
    """cdk path of each policy whose AwsSolutions-IAM5 Resource::* finding is acknowledged -> the reason."""
    reasons: dict[str, str] = {}
    for plugin in report["pluginReports"]:
        for suppressed in plugin.get("suppressedViolations", []):
            if suppressed["ruleName"] == "AwsSolutions-IAM5[Resource::*]" and suppressed["reason"].strip():
                reasons |= {v["constructPath"]: suppressed["reason"] for v in suppressed["violatingConstructs"]}
    return reasons


def _is_bucket_wide(resource: Any) -> bool:
    """`<bucket arn>/*` (every object) rather than `<bucket arn>/<prefix>*`."""
    if isinstance(resource, dict) and "Fn::Join" in resource:
        parts = resource["Fn::Join"][1]
        if len(parts) == 2 and isinstance(parts[1], str):
            head = parts[0]
            is_bucket = isinstance(head, dict) and "Bucket" in json.dumps(head)
            return is_bucket and parts[1] == "/*"
    return False


def check_least_privilege(template: Template, acknowledged_star: dict[str, str], paths: dict[str, str]) -> list[str]:
    """Every difference from the frozen table and every rule broken, as readable lines."""
    problems: list[str] = []
    resources = template["Resources"]
    seen: set[str] = set()
    for function, role in sorted(function_roles(template).items()):
        prefix = _prefix_of(function)
        if prefix is None:
            problems.append(f"{function}: no row in EXPECTED_ACTIONS (a new function needs a reviewed row)")
            continue
        seen.add(prefix)
        actions: set[str] = set()
        for policy, statement in role_statements(template, role):
            where = f"{function} ({policy})"
            if statement.get("Effect") == "Deny":
                continue  # an explicit deny only narrows (e.g. no UpdateItem on AUDIT# items)
            if statement.get("Effect") != "Allow" or "NotAction" in statement or "NotResource" in statement:
                problems.append(f"{where}: only plain Allow statements are expected: {statement}")
                continue
            stmt_actions = {str(a) for a in _as_list(statement["Action"])}
            actions |= stmt_actions
            problems += [f"{where}: wildcard action {a}" for a in sorted(stmt_actions) if "*" in a]
            stmt_resources = _as_list(statement["Resource"])
            if "*" in stmt_resources:
                wide = stmt_actions - RESOURCE_LESS
                if wide:
                    problems.append(f"{where}: Resource '*' for {sorted(wide)} (they support resource-level scoping)")
                path = paths.get(policy)
                if path not in acknowledged_star:
                    problems.append(f"{where}: Resource '*' without a cdk-nag IAM5[Resource::*] acknowledgment")
                else:  # the reason must say why for each action, not only for X-Ray
                    unexplained = sorted(a for a in stmt_actions if a.split(":")[-1] not in acknowledged_star[path])
                    if unexplained:
                        problems.append(
                            f"{where}: the Resource '*' acknowledgment's reason does not name {unexplained}"
                        )
            problems += [
                f"{where}: {sorted(stmt_actions)} on a whole bucket" for r in stmt_resources if _is_bucket_wide(r)
            ]
        expected = EXPECTED_ACTIONS[prefix]
        if actions != expected:
            problems.append(
                f"{function}: actions differ from the reviewed table: added {sorted(actions - expected)}, "
                f"removed {sorted(expected - actions)}"
            )
        managed = resources[role]["Properties"].get("ManagedPolicyArns", [])
        names = {json.dumps(m).rsplit("/", 1)[-1].strip('"]} ') for m in managed}
        if names - MANAGED_POLICY_ALLOWED.get(prefix, set()):
            problems.append(f"{function}: AWS-managed policies {sorted(names)}")
    problems += [f"{p}: row for a function that is not in the template" for p in sorted(set(EXPECTED_ACTIONS) - seen)]
    return problems


# -- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def star_acknowledged(assembly: Assembly) -> dict[str, str]:
    return _acknowledged_star_policies(json.loads((assembly.outdir / "validation-report.json").read_text()))


@pytest.fixture(scope="module")
def policy_paths(assembly: Assembly) -> dict[str, str]:
    """logical id -> construct path, from the stack's metadata file (aws:cdk:logicalId entries)."""
    metadata = json.loads((assembly.outdir / f"{assembly.stack_name}.metadata.json").read_text())
    return {
        entry["data"]: path.lstrip("/")
        for path, entries in metadata.items()
        for entry in entries
        if entry["type"] == "aws:cdk:logicalId"
    }


# -- tests ----------------------------------------------------------------------------------------
def test_function_roles_allow_exactly_the_reviewed_actions(
    assembly: Assembly, star_acknowledged: dict[str, str], policy_paths: dict[str, str]
) -> None:
    # Given the synthesized template and cdk-nag's report
    # When every function role's statements are compared with the reviewed table
    problems = check_least_privilege(assembly.template, star_acknowledged, policy_paths)
    # Then nothing differs and no rule is broken
    assert problems == [], "\n".join(problems)


def test_function_roles_every_star_resource_is_resource_less_and_acknowledged(
    assembly: Assembly, star_acknowledged: dict[str, str], policy_paths: dict[str, str]
) -> None:
    # Given every statement of every function role that uses Resource "*"
    stars = [
        (policy, statement)
        for role in function_roles(assembly.template).values()
        for policy, statement in role_statements(assembly.template, role)
        if "*" in _as_list(statement["Resource"])
    ]
    # Then there are some (X-Ray), each names only resource-less actions, each is acknowledged
    assert stars
    for policy, statement in stars:
        assert set(_as_list(statement["Action"])) <= RESOURCE_LESS, statement
        assert policy_paths.get(policy) in star_acknowledged, policy


def test_least_privilege_check_catches_an_added_action(
    assembly: Assembly, star_acknowledged: dict[str, str], policy_paths: dict[str, str]
) -> None:
    # Given a copy of the template where the inference role also gets s3:DeleteObject on its prefix
    widened = copy.deepcopy(assembly.template)
    role = function_roles(widened)[_one(widened, "InferenceFunction")]
    _, statement = next((p, s) for p, s in role_statements(widened, role) if "s3:GetObject" in _as_list(s["Action"]))
    statement["Action"] = [*_as_list(statement["Action"]), "s3:DeleteObject"]
    # When the check runs
    problems = check_least_privilege(widened, star_acknowledged, policy_paths)
    # Then it names the function and the added action
    assert any("InferenceFunction" in p and "s3:DeleteObject" in p for p in problems), problems


def test_least_privilege_check_catches_a_star_resource_and_a_wildcard_action(
    assembly: Assembly, star_acknowledged: dict[str, str], policy_paths: dict[str, str]
) -> None:
    # Given a copy where the API function's registry read becomes Resource "*", and another where
    # the drift function's S3 read becomes s3:Get* on the whole artifacts bucket
    star = copy.deepcopy(assembly.template)
    role = function_roles(star)[_one(star, "ApiFunction")]
    _, statement = next(
        (p, s) for p, s in role_statements(star, role) if "dynamodb:DescribeTable" in _as_list(s["Action"])
    )
    statement["Resource"] = "*"
    wildcard = copy.deepcopy(assembly.template)
    role = function_roles(wildcard)[_one(wildcard, "DriftFunction")]
    _, statement = next((p, s) for p, s in role_statements(wildcard, role) if _as_list(s["Action"]) == ["s3:GetObject"])
    bucket = json.dumps(statement["Resource"])
    statement["Action"] = "s3:Get*"
    statement["Resource"] = {"Fn::Join": ["", [json.loads(bucket)["Fn::Join"][1][0], "/*"]]}
    # When the check runs on each
    star_problems = check_least_privilege(star, star_acknowledged, policy_paths)
    wildcard_problems = check_least_privilege(wildcard, star_acknowledged, policy_paths)
    # Then both are caught
    assert any("Resource '*' for ['dynamodb:DescribeTable']" in p for p in star_problems), star_problems
    assert any("wildcard action s3:Get*" in p for p in wildcard_problems), wildcard_problems
    assert any("whole bucket" in p for p in wildcard_problems), wildcard_problems


def test_least_privilege_check_catches_a_function_without_a_reviewed_row(
    assembly: Assembly, star_acknowledged: dict[str, str], policy_paths: dict[str, str]
) -> None:
    # Given a copy with one more function (the inference function's twin under a new name)
    grown = copy.deepcopy(assembly.template)
    original = _one(grown, "InferenceFunction")
    grown["Resources"]["ShadowScorer1234ABCD"] = copy.deepcopy(grown["Resources"][original])
    # When the check runs
    problems = check_least_privilege(grown, star_acknowledged, policy_paths)
    # Then the new function needs a row
    assert any(p.startswith("ShadowScorer1234ABCD: no row") for p in problems), problems


def _one(template: Template, prefix: str) -> str:
    found = [lid for lid in function_roles(template) if _prefix_of(lid) == prefix]
    assert len(found) == 1, (prefix, found)
    return found[0]


def star_grants_outside_functions(template: Template) -> set[tuple[str, str]]:
    """(role logical id without its hash, action) for each Allow on Resource "*" given to a role
    that is not a Lambda function's, resource-less actions aside."""
    resources = template["Resources"]
    function_role_ids = set(function_roles(template).values())
    grants: set[tuple[str, str]] = set()
    for res in resources.values():
        if res["Type"] not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            continue
        roles = [r["Ref"] for r in res["Properties"].get("Roles", []) if isinstance(r, dict) and "Ref" in r]
        for role in roles:
            if role in function_role_ids:
                continue
            for statement in _as_list(res["Properties"]["PolicyDocument"]["Statement"]):
                if statement.get("Effect") == "Allow" and "*" in _as_list(statement.get("Resource", [])):
                    for action in _as_list(statement["Action"]):
                        if action not in RESOURCE_LESS | STATES_LOGS:
                            grants.add((role[:-8], str(action)))
    return grants


def test_other_roles_star_grants_are_the_reviewed_ones(assembly: Assembly) -> None:
    # Given every role that is not a function's (state machines, SageMaker training jobs)
    # When their Resource "*" grants are collected
    grants = star_grants_outside_functions(assembly.template)
    # Then they are exactly the reviewed ones: a new "*" grant fails here
    assert grants == REVIEWED_STAR_GRANTS, (
        f"new: {sorted(grants - REVIEWED_STAR_GRANTS)}, gone: {sorted(REVIEWED_STAR_GRANTS - grants)}"
    )


def test_other_roles_star_check_catches_a_new_star_grant(assembly: Assembly) -> None:
    # Given a copy where the lifecycle state machine may also read every S3 object
    widened = copy.deepcopy(assembly.template)
    policy = next(
        res
        for lid, res in widened["Resources"].items()
        if res["Type"] == "AWS::IAM::Policy" and lid.startswith("LifecycleStateMachineRoleDefaultPolicy")
    )
    policy["Properties"]["PolicyDocument"]["Statement"].append(
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}
    )
    # When the grants are collected
    grants = star_grants_outside_functions(widened)
    # Then the new one is there
    assert ("LifecycleStateMachineRole", "s3:GetObject") in grants - REVIEWED_STAR_GRANTS


# The drift fleet's state machine (infra/constructs/drift_fleet.py): it invokes the drift function
# and dead-letters a model's failed check; besides, only Step Functions' log delivery and X-Ray.
DRIFT_FLEET_ACTIONS = {"lambda:InvokeFunction", "sqs:SendMessage"}


def test_drift_fleet_role_allows_exactly_invoking_the_drift_function_and_dead_lettering(assembly: Assembly) -> None:
    template = assembly.template
    (role,) = [
        lid
        for lid, res in template["Resources"].items()
        if res["Type"] == "AWS::IAM::Role" and lid.startswith("MonitoringFleetStateMachineRole")
    ]
    allowed = [s for _, s in role_statements(template, role) if s.get("Effect") == "Allow"]
    scoped = {str(a) for s in allowed if "*" not in _as_list(s["Resource"]) for a in _as_list(s["Action"])}
    assert scoped == DRIFT_FLEET_ACTIONS
    unscoped = {str(a) for s in allowed if "*" in _as_list(s["Resource"]) for a in _as_list(s["Action"])}
    assert unscoped <= STATES_LOGS | _XRAY
    drift = next(lid for lid in function_roles(template) if lid.startswith("DriftFunction"))
    invoke = [s for s in allowed if "lambda:InvokeFunction" in _as_list(s["Action"])]
    assert all(drift in json.dumps(s["Resource"]) for s in invoke)


# Per-model alarms: the API and release functions (and no other) may put, read and delete alarms,
# only those named with the stack's model-alarm prefix, which their environment carries.
MODEL_ALARM_FUNCTIONS = {"ApiFunction", "ReleaseFunction"}


def _alarm_arn(prefix: str) -> dict[str, Any]:
    return {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":cloudwatch:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                f":alarm:{prefix}*",
            ],
        ]
    }


def test_model_alarm_grants_are_scoped_to_the_stack_alarm_prefix(assembly: Assembly) -> None:
    template = assembly.template
    prefix = f"{c.STACK_NAME}-model-"
    arn = _alarm_arn(prefix)
    view_arn = _alarm_arn(f"{c.STACK_NAME}-view-")
    granted: set[str] = set()
    for function, role in function_roles(template).items():
        statements = [s for _, s in role_statements(template, role) if s.get("Effect") == "Allow"]
        alarm = [
            s
            for s in statements
            if set(map(str, _as_list(s["Action"]))) & _MODEL_ALARMS and _as_list(s["Resource"]) != [view_arn]
        ]
        if not alarm:
            continue
        granted.add(str(_prefix_of(function)))
        assert [(set(_as_list(s["Action"])), _as_list(s["Resource"])) for s in alarm] == [(_MODEL_ALARMS, [arn])]
        env = template["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert env[c.ENV_MODEL_ALARM_PREFIX] == prefix
        assert "Ref" in env[c.ENV_ALARM_TOPIC_ARN] or "Fn::ImportValue" in env[c.ENV_ALARM_TOPIC_ARN]
    assert granted == MODEL_ALARM_FUNCTIONS


# Per-view alarms: the materialization function (and no other) may put and read alarms, only those
# named with the stack's view-alarm prefix, which its environment carries with the alarm settings.
VIEW_ALARM_FUNCTIONS = {"MaterializeFunction"}


def test_view_alarm_grants_are_scoped_to_the_stack_view_alarm_prefix(assembly: Assembly) -> None:
    template = assembly.template
    prefix = f"{c.STACK_NAME}-view-"
    arn = _alarm_arn(prefix)
    granted: set[str] = set()
    for function, role in function_roles(template).items():
        statements = [s for _, s in role_statements(template, role) if s.get("Effect") == "Allow"]
        alarm = [s for s in statements if arn in _as_list(s["Resource"])]
        if not alarm:
            continue
        granted.add(str(_prefix_of(function)))
        assert [(set(_as_list(s["Action"])), _as_list(s["Resource"])) for s in alarm] == [(_VIEW_ALARMS, [arn])]
        env = template["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert env[c.ENV_VIEW_ALARM_PREFIX] == prefix
        assert "Ref" in env[c.ENV_ALARM_TOPIC_ARN] or "Fn::ImportValue" in env[c.ENV_ALARM_TOPIC_ARN]
        assert env[c.ENV_ONLINE_FRESHNESS_ALARM_SECONDS] == str(2 * 24 * 3600)
        assert env[c.ENV_LOOKUP_MISS_ALARM_PERCENT] == "20"
    assert granted == VIEW_ALARM_FUNCTIONS


def test_inference_role_reads_the_online_store_with_exactly_get_and_batch_get(assembly: Assembly) -> None:
    # Given the synthesized template
    template = assembly.template
    online_reads: dict[str, list[dict[str, Any]]] = {}
    for function, role in function_roles(template).items():
        statements = [s for _, s in role_statements(template, role) if s.get("Effect") == "Allow"]
        touching = [s for s in statements if c.ONLINE_STORE_ID in json.dumps(s["Resource"])]
        if touching or any("dynamodb:BatchGetItem" in _as_list(s["Action"]) for s in statements):
            online_reads[str(_prefix_of(function))] = touching
    # Then only the inference function reads the online store (BatchGetItem appears nowhere else),
    # with one statement: GetItem and BatchGetItem on that table alone; the only other role that
    # touches it is the materialization function's, which writes (UpdateItem only, tested with it)
    assert sorted(online_reads) == ["InferenceFunction", "MaterializeFunction"], online_reads
    (write,) = online_reads["MaterializeFunction"]
    assert _as_list(write["Action"]) == ["dynamodb:UpdateItem"]
    (statement,) = online_reads["InferenceFunction"]
    assert set(_as_list(statement["Action"])) == {"dynamodb:GetItem", "dynamodb:BatchGetItem"}
    (resource,) = _as_list(statement["Resource"])
    assert c.ONLINE_STORE_ID in json.dumps(resource) and "/index" not in json.dumps(resource)
    # And its environment names the table
    inference = next(lid for lid in function_roles(template) if lid.startswith("InferenceFunction"))
    env = template["Resources"][inference]["Properties"]["Environment"]["Variables"]
    assert c.ONLINE_STORE_ID in json.dumps(env[c.ENV_ONLINE_TABLE])
