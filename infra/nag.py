"""cdk-nag acknowledgments: every one names the rule and a reason.

Three packs run on every synth (infra/app.py): AwsSolutions, Serverless and NIST 800-53 R5. Where
two packs hold the same check (a Lambda dead-letter queue), one acknowledgment answers both, with
the same reason. `acknowledge_design_choices` answers the NIST findings that are design choices of
the whole stack (no VPC, CDK's inline role policies, single-region storage), each with its reason,
on every resource they apply to, so a new resource of that kind is covered and listed in the report.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import IConstruct

NIST = "NIST.800.53.R5::NIST.800.53.R5-"
# the same check in two packs: acknowledging the first acknowledges the second, for the same reason
SAME_CHECK = {"Serverless::Serverless-LambdaDLQ": f"{NIST}LambdaDLQ"}


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    if not reason.strip():
        raise ValueError(f"acknowledging {rule} needs a reason")
    for rule_id in (rule, *([SAME_CHECK[rule]] if rule in SAME_CHECK else [])):
        cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=rule_id, reason=reason))


DESIGN_CHOICES: dict[type, list[tuple[str, str]]] = {
    lambda_.CfnFunction: [
        (
            "LambdaInsideVPC",
            "The functions reach only AWS APIs (S3, DynamoDB, Step Functions, SNS, CloudWatch) over TLS, "
            "authorized by IAM; there is no private network resource to reach, and a VPC would add NAT or "
            "endpoint cost and cold-start latency without narrowing access.",
        ),
        (
            "LambdaConcurrency",
            "Functions share the account's concurrency pool; reserving it per function in a new account "
            "fails deployment (the pool keeps 100 unreserved). The inference function's reserved "
            "concurrency is a stack setting (inference_reserved_concurrency), and API stage throttling "
            "bounds the rest.",
        ),
    ],
    iam.CfnPolicy: [
        (
            "IAMNoInlinePolicy",
            "CDK's per-role policy: attached to exactly one role and deployed with it, so a grant cannot "
            "leak to another principal; tests/infra/test_iam_least_privilege.py pins each role's actions.",
        )
    ],
    s3.CfnBucket: [
        (
            "S3BucketReplicationEnabled",
            "Single-region deployment: buckets are versioned, retained on stack deletion and their "
            "noncurrent versions kept 90 days (the audit archive under Object Lock); cross-region "
            "replication needs a bucket in a second region, a deployment decision outside this stack.",
        )
    ],
    dynamodb.CfnTable: [
        (
            "DynamoDBInBackupPlan",
            "Point-in-time recovery (35 days, to the second) and deletion protection are on for both "
            "tables; the audit trail is also exported daily to the Object Lock archive. An AWS Backup "
            "plan for longer retention is an account-level choice (it backs up by tag: project=stepwise).",
        )
    ],
    apigw.CfnStage: [
        (
            "APIGWAssociatedWithWAF",
            "A WAF web ACL is a stack setting (waf_web_acl_arn); every route is IAM-authorized and the "
            "stage is throttled without one.",
        ),
        (
            "APIGWCacheEnabledAndEncrypted",
            "Responses must not be cached: a prediction names the version that answered and approvals and "
            "registry reads must be current.",
        ),
        (
            "APIGWSSLEnabled",
            "Client certificates authenticate API Gateway to HTTP backends; every integration here is a "
            "Lambda proxy invoked through IAM, and callers reach the API over TLS only.",
        ),
    ],
}


def acknowledge_design_choices(stack: cdk.Stack) -> dict[str, int]:
    """Acknowledge the DESIGN_CHOICES findings on every resource of their kind; returns rule -> count."""
    counts: dict[str, int] = {}
    for node in stack.node.find_all():
        for kind, rules in DESIGN_CHOICES.items():
            if isinstance(node, kind):
                for rule, reason in rules:
                    acknowledge(node, f"{NIST}{rule}", reason)
                    counts[rule] = counts.get(rule, 0) + 1
    return counts
