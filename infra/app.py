"""CDK app entry point: `python -m infra.app` (also cdk.json's app command).

Synthesizes with no Docker and no AWS credentials; cdk-nag runs on every synth.
"""

from __future__ import annotations

import os

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks, ServerlessChecks

from infra import constants as c
from infra.config import StackConfig
from infra.stacks.core import ConsoleStack, StepwiseStack, StoresStack

# Feature flags the stack relies on (also in cdk.json, for the cdk CLI).
FEATURE_FLAGS: dict[str, object] = {
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
    # the compute stack imports the stores' CloudFormation exports: an export cannot be removed
    # while a stack imports it, which keeps a store from leaving while compute still uses it
    "@aws-cdk/core:defaultCrossStackReferences": "strong",
}


def build_app(outdir: str | None = None, context: dict[str, object] | None = None) -> tuple[cdk.App, StepwiseStack]:
    """The stores stack and the compute stack on it (returned: the one the CLI names)."""
    app = cdk.App(outdir=outdir, context={**FEATURE_FLAGS, **(context or {})})
    config = StackConfig.from_context(app)
    stores = StoresStack(
        app,
        c.STORES_STACK_NAME,
        config=config,
        description="Stepwise stores: buckets, tables and their KMS key (retained)",
    )
    stack = StepwiseStack(
        app,
        c.STACK_NAME,
        config=config,
        stores=stores.stores,
        description="Stepwise: serverless MLOps (lifecycle, serving, monitoring, governance)",
    )
    if config.console:
        ConsoleStack(
            app,
            c.CONSOLE_STACK_NAME,
            config=config,
            compute=stack,
            description="Stepwise console: assets behind CloudFront, Cognito sign-in, the console's API",
        )
    cdk.Tags.of(app).add("project", "stepwise")
    cdk.Validations.of(app).add_plugins(  # type: ignore[attr-defined]
        AwsSolutionsChecks(app), ServerlessChecks(app), NIST80053R5Checks(app)
    )
    return app, stack


def main() -> None:
    app, _ = build_app(outdir=os.environ.get("CDK_OUTDIR", "cdk.out"))
    app.synth()


if __name__ == "__main__":
    main()
