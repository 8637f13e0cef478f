"""Start the lifecycle workflow for a new dataset version whose contract names a training spec.

Owned by ingestion until the lifecycle workflow exists (issue 4 takes this module over and fills
in the real start); the signature of `start_lifecycle` is the interface and stays as it is.
Until then it records `would_start` on the dataset version.
"""

from __future__ import annotations

from functions.dal import datasets
from functions.models.datasets import DatasetVersion, LifecycleStart
from functions.models.settings import get_settings
from functions.observability import logger


def start_lifecycle(dataset_version: DatasetVersion, spec_name: str, started_by: str) -> LifecycleStart:
    settings = get_settings()
    if not settings.lifecycle_state_machine_arn:
        reason = f"training spec {spec_name!r} would start; the lifecycle workflow is not deployed"
    else:
        reason = f"training spec {spec_name!r} would start; starting it is not wired yet (issue 4)"
    result = LifecycleStart(status="would_start", reason=reason)
    datasets.set_training_status(settings.metadata_table, dataset_version.dataset, dataset_version.version, result)
    logger.info(
        "lifecycle trigger",
        extra={
            "dataset": dataset_version.dataset,
            "version": dataset_version.version,
            "spec": spec_name,
            "started_by": started_by,
            "status": result.status,
        },
    )
    return result
