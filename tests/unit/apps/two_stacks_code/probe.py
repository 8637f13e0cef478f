"""The synthetic compute stack's function: writes one object into the stores stack's bucket."""

from __future__ import annotations

import os
from typing import Any

import boto3


def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    bucket = os.environ["PROBE_BUCKET"]
    boto3.client("s3").put_object(Bucket=bucket, Key="probe.txt", Body=b"written across stacks")
    return {"bucket": bucket}
