"""Drift routes. The requester is the caller's IAM identity.

POST /v1/models/{name}/drift           start a check now (asynchronously); 202 with the report locations
PUT  /v1/models/{name}/drift/settings  store the model's DriftSettings (thresholds, critical features,
                                       retraining policy): used by the schedule and as the route's default
GET  /v1/models/{name}/drift/settings  the stored settings, or the defaults
GET  /v1/drift/rounds[?limit=N]        the latest scheduled rounds: checked, skipped, failed (with reasons)
GET  /v1/models/{name}/drift/checks[?limit=N]   the model's latest checks (verdict, drift share), newest first
GET  /v1/models/{name}/drift/checks/{check_id}  one check: its verdict per section and its HTML report
"""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.handlers.routes.identity import caller_name
from functions.handlers.routes.params import Name, reply
from functions.logic import drift_history
from functions.logic.drift_request import get_drift_settings, put_drift_settings, request_check
from functions.logic.drift_schedule import recent_rounds
from functions.models.drift import (
    CHECK_ID_PATTERN,
    DriftCheckAccepted,
    DriftCheckDetail,
    DriftCheckList,
    DriftRoundList,
    DriftRunBody,
    DriftSettings,
)
from functions.models.settings import get_settings

router = APIGatewayRouter()
CheckId = Annotated[str, Path(pattern=CHECK_ID_PATTERN, max_length=128, description="a drift check's id")]
DEFAULT_RUN = DriftRunBody()  # the body a request without one stands for


@router.post("/v1/models/<name>/drift", responses={202: {"description": "the check runs; its reports"}})
def start_drift_check(name: Name, body: Annotated[DriftRunBody, Body()] = DEFAULT_RUN) -> Response[DriftCheckAccepted]:
    accepted = request_check(name, body, caller_name(router.current_event), get_settings())
    return reply(accepted, 202)


@router.put("/v1/models/<name>/drift/settings")
def put_settings(name: Name, body: Annotated[DriftSettings, Body()]) -> Response[DriftSettings]:
    return reply(put_drift_settings(name, body, caller_name(router.current_event), get_settings()))


@router.get("/v1/models/<name>/drift/settings")
def get_settings_route(name: Name) -> Response[DriftSettings]:
    return reply(get_drift_settings(name, get_settings()))


MAX_ROUNDS = 100


@router.get("/v1/drift/rounds")
def list_rounds(
    limit: Annotated[int, Query(ge=1, le=MAX_ROUNDS, description="the most rounds to return, newest first")] = 10,
) -> Response[DriftRoundList]:
    return reply(DriftRoundList(rounds=recent_rounds(get_settings(), limit)))


@router.get("/v1/models/<name>/drift/checks")
def list_checks_route(
    name: Name,
    limit: Annotated[
        int, Query(ge=1, le=drift_history.MAX_CHECKS, description="the most checks to return, newest first")
    ] = drift_history.MAX_CHECKS,
) -> Response[DriftCheckList]:
    return reply(drift_history.list_checks(name, get_settings(), limit))


@router.get("/v1/models/<name>/drift/checks/<check_id>")
def get_check_route(name: Name, check_id: CheckId) -> Response[DriftCheckDetail]:
    return reply(drift_history.check_detail(name, check_id, get_settings()))
