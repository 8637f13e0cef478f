"""Materializations as the API and validation ask for them: record a run (with its audit event)
and hand it to the materialization function, which starts its workflow or runs its steps
(functions/logic/materialize.py); read runs back and a view's online freshness.

Imports no pyarrow or numpy: the API function (base layer only) runs this module.

Refusals, each before anything is written: an unknown view or source version 404; a source with no
validated version 409. Idempotency: a request with a `client_token` is one run per (view, caller,
token) (another body with the same token: 409); a validated source version announced again is the
same run (one per view version and source version); a repeated request of a FAILED run runs it
again (chunks already done keep their markers and are not written again).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

from functions.dal import datasets as datasets_dal
from functions.dal import feature_views as views_dal
from functions.dal import materializations as store
from functions.models.audit import Actor, AuditEvent
from functions.models.errors import Conflict, NotFound, StepwiseError
from functions.models.materialize import (
    START_ACTION,
    Materialization,
    MaterializationStatus,
    MaterializeRequest,
    OnlineFreshness,
    Trigger,
)
from functions.models.settings import Settings
from functions.observability import logger


def target(view: str) -> str:
    """The audit target of a view's materializations (the view's own)."""
    return f"feature-view/{view}"


def _id(*parts: object) -> str:
    return hashlib.sha256("\n".join(str(p) for p in parts).encode()).hexdigest()[:20]


def request_materialization(
    settings: Settings,
    view_name: str,
    body: MaterializeRequest,
    actor: Actor,
    *,
    trigger: Trigger = "api",
    now: datetime | None = None,
) -> Materialization:
    """Record a materialization of the view's latest version from `body.version` of its source
    (default: the latest validated version) and start it. A repeated request (same client token,
    or the same validated version announced again) answers the first one's record (`joined`)."""
    table = settings.metadata_table
    view = views_dal.get_view(table, view_name)
    source = view.view.source
    number = body.version
    if number is None:
        number = datasets_dal.get_summary(table, source).latest_version
        if number < 1:
            raise Conflict(f"source dataset {source!r} of view {view_name!r} has no validated version to materialize")
    datasets_dal.get_version(table, source, number)  # NotFound names the missing version
    now = now or datetime.now(UTC)
    if body.client_token is not None:
        mid = _id(view_name, actor.identity, body.client_token)
    elif trigger == "validation":  # one per (view version, validated source version)
        mid = _id(view_name, view.version, number, trigger)
    else:
        mid = uuid.uuid4().hex[:20]
    request_sha = _id(view_name, view.version, number, body.client_token or "")
    record = Materialization(
        materialization_id=mid,
        view=view_name,
        view_version=view.version,
        source=source,
        source_version=number,
        status=MaterializationStatus.PENDING,
        trigger=trigger,
        requested_by=actor.identity,
        requested_at=now,
        client_token=body.client_token,
        request_sha256=request_sha,
    )
    after = {"materialization": mid, "view_version": view.version, "source_version": number, "trigger": trigger}
    event = AuditEvent.of(actor, START_ACTION, target(view_name), version=view.version, after=after)
    try:
        store.create(table, record, event)
    except Conflict:
        existing = store.get(table, view_name, mid)
        if existing is None or existing.request_sha256 != request_sha:
            raise Conflict(
                f"client token {body.client_token!r} was used for another materialization; give this one its own"
            ) from None
        if existing.status is not MaterializationStatus.FAILED:
            return existing.model_copy(update={"joined": True})
        record = existing.model_copy(update={"status": MaterializationStatus.PENDING, "error": "", "message": ""})
        store.replace(table, record)
        return _hand_over(settings, record).model_copy(update={"joined": True})
    return _hand_over(settings, record)


def _hand_over(settings: Settings, record: Materialization) -> Materialization:
    """Give the recorded run to the materialization function (asynchronously: it outlives an API
    request, and only it may write the online store); where no such function is configured, start
    it here."""
    if settings.materialize_function:
        store.invoke_worker(
            settings.materialize_function,
            {"step": "start", "view": record.view, "materialization_id": record.materialization_id},
        )
        return record
    from functions.logic import materialize  # pyarrow: only where the steps run here

    return materialize.start(settings, record.view, record.materialization_id)


def on_validated(settings: Settings, dataset: str, version: int, actor: Actor) -> list[Materialization]:
    """A new validated version of `dataset`: materialize it into the latest version of every view
    whose source it is. A view that cannot start is logged and the others still start."""
    started = []
    for view in views_dal.list_latest_views(settings.metadata_table):
        if view.view.source != dataset:
            continue
        try:
            started.append(
                request_materialization(
                    settings, view.name, MaterializeRequest(version=version), actor, trigger="validation"
                )
            )
        except StepwiseError as exc:
            logger.warning(
                "materialization not started",
                extra={"view": view.name, "dataset": dataset, "version": version, "error": type(exc).__name__},
            )
    return started


def get_materialization(settings: Settings, view: str, materialization_id: str) -> Materialization:
    views_dal.get_view(settings.metadata_table, view)  # NotFound for an unknown view
    record = store.get(settings.metadata_table, view, materialization_id)
    if record is None:
        raise NotFound(f"feature view {view!r} has no materialization {materialization_id}")
    if record.status is MaterializationStatus.RUNNING:  # progress: the markers written so far
        markers = store.list_chunks(settings.metadata_table, view, record.view_version, record.source_version)
        record = record.model_copy(update={"chunks_done": len({m.index for m in markers})})
    return record


def list_materializations(settings: Settings, view: str) -> list[Materialization]:
    views_dal.get_view(settings.metadata_table, view)
    return store.list_for_view(settings.metadata_table, view)


def view_freshness(settings: Settings, view: str, now: datetime | None = None) -> OnlineFreshness:
    return OnlineFreshness.of(view, list_materializations(settings, view), now)
