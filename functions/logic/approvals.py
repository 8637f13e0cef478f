"""Approval use cases: request (the workflow's waitForTaskToken task), list, decide, expire.

A decision is one transaction: the request PENDING -> APPROVED/REJECTED (guarded, so a second
decision is a 409), the version PENDING_APPROVAL -> APPROVED/REJECTED (guarded by its status),
and two audit events (the status change and the decision). Only then is the waiting workflow
called back (SendTaskSuccess / SendTaskFailure with error `ApprovalRejected`), and the task token
forgotten once the callback is delivered. If the callback fails (throttled, timed out, the process
died), the decision stays recorded with its token, and the same caller's retry of the same decision
delivers it (200) instead of a 409; a different decision is still a 409.

A restored version (functions/logic/retirement.py) gets a request no workflow waits for (no task
token): approving it promotes the version all at once, in the decider's name; rejecting it leaves it
REJECTED. The same decider's retry of an approval whose promotion failed promotes it (promote is
idempotent).

If the callback finds the workflow no longer waiting (its approval timed out between our expiry
check and the callback), the decision stays recorded and the caller gets 410; the workflow's
timeout path (`expire`) then moves the version to REJECTED (APPROVED -> REJECTED is declared).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any, NoReturn

from functions.dal import approvals as dal
from functions.dal import audit as audit_dal
from functions.dal import releases as releases_dal
from functions.dal.audit import audit_put
from functions.logic import releases
from functions.logic.approval_notice import approval_notice
from functions.models.approvals import (
    UNKNOWN_STARTERS,
    ApprovalList,
    ApprovalRequest,
    ApprovalStatus,
    ApprovalTaskEvent,
    CallerIdentity,
    Decision,
    ProductionComparison,
    approval_id,
)
from functions.models.audit import Actor, AuditEvent, model_target, utcnow
from functions.models.errors import (
    Conflict,
    Forbidden,
    Gone,
    InvalidInput,
    NotFound,
    StepwiseError,
    StoreUnavailable,
)
from functions.models.registry import ModelVersion, VersionStatus
from functions.models.settings import Settings
from functions.observability import logger

S = VersionStatus
RESTORE_APPROVAL_WINDOW = timedelta(days=7)  # a restored version's request expires unanswered after this


def _comparison(state: releases.State, metrics: dict[str, float], primary: str) -> ProductionComparison:
    number = state.record.production_version
    if number is None:
        return ProductionComparison(primary_metric=primary)
    production = state.versions.get(number)
    prod_metrics = dict(production.metrics) if production else {}
    delta = None
    if primary and primary in metrics and primary in prod_metrics:
        delta = metrics[primary] - prod_metrics[primary]
    return ProductionComparison(
        production_version=number, production_metrics=prod_metrics, primary_metric=primary, delta=delta
    )


def _new_request(
    state: releases.State,
    version: ModelVersion,
    *,
    started_by: str,
    execution: str,
    now: datetime,
    expires_at: datetime,
) -> ApprovalRequest:
    """What an approver sees of `version`: its metrics, gates, comparison with production, artifact."""
    onnx = version.artifacts.get("onnx")
    return ApprovalRequest(
        id=approval_id(version.model, version.version),
        model=version.model,
        version=version.version,
        metrics=dict(version.metrics),
        gates=list(version.gates),
        comparison=_comparison(state, version.metrics, version.primary_metric),
        artifact_sha256=onnx.sha256 if onnx else "",
        started_by=started_by,
        run_id=version.run_id,
        execution=execution,
        requested_at=now,
        expires_at=expires_at,
    )


def request_approval(settings: Settings, event: ApprovalTaskEvent, *, now: datetime | None = None) -> ApprovalRequest:
    """Store the request with its task token, audit it, and notify approvers."""
    now = now or utcnow()
    state = releases.read_state(settings, event.model)
    version = state.version(event.version)
    if version.status != S.PENDING_APPROVAL:
        raise Conflict(
            f"{event.model} version {event.version} is {version.status.value}, not PENDING_APPROVAL; nothing to approve"
        )
    request = _new_request(
        state,
        version,
        started_by=version.started_by,
        execution=event.execution,
        now=now,
        expires_at=now + timedelta(seconds=event.timeout_seconds),
    )
    previous = dal.get(settings.metadata_table, request.id)
    if previous is not None and previous.request.status == ApprovalStatus.PENDING:
        # a retried task (the first attempt wrote the request, then failed): the new token only,
        # no second audit event for the same request
        dal.replace_pending(settings.metadata_table, request, event.token)
    else:
        _record_request(settings, event, request)
    if settings.approvals_topic_arn:
        console_url = dal.read_parameter(settings.console_url_parameter) if settings.console_url_parameter else ""
        notice = approval_notice(request, console_url=console_url)
        dal.publish(settings.approvals_topic_arn, notice.subject, notice.message_structure())
    return request


def _record_request(settings: Settings, event: ApprovalTaskEvent, request: ApprovalRequest) -> None:
    actor = Actor(identity=f"workflow:{event.execution or 'unknown'}", correlation_id=event.execution)
    audit = AuditEvent.of(
        actor,
        "approval.request",
        model_target(event.model),
        version=event.version,
        after={"approval": request.id, "expires_at": request.expires_at.isoformat()},
    )
    releases_dal.commit(
        [dal.put_item(settings.metadata_table, request, event.token)],
        [audit],
        metadata_table=settings.metadata_table,
        what=f"approval request {request.id}",
    )


def restore_request_items(
    settings: Settings, restored: ModelVersion, actor: Actor, *, now: datetime
) -> list[dict[str, Any]]:
    """The approval request of a restored version (no task token: no workflow waits) and its audit
    event, as items of the transaction that registers the version."""
    state = releases.read_state(settings, restored.model)
    request = _new_request(
        state, restored, started_by=actor.identity, execution="", now=now, expires_at=now + RESTORE_APPROVAL_WINDOW
    )
    audit = AuditEvent.of(
        actor,
        "approval.request",
        model_target(restored.model),
        version=restored.version,
        after={"approval": request.id, "expires_at": request.expires_at.isoformat(), "restored": True},
    )
    return [dal.put_item(settings.metadata_table, request, ""), audit_put(settings.metadata_table, audit)]


def list_pending(settings: Settings, limit: int = 1000, next_token: str | None = None) -> ApprovalList:
    """One page of the pending requests, oldest first."""
    found, token = dal.list_pending_page(settings.metadata_table, limit, next_token)
    return ApprovalList(approvals=found, next_token=token)


def get_request(settings: Settings, id_: str) -> ApprovalRequest:
    stored = dal.get(settings.metadata_table, id_)
    if stored is None:
        raise NotFound(f"no approval request {id_!r}")
    return stored.request


def decide(
    settings: Settings,
    id_: str,
    *,
    approve: bool,
    caller: CallerIdentity,
    reason: str,
    correlation_id: str = "",
    now: datetime | None = None,
) -> ApprovalRequest:
    """Approve or reject a pending request as `caller` (never a name taken from the body)."""
    now = now or utcnow()
    reason = reason.strip()
    if not reason:
        raise InvalidInput("a reason is required")
    if not caller.principal:
        raise Forbidden("no caller identity: approvals need an IAM-authorized caller")
    stored = dal.get(settings.metadata_table, id_)
    if stored is None:
        raise NotFound(f"no approval request {id_!r}")
    request = stored.request
    entries = settings.approver_entries
    if entries and not caller.allowed_by(entries):
        _refuse(
            settings,
            request,
            caller,
            approve=approve,
            why=f"approvers: {caller.principal} is not in the stack's approvers (setting approvers)",
            correlation_id=correlation_id,
        )
    if request.status == ApprovalStatus.EXPIRED:
        raise Gone(f"approval request {id_} expired at {request.expires_at.isoformat()}")
    if request.status != ApprovalStatus.PENDING:
        if _undelivered_retry(stored, approve=approve, principal=caller.principal):
            _call_back(settings, stored, request, resend=True)
            return request
        if _unreleased_restore(settings, stored, approve=approve, principal=caller.principal):
            _release_restored(settings, request, Actor(identity=caller.principal, correlation_id=correlation_id))
            return request
        who = request.decision.who if request.decision else "someone"
        raise Conflict(f"approval request {id_} was already decided ({request.status.value} by {who})")
    if now >= request.expires_at:
        raise Gone(f"approval request {id_} expired at {request.expires_at.isoformat()}")
    if settings.four_eyes and (why := _four_eyes_refusal(settings, request, caller)):
        _refuse(settings, request, caller, approve=approve, why=why, correlation_id=correlation_id)

    actor = Actor(identity=caller.principal, correlation_id=correlation_id)
    decision = Decision(approved=approve, who=caller.principal, reason=reason, at=now)
    after = request.model_copy(
        update={"status": ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED, "decision": decision}
    )
    state = releases.read_state(settings, request.model)
    to = S.APPROVED if approve else S.REJECTED
    action = "version.approve" if approve else "version.reject"
    plan = releases.plan_transition(state, request.version, to, actor, reason, action=action, now=now)
    decided = AuditEvent.of(
        actor,
        "approval.decide",
        model_target(request.model),
        version=request.version,
        before={"approval": request.id, "status": request.status.value},
        after={"approval": request.id, "status": after.status.value},
        reason=reason,
    )
    plan = dataclasses.replace(plan, what=f"decision on {id_}", events=[*plan.events, decided])
    releases.apply(settings, plan, extra_items=[dal.decision_item(settings.metadata_table, after)])
    if stored.task_token:
        _call_back(settings, stored, after)
    elif approve:  # a restored version: no workflow waits, the approval releases it
        _release_restored(settings, after, actor)
    return after


def _four_eyes_refusal(settings: Settings, request: ApprovalRequest, caller: CallerIdentity) -> str:
    """Why four-eyes refuses `caller` ("" if it does not): the caller is the run's starter, compared
    as a person (CallerIdentity.person); a starter nobody recorded cannot be told apart from the
    caller, so it is refused too."""
    starter = request.started_by.strip()
    if not starter or starter in UNKNOWN_STARTERS:
        return (
            f"four-eyes: the starter of the run of {request.id} is unknown ({starter or 'not recorded'}), "
            "so no caller can be told apart from it"
        )
    if caller.is_(starter, settings.trusted_session_role_names):
        return (
            f"four-eyes: {caller.principal} is the same person as {starter}, who started the run of "
            f"{request.id}, and cannot decide it"
        )
    return ""


def _refuse(
    settings: Settings,
    request: ApprovalRequest,
    caller: CallerIdentity,
    *,
    approve: bool,
    why: str,
    correlation_id: str,
) -> NoReturn:
    """Audit a refused decision (who, what, why) and refuse it (403). The refusal stands even when
    the audit write fails; the failure is logged."""
    event = AuditEvent.of(
        Actor(identity=caller.principal, correlation_id=correlation_id),
        "approval.refused",
        model_target(request.model),
        version=request.version,
        after={"approval": request.id, "decision": "approve" if approve else "reject"},
        reason=why,
    )
    try:
        audit_dal.record(settings.metadata_table, event)
    except StepwiseError as exc:
        logger.warning("refused decision not audited", extra={"approval": request.id, "reason": exc.message})
    raise Forbidden(why)


def _unreleased_restore(settings: Settings, stored: dal.StoredApproval, *, approve: bool, principal: str) -> bool:
    """A restored version approved by this caller and still APPROVED: its promotion did not happen
    (the attempt failed after recording the decision)."""
    decision = stored.request.decision
    if not (
        not stored.task_token
        and not stored.request.execution
        and approve
        and decision is not None
        and decision.approved
        and decision.who == principal
    ):
        return False
    request = stored.request
    return releases.read_state(settings, request.model).version(request.version).status == S.APPROVED


def _release_restored(settings: Settings, decided: ApprovalRequest, actor: Actor) -> None:
    reason = decided.decision.reason if decided.decision else "approved"
    releases.promote(settings, decided.model, decided.version, actor, f"approved restore: {reason}")


def _undelivered_retry(stored: dal.StoredApproval, *, approve: bool, principal: str) -> bool:
    """A decided request whose callback was never confirmed, retried by its decider with the same
    decision (the earlier attempt failed after recording it)."""
    decision = stored.request.decision
    return bool(
        stored.task_token
        and decision is not None
        and decision.approved == approve
        and decision.who == principal
        and stored.request.status in (ApprovalStatus.APPROVED, ApprovalStatus.REJECTED)
    )


def _call_back(
    settings: Settings, stored: dal.StoredApproval, decided: ApprovalRequest, *, resend: bool = False
) -> None:
    """Tell the waiting workflow, then forget the token. On a resend, Gone means an earlier attempt
    delivered it (the token is spent) unless the request has since expired."""
    decision = decided.decision
    assert decision is not None
    try:
        if decision.approved:
            dal.send_success(
                stored.task_token,
                {
                    "approved": True,
                    "model": decided.model,
                    "version": decided.version,
                    "approver": decision.who,
                    "reason": decision.reason,
                    "approval": decided.id,
                },
            )
        else:
            dal.send_failure(stored.task_token, "ApprovalRejected", f"{decision.who}: {decision.reason}")
    except Gone:
        if not resend:
            _forget_token(settings, decided.id)  # spent: a retry is then an ordinary 409
            raise
    _forget_token(settings, decided.id)


def _forget_token(settings: Settings, id_: str) -> None:
    """Best effort: the decision is delivered; a token left behind only makes a retry resend it."""
    try:
        dal.clear_token(settings.metadata_table, id_)
    except StoreUnavailable as exc:
        logger.warning("approval token not cleared", extra={"approval": id_, "reason": exc.message})


def expire(
    settings: Settings, model: str, number: int, *, execution: str = "", now: datetime | None = None
) -> ApprovalRequest:
    """The workflow's approval timed out: the request EXPIRED, the version REJECTED (expired).

    Idempotent: an already expired request is returned as is. Raising ApprovalExpired is the
    workflow task's job (the execution fails with that typed error)."""
    now = now or utcnow()
    id_ = approval_id(model, number)
    stored = dal.get(settings.metadata_table, id_)
    if stored is None:
        raise NotFound(f"no approval request {id_!r}")
    request = stored.request
    if request.status == ApprovalStatus.EXPIRED:
        return request
    state = releases.read_state(settings, model)
    version = state.version(number)
    actor = Actor(identity=f"workflow:{execution or request.execution or 'unknown'}", correlation_id=execution)
    reason = f"approval expired: nobody decided by {request.expires_at.isoformat()}"
    after = request.model_copy(update={"status": ApprovalStatus.EXPIRED})
    events = [
        AuditEvent.of(
            actor,
            "approval.expire",
            model_target(model),
            version=number,
            before={"approval": id_, "status": request.status.value},
            after={"approval": id_, "status": ApprovalStatus.EXPIRED.value},
            reason=reason,
        )
    ]
    extra = [dal.decision_item(settings.metadata_table, after)] if request.status == ApprovalStatus.PENDING else []
    if version.status == S.REJECTED:
        plan = releases.Plan(what=f"expiry of {id_}", model=model, events=events)
    else:  # PENDING_APPROVAL, or APPROVED by a decision the workflow never received
        plan = releases.plan_transition(state, number, S.REJECTED, actor, reason, action="version.reject", now=now)
        plan = dataclasses.replace(plan, what=f"expiry of {id_}", events=[*plan.events, *events])
    if not extra and not plan.changes:
        return request
    releases.apply(settings, plan, extra_items=extra)
    return after
