"""Path and query parameters of the API routes, validated by the Powertools router
(`enable_validation=True`) with the models' own patterns: a parameter that does not match answers
400 InvalidInput naming it (functions/handlers/errors.py), and the OpenAPI document describes it.
Bodies are declared the same way, `body: Annotated[Model, Body()]`, and replies with `reply`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, TypeVar

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from pydantic import BaseModel

from functions.models.approvals import ID_PATTERN
from functions.models.audit import TARGET_PATTERN
from functions.models.registry import MAX_VERSION, NAME_PATTERN
from functions.models.serving import REQUEST_ID_PATTERN

JSON = "application/json"
M = TypeVar("M", bound=BaseModel)
MAX_NAME = 63  # NAME_PATTERN's own bound, stated so an over-long name is refused as too long

Name = Annotated[str, Path(pattern=NAME_PATTERN, max_length=MAX_NAME, description="a model, dataset or spec name")]
Version = Annotated[int, Path(ge=1, le=MAX_VERSION, description="a version number (1, 2, ...)")]
ApprovalId = Annotated[str, Path(pattern=ID_PATTERN, max_length=73, description="<model>-<version>")]
RequestId = Annotated[str, Path(pattern=REQUEST_ID_PATTERN, max_length=128, description="the caller's request id")]

VersionQuery = Annotated[
    int | None, Query(ge=1, le=MAX_VERSION, description="a version number; the latest when absent")
]
ModelQuery = Annotated[str | None, Query(pattern=NAME_PATTERN, max_length=MAX_NAME, description="a model name")]
TargetQuery = Annotated[
    str | None, Query(pattern=TARGET_PATTERN, max_length=289, description="an audit target: KIND/NAME")
]
DEFAULT_PAGE = 100
MAX_PAGE = 1_000
LimitQuery = Annotated[int, Query(ge=1, le=MAX_PAGE, description="the most items on this page")]
NextTokenQuery = Annotated[
    str | None,
    Query(
        max_length=1_024,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="the previous page's next_token (opaque); absent: the first page",
    ),
]
SinceQuery = Annotated[datetime | None, Query(description="an ISO date or time (UTC when no zone is given)")]


def reply(body: M, status: int = 200) -> Response[M]:
    """A JSON reply of a model: the route's return annotation (`-> Response[Model]`) documents it,
    and the router serializes it in JSON mode (times as ISO strings)."""
    return Response(status_code=status, content_type=JSON, body=body)
