"""Reproduce Lambda (the training image): retrain a registered version from its recorded lineage
and compare its holdout predictions with the recorded artifact's; the outcome goes to the version's
reproduction record (functions/logic/reproduction.py).

Invoked asynchronously by the API's POST /v1/models/{name}/versions/{version}/reproduce with
{"reproduction_id", "model", "version"}. A delivery that is not the version's RUNNING reproduction
(a duplicate, or a retry after the outcome was stored) does nothing; a store failure while storing
the outcome is raised, so Lambda's asynchronous retry runs the reproduction again.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.handlers.errors import typed_aws_errors
from functions.logic.reproduction import run_reproduction
from functions.models.reproduction import ReproduceJob
from functions.models.settings import get_settings
from functions.observability import logger, tracer


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@typed_aws_errors
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    job = ReproduceJob.model_validate(event)
    done = run_reproduction(get_settings(), job)
    if done is None:
        return {"reproduction_id": job.reproduction_id, "status": "SKIPPED"}
    logger.info("reproduced", extra={"status": done.status.value, "error": done.error})
    return done.model_dump(mode="json", exclude={"joined"})
