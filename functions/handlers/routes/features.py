"""Feature views on the control API (IAM-authorized).

PUT  /v1/feature-views/{name}                 store a new version of a feature view
GET  /v1/feature-views/{name}[?version=N]     a view version (latest by default)
GET  /v1/feature-views[?limit=N&next_token=T]   the latest version of each view, by name, by page
"""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.handlers.routes.identity import caller_name
from functions.handlers.routes.params import DEFAULT_PAGE, LimitQuery, Name, NextTokenQuery, VersionQuery, reply
from functions.logic import feature_views
from functions.models.features import FeatureViewBody, FeatureViewList, FeatureViewRecord
from functions.models.settings import get_settings

router = APIGatewayRouter()


@router.put("/v1/feature-views/<name>", responses={201: {"description": "the stored feature view version"}})
def put_feature_view(name: Name, view: Annotated[FeatureViewBody, Body()]) -> Response[FeatureViewRecord]:
    return reply(feature_views.put_view(get_settings(), name, view, caller_name(router.current_event)), 201)


@router.get("/v1/feature-views/<name>")
def get_feature_view(name: Name, version: VersionQuery = None) -> Response[FeatureViewRecord]:
    return reply(feature_views.get_view(get_settings(), name, version))


@router.get("/v1/feature-views")
def list_feature_views(
    limit: LimitQuery = DEFAULT_PAGE, next_token: NextTokenQuery = None
) -> Response[FeatureViewList]:
    return reply(feature_views.list_views(get_settings(), limit, next_token))
