"""Separation of duties: one customer-managed IAM policy per persona, each naming the exact API
routes (`execute-api:Invoke` on the route ARNs) and S3 prefixes the persona needs (README
"Security model"). An admin attaches them to the people's roles (or lets the stack do it, setting
`persona_roles`); tests/infra/test_personas.py evaluates them against every route of the template.

Route ARNs put `*` where a route has a path parameter: IAM matches `*` across `/`, so a persona
given `GET /v1/models/{name}/versions/{version}` could also call every longer GET route under it.
The persona route sets are built so that no grant reaches a route the persona does not have
(reads are granted as a whole), and the test proves it route by route.

KMS: the stack's key policy lets the account's principals use the key through S3 (kms:ViaService),
so a persona that may read or write an object needs no KMS grant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra import constants as c
from infra.grants import logical_arn
from infra.nag import acknowledge

Route = tuple[str, str]  # (METHOD, /path/{param})
_IAM5 = "AwsSolutions::AwsSolutions-IAM5"

DATASET_READS: tuple[Route, ...] = (
    ("GET", "/v1/health"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/v1/datasets"),
    ("GET", "/v1/datasets/{name}"),
    ("GET", "/v1/datasets/{name}/contract"),
    ("GET", "/v1/datasets/{name}/contracts"),
    ("GET", "/v1/datasets/{name}/versions"),
    ("GET", "/v1/datasets/{name}/versions/{version}"),
    ("GET", "/v1/datasets/{name}/reports"),
)
# what every persona but the data producer and the client reads: the registry, its versions and
# their lineage, cards and reproductions, specs, feature views, runs, approvals, drift settings,
# the scheduled drift rounds and batch jobs
READS: tuple[Route, ...] = (
    *DATASET_READS,
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{name}/versions"),
    ("GET", "/v1/models/{name}/versions/{version}"),
    ("GET", "/v1/models/{name}/versions/{version}/card"),
    ("GET", "/v1/models/{name}/versions/{version}/lineage"),
    ("GET", "/v1/models/{name}/versions/{version}/reproduce"),
    ("GET", "/v1/models/{name}/runs"),
    ("GET", "/v1/models/{name}/drift/settings"),
    ("GET", "/v1/drift/rounds"),
    ("GET", "/v1/models/{name}/drift/checks"),
    ("GET", "/v1/models/{name}/drift/checks/{check_id}"),
    ("GET", "/v1/explain/{request_id}"),
    ("GET", "/v1/specs/{name}"),
    ("GET", "/v1/feature-views"),
    ("GET", "/v1/feature-views/{name}"),
    ("GET", "/v1/feature-views/{name}/materializations"),
    ("GET", "/v1/feature-views/{name}/materializations/{materialization_id}"),
    ("GET", "/v1/approvals"),
    ("GET", "/v1/approvals/{approval_id}"),
    ("GET", "/v1/models/{name}/batch"),
    ("GET", "/v1/models/{name}/batch/{job}"),
    ("GET", "/v1/models/{name}/batch/{job}/rows/{row}"),
)

PERSONA_ROUTES: dict[str, tuple[Route, ...]] = {
    # uploads under raw/ and reads what validation made of them
    "DataProducer": DATASET_READS,
    # declares data contracts, specs and feature views, trains, imports models trained elsewhere
    # (the upload URL is presigned by the API: no S3 grant), asks for drift checks, reproduces
    "DataScientist": (
        *READS,
        ("PUT", "/v1/datasets/{name}/contract"),
        ("PUT", "/v1/specs/{name}"),
        ("PUT", "/v1/feature-views/{name}"),
        ("POST", "/v1/models/{name}/train"),
        ("POST", "/v1/models/{name}/imports/upload"),
        ("POST", "/v1/models/{name}/imports"),
        ("POST", "/v1/models/{name}/drift"),
        ("POST", "/v1/models/{name}/versions/{version}/reproduce"),
        ("POST", "/v1/models/{name}/batch"),
        ("POST", "/v1/feature-views/{name}/materialize"),
    ),
    # decides waiting versions
    "Approver": (
        *READS,
        ("POST", "/v1/approvals/{approval_id}/approve"),
        ("POST", "/v1/approvals/{approval_id}/reject"),
    ),
    # runs production: rollback, retire, restore, drift settings, the audit archive's export
    "Operator": (
        *READS,
        ("POST", "/v1/models/{name}/rollback"),
        ("POST", "/v1/models/{name}/versions/{version}/retire"),
        ("POST", "/v1/models/{name}/versions/{version}/restore"),
        ("PUT", "/v1/models/{name}/drift/settings"),
        ("POST", "/v1/audit/export"),
        ("POST", "/v1/models/{name}/batch"),
        ("POST", "/v1/feature-views/{name}/materialize"),
    ),
    # reads everything, the audit trail too, and changes nothing
    "Auditor": (*READS, ("GET", "/v1/audit")),
    # an application: predictions and their feedback only
    "Client": (("POST", "/v1/models/{name}/predict"), ("POST", "/v1/models/{name}/feedback")),
}
PERSONAS = tuple(PERSONA_ROUTES)


def route_arn_path(path: str) -> str:
    """`/v1/models/{name}/predict` -> `/v1/models/*/predict` (a route ARN names values, not params)."""
    return "/".join("*" if part.startswith("{") and part.endswith("}") else part for part in path.split("/"))


class Personas(Construct):
    """One managed policy per persona (attribute `policies`, by persona name); outputs name each.
    An alarm (`refused_decisions_alarm`) tells the alarm topic when refused decisions spike."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        rest_api: apigw.RestApi,
        data_bucket: s3.IBucket,
        artifacts_bucket: s3.IBucket,
        audit_archive_bucket: s3.IBucket,
        alarm_topic: sns.ITopic,
        refused_decisions_threshold: int,
        persona_roles: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        super().__init__(scope, id_)
        unknown = set(persona_roles or {}) - set(PERSONAS)
        if unknown:
            raise ValueError(f"persona_roles names unknown personas {sorted(unknown)}; known: {list(PERSONAS)}")
        reports = (artifacts_bucket, "reports/")
        predictions = (data_bucket, "predictions/")  # batch jobs' parts and manifests, read by who starts them
        object_grants: dict[str, list[tuple[list[str], tuple[s3.IBucket, str]]]] = {
            "DataProducer": [
                (["s3:PutObject"], (data_bucket, c.PREFIX_RAW)),
                (["s3:GetObject"], (artifacts_bucket, c.PREFIX_VALIDATION_REPORTS)),
            ],
            "DataScientist": [(["s3:GetObject"], reports), (["s3:GetObject"], predictions)],
            "Approver": [(["s3:GetObject"], reports)],
            "Operator": [(["s3:GetObject"], reports), (["s3:GetObject"], predictions)],
            "Auditor": [
                (["s3:GetObject"], reports),
                (["s3:GetObject"], (audit_archive_bucket, c.PREFIX_AUDIT_EXPORT)),
            ],
            "Client": [],
        }
        stack = Stack.of(self)
        api_arn = (
            "arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:"
            f"<{stack.resolve(stack.get_logical_id(rest_api.node.default_child))}>"  # type: ignore[arg-type]
        )
        self.policies: dict[str, iam.ManagedPolicy] = {}
        for persona, routes in PERSONA_ROUTES.items():
            statements = [
                iam.PolicyStatement(
                    sid="Routes",
                    actions=["execute-api:Invoke"],
                    resources=[
                        rest_api.arn_for_execute_api(method, route_arn_path(path), c.API_STAGE)
                        for method, path in routes
                    ],
                )
            ]
            statements += [
                iam.PolicyStatement(
                    sid=f"Objects{i}", actions=actions, resources=[bucket.arn_for_objects(f"{prefix}*")]
                )
                for i, (actions, (bucket, prefix)) in enumerate(object_grants[persona])
            ]
            policy = iam.ManagedPolicy(
                self,
                persona,
                description=f"Stepwise persona {persona}: its API routes and S3 prefixes only",
                statements=statements,
            )
            for i, arn in enumerate((persona_roles or {}).get(persona, ())):
                policy.attach_to_role(iam.Role.from_role_arn(self, f"{persona}Role{i}", arn, mutable=False))
            why = (
                "Route ARNs put * only where the route has a path parameter (a model, version, dataset or "
                "approval), object grants name one prefix (raw/, reports/, audit/); "
                "tests/infra/test_personas.py evaluates every persona against every route."
            )
            for method, path in routes:
                if "{" in path:
                    acknowledge(
                        policy, f"{_IAM5}[Resource::{api_arn}/{c.API_STAGE}/{method}{route_arn_path(path)}]", why
                    )
            for _, (bucket, prefix) in object_grants[persona]:
                acknowledge(policy, f"{_IAM5}[Resource::{logical_arn(bucket, self)}/{prefix}*]", why)
            self.policies[persona] = policy
            CfnOutput(
                stack,
                f"{c.OUT_PERSONA_POLICY_PREFIX}{persona}",
                value=policy.managed_policy_arn,
                description=f"managed policy of the {persona} persona",
            )
        # a spike of refused decisions (four-eyes, approvers allow-list): someone probing the rules
        self.refused_decisions_alarm = cloudwatch.Alarm(
            self,
            "RefusedDecisions",
            alarm_description="Approve/reject calls refused (403) spiked: each is audited as approval.refused",
            metric=cloudwatch.Metric(
                namespace="Stepwise",
                metric_name=c.REFUSED_DECISIONS_METRIC,
                dimensions_map={"service": "stepwise"},
                statistic="Sum",
                period=Duration.minutes(5),
            ),
            threshold=refused_decisions_threshold,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.refused_decisions_alarm.add_alarm_action(cw_actions.SnsAction(alarm_topic))
