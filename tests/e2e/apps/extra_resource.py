"""The real CDK app plus one resource stepwise/ has never heard of (for the from-the-template test)."""

from __future__ import annotations

import os

from aws_cdk import aws_logs as logs

from infra.app import build_app

EXTRA_ID = "ProbeLogGroupAddedByTest"


def main() -> None:
    app, stack = build_app(outdir=os.environ.get("CDK_OUTDIR", "cdk.out"))
    logs.LogGroup(stack, EXTRA_ID, retention=logs.RetentionDays.ONE_DAY)
    app.synth()


if __name__ == "__main__":
    main()
