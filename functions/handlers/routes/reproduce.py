"""Reproduce routes (IAM-authorized): retrain a registered version inside the stack from its
recorded lineage (dataset object, spec version, seed) and compare its holdout predictions.

POST /v1/models/{name}/versions/{version}/reproduce   body absent or {}: 202 with the reproduction
                                                      (RUNNING; `joined` when one was already running)
GET  /v1/models/{name}/versions/{version}/reproduce   the version's latest reproduction: RUNNING,
                                                      SUCCEEDED (result.identical) or FAILED (error)
Who asks is the caller's identity (requestContext), never a field of the body.
"""

from __future__ import annotations

import re

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.handlers.routes.approvals import body_as, caller
from functions.logic import reproduction
from functions.models.audit import Actor
from functions.models.errors import Forbidden, InvalidInput
from functions.models.registry import NAME_PATTERN
from functions.models.reproduction import ReproduceBody, Reproduction
from functions.models.settings import get_settings
from functions.observability import logger

router = APIGatewayRouter()


def _target(name: str, version: str) -> tuple[str, int]:
    if not re.fullmatch(NAME_PATTERN, name):
        raise InvalidInput(f"invalid model name {name!r}")
    if not version.isdigit() or not 1 <= int(version) <= 10**9:
        raise InvalidInput(f"version must be a positive integer, not {version!r}")
    return name, int(version)


def _reply(status: int, record: Reproduction) -> Response:
    return Response(status_code=status, content_type="application/json", body=record.model_dump_json())


@router.post("/v1/models/<name>/versions/<version>/reproduce")
def start_reproduction(name: str, version: str):  # no return annotation: no response re-validation
    model, number = _target(name, version)
    body_as(router, ReproduceBody)
    who = caller(router).principal
    if not who:
        raise Forbidden("no caller identity: reproduction needs an IAM-authorized caller")
    actor = Actor(identity=who, correlation_id=logger.get_correlation_id() or "")
    return _reply(202, reproduction.request_reproduction(get_settings(), model, number, actor))


@router.get("/v1/models/<name>/versions/<version>/reproduce")
def get_reproduction(name: str, version: str):  # no return annotation: no response re-validation
    model, number = _target(name, version)
    return _reply(200, reproduction.get_reproduction(get_settings(), model, number))
