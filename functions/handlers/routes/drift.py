"""Drift routes. The requester is the caller's IAM identity.

POST /v1/models/{name}/drift           start a check now (asynchronously); 202 with the report locations
PUT  /v1/models/{name}/drift/settings  store the model's DriftSettings (thresholds, critical features,
                                       retraining policy): used by the schedule and as the route's default
GET  /v1/models/{name}/drift/settings  the stored settings, or the defaults
"""

from __future__ import annotations

import json
import re

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import ValidationError

from functions.handlers.routes.identity import caller_name
from functions.logic.drift_request import get_drift_settings, put_drift_settings, request_check
from functions.models.drift import DriftRunBody, DriftSettings
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
    accepted = request_check(name, body, caller_name(router.current_event), get_settings())
    return Response(status_code=202, content_type="application/json", body=accepted.model_dump_json())


@router.put("/v1/models/<name>/drift/settings")
def put_settings(name: str):  # no return annotation: no response re-validation
    if not re.fullmatch(NAME_PATTERN, name):
        raise InvalidInput(f"invalid model name {name!r}")
    try:
        body = DriftSettings.model_validate(json.loads(router.current_event.decoded_body or "{}"))
    except ValueError as exc:
        detail = "; ".join(e["msg"] for e in exc.errors()) if isinstance(exc, ValidationError) else str(exc)
        raise InvalidInput(f"invalid body: {detail}") from None
    stored = put_drift_settings(name, body, caller_name(router.current_event), get_settings())
    return Response(status_code=200, content_type="application/json", body=stored.model_dump_json())


@router.get("/v1/models/<name>/drift/settings")
def get_settings_route(name: str):  # no return annotation: no response re-validation
    if not re.fullmatch(NAME_PATTERN, name):
        raise InvalidInput(f"invalid model name {name!r}")
    stored = get_drift_settings(name, get_settings())
    return Response(status_code=200, content_type="application/json", body=stored.model_dump_json())
