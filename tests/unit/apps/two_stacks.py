"""A synthetic two-stack CDK app, shaped like a stores/compute split: `StepwiseStores` holds a
versioned bucket; `Stepwise` holds a function, its schedule and outputs, and reads the bucket's
name through a cross-stack reference (CDK makes the export and the Fn::ImportValue)."""

from __future__ import annotations

import os
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3

STORES_STACK = "StepwiseStores"
COMPUTE_STACK = "Stepwise"
BUCKET_ID = "ProbeBucket"
FUNCTION_ID = "ProbeFunction"
SCHEDULE_ID = "ProbeSchedule"
CODE_DIR = Path(__file__).resolve().parent / "two_stacks_code"


def main() -> None:
    app = cdk.App(outdir=os.environ.get("CDK_OUTDIR", "cdk.out"))
    stores = cdk.Stack(app, STORES_STACK)
    bucket = s3.Bucket(stores, BUCKET_ID, versioned=True, removal_policy=cdk.RemovalPolicy.RETAIN)
    cdk.CfnOutput(stores, "StoresBucketName", value=bucket.bucket_name)

    compute = cdk.Stack(app, COMPUTE_STACK)
    function = lambda_.Function(
        compute,
        FUNCTION_ID,
        runtime=lambda_.Runtime.PYTHON_3_12,
        handler="probe.handler",
        code=lambda_.Code.from_asset(str(CODE_DIR)),
        environment={"PROBE_BUCKET": bucket.bucket_name},
    )
    events.Rule(
        compute,
        SCHEDULE_ID,
        schedule=events.Schedule.rate(cdk.Duration.hours(1)),
        targets=[targets.LambdaFunction(function)],  # type: ignore[list-item]
    )
    cdk.CfnOutput(compute, "ComputeFunctionName", value=function.function_name)
    app.synth()


if __name__ == "__main__":
    main()
