"""The scheduled drift sweep: one check per model with a production version, each under the
sweep's check id, one model's failure never stopping the others.

The check itself is passed in (`check`): the drift handler gives its idempotent wrapper, so a
repeated sweep returns the first result of every model that was already checked.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from functions.dal import monitoring as monitoring_dal
from functions.dal import registry as registry_dal
from functions.models.drift import DriftCheckRequest, DriftScheduleEvent, DriftSettings
from functions.models.errors import StepwiseError, StoreUnavailable
from functions.models.settings import Settings
from functions.observability import logger

MAX_MODELS = 1_000


def run_schedule(
    schedule: DriftScheduleEvent,
    *,
    check_id: str,
    end: datetime | None,
    settings: Settings,
    check: Callable[[DriftCheckRequest], dict[str, Any]],
) -> dict[str, Any]:
    """Check every model in production with its stored drift settings: {"results", "errors"}.
    Models whose check failed on a store error are retried: StoreUnavailable naming them is raised
    once every model was tried (the asynchronous retry re-runs the sweep; checks that passed
    return their first result)."""
    results: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    retry: list[str] = []
    for record in registry_dal.list_models(settings.registry_table, limit=MAX_MODELS):
        if not record.production_version:
            continue
        try:
            stored = monitoring_dal.get_settings(settings.metadata_table, record.name) or DriftSettings()
            req = DriftCheckRequest(
                model=record.name,
                window_hours=schedule.window_hours,
                end=end,
                config=stored.config,
                policy=stored.policy,
                check_id=check_id,
            )
            results.append(check(req))
        except StepwiseError as exc:  # one model's problem does not stop the others
            logger.warning("drift check failed", extra={"model": record.name, "error": exc.message})
            errors.append({"model": record.name, "error": type(exc).__name__, "message": exc.message})
            if isinstance(exc, StoreUnavailable):
                retry.append(record.name)
    if retry:
        raise StoreUnavailable(f"drift checks of {', '.join(retry)} failed on a store error; retry later")
    return {"results": results, "errors": errors}
