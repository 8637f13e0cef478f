"""Retirement and restore.

retire: a version that serves (production alias, canary alias) or whose status is PRODUCTION or
CANARY cannot be retired (Conflict, 409, nothing written), except the production version with
`withdraw` (no canary in progress): it is RETIRED and the production alias cleared in one
transaction, so the model serves nothing until another version is released. Otherwise one transaction moves it to
RETIRED, drops it from the model's rollback list (previous_production) if it is there, and appends
the audit events; then its artifacts are tagged `stepwise-retired=true`, which the artifacts
bucket's lifecycle rule moves to a colder storage class after a configured age, and its model card
is rewritten. Records, reports, audit events and sha256s stay: the version can still be explained.
Retiring a RETIRED version again re-applies the tags (a retry after a failed tagging) and writes
no second event.

The drift schedule needs no change: it checks models with a production version, and a withdrawn
model has none.

restore: the retired version's artifacts are read back and their sha256 verified, the tags are
cleared, and the version is registered again as a new version number (PENDING_APPROVAL, its
lineage copied, `restored_from` set), with its audit event, in one transaction.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime

from functions.dal import artifacts as artifacts_dal
from functions.dal import lineage as lineage_dal
from functions.dal import registry as registry_dal
from functions.dal.audit import audit_put
from functions.logic import approvals, releases
from functions.models.audit import Actor, AuditEvent, model_target, utcnow
from functions.models.errors import Conflict, InvalidInput, NotFound, StepwiseError
from functions.models.lineage import Restored, Retired
from functions.models.registry import VersionStatus
from functions.models.settings import Settings
from functions.observability import logger

S = VersionStatus
SERVING = frozenset({S.PRODUCTION, S.CANARY})
MAX_ATTEMPTS = 8


def plan_withdraw(state: releases.State, number: int, actor: Actor, reason: str, now: datetime) -> releases.Plan:
    """The production version (no canary in progress) retired and the production alias cleared: the
    model serves nothing afterwards. Its production period ends; it leaves the rollback list."""
    record, v = state.record, state.version(number)
    if record.candidate_version is not None:
        raise Conflict(
            f"{v.model}: a canary of version {record.candidate_version} is in progress; roll it back before "
            f"withdrawing version {number}"
        )
    periods = releases.leave_production(v, actor, S.RETIRED, now)
    after = {
        "production_version": None,
        "candidate_version": None,
        "candidate_weight": 0.0,
        "previous_production": [p for p in record.previous_production if p != number],
    }
    change = releases.StatusChange(v, S.RETIRED, reason, periods)
    return releases.plan_changes("withdraw", actor, v.model, [(change, "version.retire")], record, after, now, reason)


def plan_retire(
    state: releases.State, number: int, actor: Actor, reason: str, *, withdraw: bool = False
) -> releases.Plan:
    """The retirement as a release plan (pure): refused for serving versions, except the production
    version when `withdraw` is asked (plan_withdraw)."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput("a reason is required")
    v = state.version(number)
    now = utcnow()
    if withdraw and v.status == S.PRODUCTION and number == state.record.production_version:
        return plan_withdraw(state, number, actor, reason, now)
    if v.status in SERVING or number in (state.record.production_version, state.record.candidate_version):
        hint = ' (or retire the production version with "withdraw": true to take the model out of service)'
        raise Conflict(
            f"{v.model} version {number} is {v.status.value} and serving; promote or roll back another "
            f"version to replace it before retiring it{hint if v.status == S.PRODUCTION else ''}"
        )
    plan = releases.plan_transition(state, number, S.RETIRED, actor, reason, action="version.retire", now=now)
    record = state.record
    if number not in record.previous_production:
        return plan
    after = record.model_copy(
        update={
            "previous_production": [p for p in record.previous_production if p != number],
            "revision": record.revision + 1,
            "updated_at": now,
        }
    )
    event = AuditEvent.of(
        actor,
        "model.aliases",
        model_target(record.name),
        version=number,
        before={"previous_production": record.previous_production},
        after={"previous_production": after.previous_production},
        reason=f"version {number} retired: {reason}",
    )
    return dataclasses.replace(plan, record_before=record, record_after=after, events=[*plan.events, event])


def _tag(uris: list[str], retired: bool) -> list[str]:
    for uri in uris:
        lineage_dal.tag_retired(uri, retired)
    return uris


def _card(settings: Settings, model: str, number: int) -> str:
    from functions.logic import model_card

    try:
        return model_card.write_card(settings, model, number).markdown_uri
    except StepwiseError:  # the card is a view of the records: a failed write never undoes them
        logger.exception("model card of %s v%s not written", model, number)
        return ""


def retire(
    settings: Settings, model: str, number: int, actor: Actor, reason: str, *, withdraw: bool = False
) -> Retired:
    state = releases.read_state(settings, model)
    v = state.version(number)
    if v.status != S.RETIRED:
        releases.apply(settings, plan_retire(state, number, actor, reason, withdraw=withdraw))
    tagged = _tag([a.uri for a in v.artifacts.values()], True)
    return Retired(
        model=model,
        version=number,
        status=S.RETIRED,
        reason=reason.strip() or (v.reasons[-1] if v.reasons else ""),
        tagged=tagged,
        card_uri=_card(settings, model, number),
    )


def restore(settings: Settings, model: str, number: int, actor: Actor, reason: str = "") -> Restored:
    """Verify the retired version's artifacts and register them again as a new version."""
    for _ in range(MAX_ATTEMPTS):
        record = registry_dal.get_model(settings.registry_table, model)
        source = registry_dal.get_version(settings.registry_table, model, number)
        if record is None or source is None:
            raise NotFound(f"model {model!r} has no version {number}")
        if source.status != S.RETIRED:
            raise Conflict(f"{model} version {number} is {source.status.value}; only a RETIRED version is restored")
        verified = {
            name: artifacts_dal.sha256_hex(artifacts_dal.get_artifact(a, f"{name} artifact of {model} v{number}"))
            for name, a in sorted(source.artifacts.items())
        }
        now = utcnow()
        new_number = record.latest_version + 1
        why = reason.strip() or "restored"
        restored = source.model_copy(
            update={
                "version": new_number,
                "status": S.PENDING_APPROVAL,
                "created_at": now,
                "updated_at": now,
                "reasons": [f"restored from version {number}: {why}"],
                "run_id": f"{source.run_id}#restore-{uuid.uuid4().hex[:12]}",
                "production_periods": [],
                "restored_from": source.restored_from or number,
                "started_by": actor.identity,
            }
        )
        event = AuditEvent.of(
            actor,
            "version.reregister",
            model_target(model),
            version=new_number,
            before={"version": number, "status": source.status.value},
            after={"status": S.PENDING_APPROVAL.value, "restored_from": number, "sha256": verified},
            reason=why,
        )
        try:
            registry_dal.create_version(
                settings.registry_table,
                restored,
                expected_latest=record.latest_version,
                new_model=None,
                extra_items=[
                    audit_put(settings.metadata_table, event),
                    *approvals.restore_request_items(settings, restored, actor, now=now),
                ],
            )
        except Conflict:
            continue  # a concurrent registration took the number
        _tag([a.uri for a in source.artifacts.values()], False)
        _card(settings, model, new_number)
        return Restored(
            model=model, from_version=number, version=new_number, status=S.PENDING_APPROVAL, verified=verified
        )
    raise Conflict(f"could not restore {model} version {number}: too many concurrent registrations")
