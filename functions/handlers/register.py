"""Lifecycle task Register: the next version of the model (PENDING_APPROVAL, or REJECTED with the
failed gates), its lineage, and the audit event, in one transaction.

Input: the workflow state with `train` and `evaluation`; output: Registered (state key `registered`).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.handlers.errors import typed_aws_errors
from functions.logic import registration
from functions.models.runs import LifecycleState
from functions.models.settings import get_settings
from functions.observability import logger, tracer


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@typed_aws_errors
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = LifecycleState.model_validate(event)
    return registration.register(get_settings(), state).model_dump(mode="json")
