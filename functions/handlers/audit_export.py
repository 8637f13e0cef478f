"""Audit export Lambda (data layer: pyarrow): the daily schedule exports yesterday's events;
invoked with {"day": "YYYY-MM-DD"} it exports that day."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.handlers.errors import typed_aws_errors
from functions.logic.audit_export import ExportRequest, export_day
from functions.models.settings import get_settings
from functions.observability import logger, metrics, tracer


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@typed_aws_errors
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = export_day(get_settings(), ExportRequest.model_validate(event or {}))
    logger.info("audit exported", extra=result.model_dump(mode="json"))
    return result.model_dump(mode="json")
