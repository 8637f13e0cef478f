"""Lifecycle task Evaluate: holdout metrics, production comparison, ONNX parity and latency, gates.

Input: the workflow state with `train`; output: EvaluationResult (state key `evaluation`).
An import run's VerifyImport step runs here too (this image has onnx and onnxruntime):
{"verify_import": true, "state": ...}; output: TrainResult (state key `train`).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.handlers.errors import typed_aws_errors
from functions.logic import lifecycle
from functions.models.runs import LifecycleState
from functions.models.settings import get_settings
from functions.observability import logger, tracer


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@typed_aws_errors
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("verify_import"):
        from functions.logic import import_run

        state = LifecycleState.model_validate(event.get("state", {}))
        return import_run.verify_imported(get_settings(), state).model_dump(mode="json")
    state = LifecycleState.model_validate(event)
    return lifecycle.evaluate(get_settings(), state).model_dump(mode="json")
