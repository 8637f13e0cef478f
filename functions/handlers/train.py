"""Lifecycle task Train: fit the spec's pipeline on the dataset version; artifacts to S3.

Input: the workflow state (functions/models/runs.py); output: TrainResult (state key `train`).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.logic import lifecycle
from functions.models.runs import LifecycleState
from functions.models.settings import get_settings
from functions.observability import logger, tracer


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = LifecycleState.model_validate(event)
    return lifecycle.train(get_settings(), state).model_dump(mode="json")
