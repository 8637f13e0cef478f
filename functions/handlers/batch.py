"""Batch workflow Lambda (the training image: pyarrow and ONNX Runtime): the batch state machine's
tasks, {"step": "plan" | "chunk" | "finish" | "fail", ...} (functions/logic/batch_run.py).

- plan   {"model", "job_id"} -> {"chunks": [ChunkTask, ...]} (the Distributed Map's items)
- chunk  {"task": ChunkTask} -> its ChunkReport
- finish {"model", "job_id"} -> the job; a job that concluded FAILED raises BatchJobFailed so the
  execution fails (and alarms) with the reason already on the job record
- fail   {"model", "job_id", "error": {"Error", "Cause"}}: a Catch records that a step failed
- an API Gateway proxy event: the batch row route (functions/handlers/routes/batch_rows.py)
Typed errors propagate, so the state machine's Retry/Catch match them by name.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.handlers.errors import typed_aws_errors
from functions.handlers.routes import batch_rows
from functions.logic import batch_run
from functions.logic.serving import ModelCache
from functions.models.batch import BatchJobFailed, ChunkTask, JobStatus
from functions.models.errors import InvalidInput
from functions.models.settings import get_settings
from functions.observability import logger, tracer

_models: ModelCache | None = None


def _cache() -> ModelCache:
    global _models
    if _models is None:
        _models = batch_run.job_models(get_settings())
    return _models


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@typed_aws_errors
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "httpMethod" in event:
        return batch_rows.app.resolve(event, context)
    settings = get_settings()
    step = event.get("step")
    if step == "plan":
        chunks = batch_run.plan_job(settings, str(event["model"]), str(event["job_id"]))
        return {"chunks": [c.model_dump(mode="json") for c in chunks]}
    if step == "chunk":
        task = ChunkTask.model_validate(event["task"])
        return batch_run.run_chunk(settings, task, _cache()).model_dump(mode="json")
    if step == "finish":
        job = batch_run.finish_job(settings, str(event["model"]), str(event["job_id"]))
        if job.status is JobStatus.FAILED:
            raise BatchJobFailed(f"{job.error}: {job.message}")
        return {"job_id": job.job_id, "status": job.status.value, "rows": job.rows, "rejected": job.rejected}
    if step == "fail":
        error = event.get("error") or {}
        model, job_id = str(event["model"]), str(event["job_id"])
        cause = str(error.get("Cause", ""))
        job = batch_run.record_failure(settings, model, job_id, str(error.get("Error", "")), cause)
        return {"job_id": job.job_id, "status": job.status.value}
    raise InvalidInput(f"unknown batch step {step!r}")
