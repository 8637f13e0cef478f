"""Batch scoring routes (IAM-authorized).

POST /v1/models/{name}/batch        {"input": {"dataset", "version"} | {"uri"}, "model_version"?,
                                    "alias"?, "passthrough"?, "capture"?, "reject_threshold"?,
                                    "client_token"?, "event_time"?}: 202 with the job (its id, the version and
                                    artifact sha256 it scores with, the output prefix)
GET  /v1/models/{name}/batch        the model's jobs, newest first
GET  /v1/models/{name}/batch/{job}  the job: status, chunks, rows, errors
Who asks is the caller's identity (requestContext), never a field of the body. The workflow, the
routes in the template and the API function's grants are infra/constructs/batch.py.
"""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.handlers.routes.approvals import caller
from functions.handlers.routes.params import Name, reply
from functions.logic import batch_jobs
from functions.models.audit import Actor
from functions.models.batch import JOB_ID_PATTERN, ROW_ID_PATTERN, BatchJob, BatchJobs, BatchRequest
from functions.models.errors import Forbidden
from functions.models.settings import get_settings
from functions.observability import logger

router = APIGatewayRouter()
JobId = Annotated[str, Path(pattern=JOB_ID_PATTERN, max_length=20, description="a batch job id")]
# the batch row route's parameters (the batch function serves it: functions/handlers/routes/batch_rows.py)
RowId = Annotated[str, Path(pattern=ROW_ID_PATTERN, max_length=256, description="a pass-through value of the row")]
# a column named in a query: letters, digits, space, _ . : - (the default, the first pass-through
# column, needs no name)
ColumnQuery = Annotated[
    str | None,
    Query(
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_ .:-]{0,127}$",
        max_length=128,
        description="the pass-through column naming rows (default: the job's first)",
    ),
]


@router.post("/v1/models/<name>/batch")
def start_batch(name: Name, request: Annotated[BatchRequest, Body()]) -> Response[BatchJob]:
    who = caller(router).principal
    if not who:
        raise Forbidden("no caller identity: batch scoring needs an IAM-authorized caller")
    actor = Actor(identity=who, correlation_id=logger.get_correlation_id() or "")
    return reply(batch_jobs.request_batch(get_settings(), name, request, actor), 202)


@router.get("/v1/models/<name>/batch")
def list_batches(name: Name) -> Response[BatchJobs]:
    return reply(BatchJobs(jobs=batch_jobs.list_jobs(get_settings(), name)))


@router.get("/v1/models/<name>/batch/<job>")
def get_batch(name: Name, job: JobId) -> Response[BatchJob]:
    return reply(batch_jobs.get_job(get_settings(), name, job))
