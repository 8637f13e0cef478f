"""Bring-your-own-model routes (IAM-authorized): upload an ONNX artifact trained elsewhere, then
import it for evaluation on a dataset version (functions/logic/imports.py).

POST /v1/models/{name}/imports/upload   {"size_bytes"}: 201 with a presigned PUT URL under imports/
POST /v1/models/{name}/imports          {"upload_id", "sha256", "dataset", "dataset_version", "task",
                                        "target"?, "source_url"?, "source_commit"?, "description"?}:
                                        202 with the import (RECEIVED; `joined` for a repeat)
Who asks is the caller's identity (requestContext), never a field of the body.
"""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.handlers.routes.identity import caller_name
from functions.handlers.routes.params import Name, reply
from functions.logic import imports
from functions.models.audit import Actor
from functions.models.imports import ImportRecord, ImportRequest, UploadRequest, UploadTicket
from functions.models.settings import get_settings
from functions.observability import logger

router = APIGatewayRouter()


def _actor() -> Actor:
    return Actor(identity=caller_name(router.current_event), correlation_id=logger.get_correlation_id() or "")


@router.post("/v1/models/<name>/imports/upload", responses={201: {"description": "where to upload the artifact"}})
def request_upload(name: Name, request: Annotated[UploadRequest, Body()]) -> Response[UploadTicket]:
    return reply(imports.request_upload(get_settings(), name, request, _actor()), 201)


@router.post("/v1/models/<name>/imports", responses={202: {"description": "the import, accepted"}})
def request_import(name: Name, request: Annotated[ImportRequest, Body()]) -> Response[ImportRecord]:
    return reply(imports.request_import(get_settings(), name, request, _actor()), 202)
