"""Start the lifecycle workflow for a new dataset version whose contract names a training spec.

Called by the validation stage; the signature of `start_lifecycle` is the interface. The
execution is named `<model>-<dataset version>-<spec version>`, so a repeated start (a duplicate
S3 event) is a no-op that reports the existing execution.
"""

from __future__ import annotations

from functions.dal import datasets
from functions.logic.lifecycle import start_training
from functions.models.datasets import DatasetVersion, LifecycleStart
from functions.models.errors import StepwiseError
from functions.models.settings import get_settings
from functions.observability import logger


def start_lifecycle(dataset_version: DatasetVersion, spec_name: str, started_by: str) -> LifecycleStart:
    settings = get_settings()
    if not settings.lifecycle_state_machine_arn:
        result = LifecycleStart(
            status="would_start",
            reason=f"training spec {spec_name!r} would start; the lifecycle workflow is not deployed",
        )
    else:
        try:
            arn, started, name = start_training(
                settings, spec_name, dataset_version.dataset, dataset_version.version, started_by
            )
        except StepwiseError as exc:
            result = LifecycleStart(status="failed", reason=f"{type(exc).__name__}: {exc.message}")
        else:
            reason = f"execution {name} started" if started else f"execution {name} already exists; not started again"
            result = LifecycleStart(status="started", execution_arn=arn, reason=reason)
    datasets.set_training_status(settings.metadata_table, dataset_version.dataset, dataset_version.version, result)
    logger.info(
        "lifecycle trigger",
        extra={
            "dataset": dataset_version.dataset,
            "version": dataset_version.version,
            "spec": spec_name,
            "started_by": started_by,
            "status": result.status,
            "execution_arn": result.execution_arn,
        },
    )
    return result
