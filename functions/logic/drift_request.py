"""Start a drift check on demand (the API route): validate, invoke the drift Lambda asynchronously,
answer with where its reports will be. Imports no numpy/pyarrow: it runs in the API function."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from functions.dal import audit as audit_dal
from functions.dal import monitoring as store
from functions.dal import registry as registry_dal
from functions.models.audit import Actor, AuditEvent, model_target
from functions.models.drift import DriftCheckAccepted, DriftCheckRequest, DriftRunBody, DriftSettings
from functions.models.errors import InvalidInput, NotFound
from functions.models.settings import Settings


def _stored(settings: Settings, model: str) -> DriftSettings:
    return store.get_settings(settings.metadata_table, model) or DriftSettings()


def put_drift_settings(
    model: str, body: DriftSettings, requested_by: str, settings: Settings, now: datetime | None = None
) -> DriftSettings:
    """Store a model's drift settings (critical features, thresholds, retraining policy)."""
    if registry_dal.get_model(settings.registry_table, model) is None:
        raise NotFound(f"no model {model!r}")
    before = _stored(settings, model)
    stored = body.model_copy(update={"updated_at": now or datetime.now(UTC), "updated_by": requested_by})
    store.put_settings(settings.metadata_table, model, stored)
    audit_dal.record(
        settings.metadata_table,
        AuditEvent.of(
            Actor(identity=requested_by, correlation_id=""),
            "drift.settings",
            model_target(model),
            before=_audited(before),
            after=_audited(stored),
        ),
    )
    return stored


def _audited(stored: DriftSettings) -> dict[str, object]:
    """What a settings change records: the thresholds and the schedule (cadence, window)."""
    return {
        **stored.config.model_dump(mode="json"),
        "cadence_hours": stored.cadence_hours,
        "window_hours": stored.window_hours,
    }


def get_drift_settings(model: str, settings: Settings) -> DriftSettings:
    """The model's stored drift settings, or the defaults."""
    if registry_dal.get_model(settings.registry_table, model) is None:
        raise NotFound(f"no model {model!r}")
    return _stored(settings, model)


def request_check(
    model: str, body: DriftRunBody, requested_by: str, settings: Settings, now: datetime | None = None
) -> DriftCheckAccepted:
    """Start a check of `model` asynchronously (API route); NotFound for an unknown model."""
    if registry_dal.get_model(settings.registry_table, model) is None:
        raise NotFound(f"no model {model!r}")
    if not settings.drift_function_name:
        raise InvalidInput("the drift function is not deployed (STEPWISE_DRIFT_FUNCTION is unset)")
    end = now or datetime.now(UTC)
    req = DriftCheckRequest(
        model=model,
        window_hours=body.window_hours,
        end=end,
        config=body.config or _stored(settings, model).config,
        policy=_stored(settings, model).policy,
        retrain=body.retrain,
        requested_by=requested_by,
        check_id=uuid.uuid4().hex[:16],
    )
    store.invoke_async(settings.drift_function_name, req.model_dump(mode="json"))
    bucket = settings.artifacts_bucket
    return DriftCheckAccepted(
        check_id=req.check_id,
        model=model,
        window_start=end - timedelta(hours=body.window_hours),
        window_end=end,
        report_json=f"s3://{bucket}/{store.report_key(model, end, req.check_id, 'json')}",
        report_html=f"s3://{bucket}/{store.report_key(model, end, req.check_id, 'html')}",
    )
