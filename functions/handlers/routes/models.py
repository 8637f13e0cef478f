"""Registry reads, training specs and runs on the control API (IAM-authorized).

GET  /v1/models[?limit=N&next_token=T]       models with production version and counts, a page at a
                                             time by name (next_token names the next page)
GET  /v1/models/{name}/versions[?limit=N&next_token=T]   version summaries, oldest first, a page at a time
GET  /v1/models/{name}/versions/{version}    one version: everything, gates and lineage
GET  /v1/models/{name}/runs[?limit=N&next_token=T]   lifecycle runs and their steps, newest start first, by page
PUT  /v1/specs/{name}                        store a new version of a training spec
GET  /v1/specs/{name}[?version=N]            a spec version (latest by default)
POST /v1/models/{name}/train                 start the workflow {"spec", "dataset_version"}
"""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.handlers.routes.identity import caller_name
from functions.handlers.routes.params import (
    DEFAULT_PAGE,
    LimitQuery,
    Name,
    NextTokenQuery,
    Version,
    VersionQuery,
    reply,
)
from functions.logic import registration, specs
from functions.models.api import ModelList, RunList, SpecBody, VersionList
from functions.models.registry import ModelVersion
from functions.models.runs import TrainRequest, TrainStarted
from functions.models.settings import get_settings
from functions.models.specs import SpecRecord

router = APIGatewayRouter()


def _caller() -> str:
    return caller_name(router.current_event)


@router.get("/v1/models")
def list_models(limit: LimitQuery = DEFAULT_PAGE, next_token: NextTokenQuery = None) -> Response[ModelList]:
    models, token = registration.model_summaries(get_settings(), limit, next_token)
    return reply(ModelList(models=models, next_token=token))


@router.get("/v1/models/<name>/versions")
def list_versions(
    name: Name, limit: LimitQuery = DEFAULT_PAGE, next_token: NextTokenQuery = None
) -> Response[VersionList]:
    versions, token = registration.version_summaries(get_settings(), name, limit, next_token)
    return reply(VersionList(model=name, versions=versions, next_token=token))


@router.get("/v1/models/<name>/versions/<version>")
def get_version(name: Name, version: Version) -> Response[ModelVersion]:
    return reply(registration.version_detail(get_settings(), name, version))


@router.get("/v1/models/<name>/runs")
def list_runs(name: Name, limit: LimitQuery = DEFAULT_PAGE, next_token: NextTokenQuery = None) -> Response[RunList]:
    return reply(specs.runs(get_settings(), name, limit, next_token))


@router.put("/v1/specs/<name>", responses={201: {"description": "the stored spec version"}})
def put_spec(name: Name, spec: Annotated[SpecBody, Body()]) -> Response[SpecRecord]:
    return reply(specs.put_spec(get_settings(), name, spec, _caller()), 201)


@router.get("/v1/specs/<name>")
def get_spec(name: Name, version: VersionQuery = None) -> Response[SpecRecord]:
    return reply(specs.get_spec(get_settings(), name, version))


@router.post("/v1/models/<name>/train", responses={202: {"description": "the workflow execution"}})
def start_training(name: Name, request: Annotated[TrainRequest, Body()]) -> Response[TrainStarted]:
    return reply(specs.start_training(get_settings(), name, request, _caller()), 202)
