"""POST /v1/models/{name}/drift: start a drift check now (asynchronously); 202 with the report
locations. The requester is the caller's IAM identity."""

from __future__ import annotations

import json
import re

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import ValidationError

from functions.logic.drift_request import request_check
from functions.models.drift import DriftRunBody
from functions.models.errors import InvalidInput
from functions.models.registry import NAME_PATTERN
from functions.models.settings import get_settings

router = APIGatewayRouter()


@router.post("/v1/models/<name>/drift")
def start_drift_check(name: str):  # no return annotation: no response re-validation
    if not re.fullmatch(NAME_PATTERN, name):
        raise InvalidInput(f"invalid model name {name!r}")
    try:
        body = DriftRunBody.model_validate(json.loads(router.current_event.decoded_body or "{}"))
    except ValueError as exc:  # bad JSON or a body that does not validate
        detail = "; ".join(e["msg"] for e in exc.errors()) if isinstance(exc, ValidationError) else str(exc)
        raise InvalidInput(f"invalid body: {detail}") from None
    identity = router.current_event.request_context.identity
    who = identity.user_arn or identity.caller or "unknown"
    accepted = request_check(name, body, who, get_settings())
    return Response(status_code=202, content_type="application/json", body=accepted.model_dump_json())
