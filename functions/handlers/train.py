"""Lifecycle task Train: fit the spec's pipeline on the dataset version; artifacts to S3.

Input: the workflow state (functions/models/runs.py); output: TrainResult (state key `train`).
After a SageMaker training job the same function collects its result: {"collect": true, "state": ...}.
Inside the SageMaker job: `python -m functions.handlers.train` (hyperparameters name the run).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.handlers.errors import typed_aws_errors
from functions.logic import lifecycle
from functions.models.runs import LifecycleState
from functions.models.settings import get_settings
from functions.observability import logger, tracer


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@typed_aws_errors
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("collect"):
        state = LifecycleState.model_validate(event.get("state", {}))
        return lifecycle.collect_training(get_settings(), state).model_dump(mode="json")
    state = LifecycleState.model_validate(event)
    return lifecycle.train(get_settings(), state).model_dump(mode="json")


HYPERPARAMETERS = "/opt/ml/input/config/hyperparameters.json"


def main() -> int:
    """SageMaker training job entry: the run comes in as hyperparameters (all strings)."""
    import json
    from datetime import UTC, datetime
    from pathlib import Path

    from functions.models.runs import RunStarted

    params = json.loads(Path(HYPERPARAMETERS).read_text())
    state = LifecycleState(
        spec=params["spec"],
        spec_version=int(params["spec_version"]),
        dataset=params["dataset"],
        dataset_version=int(params["dataset_version"]),
        run=RunStarted(
            run_id=params["run_id"], model=params["model"], compute="sagemaker", started_at=datetime.now(UTC)
        ),
    )
    lifecycle.train_and_publish(get_settings(), state)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
