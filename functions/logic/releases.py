"""Release use cases: approve/reject/retire a version, promote, canary, roll back.

Each use case is two steps: `plan_*` is pure (the state read in, the changes and audit events
out, illegal moves refused), `apply` writes the plan as one guarded transaction. Races are
tests of the two steps interleaved: plans made from the same read conflict when applied.

Invariants (held by the guards in functions/dal/releases.py):
- a version's status only follows registry.TRANSITIONS; an illegal move names from and to;
- PRODUCTION/CANARY are entered and left only together with the alias move on ModelRecord,
  under its revision lock, so a model has at most one PRODUCTION and one CANARY version;
- every change carries its audit event in the same transaction.

The workflow's steps (promote, start/complete/roll back a canary) are idempotent: a retry after an
attempt that wrote its transaction and then failed (a read-back throttled, the process killed)
finds the change made and only verifies it, with no second write or audit event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from functions.dal import audit as audit_dal
from functions.dal import registry as registry_dal
from functions.dal import releases as dal
from functions.logic.routing import choose
from functions.models.approvals import (
    CanaryCheck,
    CanaryCheckFailed,
    CanaryMetrics,
    IllegalTransition,
    ServingMismatch,
    StaleExpectation,
)
from functions.models.audit import Actor, AuditEvent, model_target, utcnow
from functions.models.errors import Conflict, IntegrityError, NotFound, StoreUnavailable
from functions.models.registry import TRANSITIONS, ModelRecord, ModelVersion, VersionStatus
from functions.models.settings import Settings
from functions.observability import NAMESPACE, SERVICE

S = VersionStatus
MAX_PREVIOUS = 50
# statuses whose reason goes into ModelVersion.reasons (every reason goes into the audit trail)
EXPLAINED = frozenset({S.REJECTED, S.ROLLED_BACK, S.RETIRED})


@dataclass(frozen=True)
class StatusChange:
    version: ModelVersion  # as read: its status is the guard
    to: VersionStatus
    reason: str = ""
    periods: list[dict[str, str]] | None = None


@dataclass(frozen=True)
class Plan:
    what: str
    model: str
    changes: list[StatusChange] = field(default_factory=list)
    record_before: ModelRecord | None = None
    record_after: ModelRecord | None = None
    events: list[AuditEvent] = field(default_factory=list)


@dataclass(frozen=True)
class State:
    record: ModelRecord
    versions: dict[int, ModelVersion]

    def version(self, number: int) -> ModelVersion:
        try:
            return self.versions[number]
        except KeyError:
            raise NotFound(f"{self.record.name} has no version {number}") from None


# -- reads --------------------------------------------------------------------------------
def read_state(settings: Settings, model: str) -> State:
    record = registry_dal.get_model(settings.registry_table, model)
    if record is None:
        raise NotFound(f"no model {model!r}")
    versions = {v.version: v for v in dal.list_versions(settings.registry_table, model)}
    return State(record=record, versions=versions)


# -- planning (pure) --------------------------------------------------------------------
def check_transition(version: ModelVersion, to: VersionStatus) -> None:
    if to not in TRANSITIONS[version.status]:
        raise IllegalTransition(
            f"{version.model} version {version.version}: {version.status.value} -> {to.value} is not allowed"
        )


def _aliases(record: ModelRecord) -> dict[str, Any]:
    return {
        "production_version": record.production_version,
        "candidate_version": record.candidate_version,
        "candidate_weight": record.candidate_weight,
        "revision": record.revision,
    }


def _status_event(actor: Actor, change: StatusChange, action: str) -> AuditEvent:
    v = change.version
    return AuditEvent.of(
        actor,
        action,
        model_target(v.model),
        version=v.version,
        before={"status": v.status.value},
        after={"status": change.to.value},
        reason=change.reason,
    )


def _plan(
    what: str,
    actor: Actor,
    model: str,
    changes: list[tuple[StatusChange, str]],
    record: ModelRecord | None = None,
    after: dict[str, Any] | None = None,
    *,
    now: datetime,
    reason: str = "",
) -> Plan:
    for change, _ in changes:
        check_transition(change.version, change.to)
    events = [_status_event(actor, change, action) for change, action in changes]
    record_after = None
    if record is not None and after is not None:
        record_after = record.model_copy(update={**after, "revision": record.revision + 1, "updated_at": now})
        events.append(
            AuditEvent.of(
                actor,
                "model.aliases",
                model_target(model),
                before=_aliases(record),
                after=_aliases(record_after),
                reason=reason,
            )
        )
    return Plan(
        what=what,
        model=model,
        changes=[c for c, _ in changes],
        record_before=record if record_after else None,
        record_after=record_after,
        events=events,
    )


def plan_changes(
    what: str,
    actor: Actor,
    model: str,
    changes: list[tuple[StatusChange, str]],
    record: ModelRecord,
    after: dict[str, Any],
    now: datetime,
    reason: str,
) -> Plan:
    """Status changes and alias updates planned together (for use cases outside this module)."""
    return _plan(what, actor, model, changes, record, after, now=now, reason=reason)


def leave_production(v: ModelVersion, actor: Actor, to: VersionStatus, now: datetime) -> list[dict[str, str]]:
    """The version's production periods with the open one ended now (it becomes `to`)."""
    return _leave_production(v, actor, to, now)


def _enter_production(v: ModelVersion, actor: Actor, reason: str, now: datetime) -> list[dict[str, str]]:
    return [*v.production_periods, {"from": dal.when(now), "promoted_by": actor.identity, "reason": reason}]


def _leave_production(v: ModelVersion, actor: Actor, to: VersionStatus, now: datetime) -> list[dict[str, str]]:
    periods = [dict(p) for p in v.production_periods]
    if periods and "to" not in periods[-1]:
        periods[-1].update({"to": dal.when(now), "ended_by": actor.identity, "ended_as": to.value})
    return periods


def plan_transition(
    state: State, number: int, to: VersionStatus, actor: Actor, reason: str, *, action: str, now: datetime
) -> Plan:
    """A status change that moves no alias: approve, reject, retire."""
    v = state.version(number)
    if number in (state.record.production_version, state.record.candidate_version):
        raise Conflict(f"{v.model} version {number} is serving; replace it before moving it to {to.value}")
    change = StatusChange(v, to, reason)
    return _plan(action, actor, v.model, [(change, action)], now=now, reason=reason)


def plan_promote(state: State, number: int, actor: Actor, reason: str = "", *, now: datetime) -> Plan:
    """All traffic to `number` (APPROVED, or the CANARY being completed); production -> ARCHIVED."""
    record, v = state.record, state.version(number)
    check_transition(v, S.PRODUCTION)
    if record.candidate_version not in (None, number):
        raise Conflict(
            f"{v.model}: a canary of version {record.candidate_version} is in progress; complete or roll it back first"
        )
    changes = [
        (StatusChange(v, S.PRODUCTION, reason, _enter_production(v, actor, reason, now)), "version.promote"),
    ]
    previous = list(record.previous_production)
    if record.production_version is not None:
        old = state.version(record.production_version)
        changes.append(
            (StatusChange(old, S.ARCHIVED, reason, _leave_production(old, actor, S.ARCHIVED, now)), "version.archive")
        )
        previous = [p for p in previous if p != old.version] + [old.version]
    after = {
        "production_version": number,
        "candidate_version": None,
        "candidate_weight": 0.0,
        "previous_production": previous[-MAX_PREVIOUS:],
    }
    what = "complete canary" if v.status == S.CANARY else "promote"
    return _plan(what, actor, v.model, changes, record, after, now=now, reason=reason)


def plan_start_canary(
    state: State, number: int, weight: float, actor: Actor, reason: str = "", *, now: datetime
) -> Plan:
    record, v = state.record, state.version(number)
    check_transition(v, S.CANARY)
    if not 0 < weight < 1:
        raise Conflict(f"a canary weight is between 0 and 1 exclusive, not {weight}")
    if record.production_version is None:
        raise Conflict(f"{v.model} has no production version to canary against; release it all at once")
    if record.candidate_version is not None:
        raise Conflict(f"{v.model}: a canary of version {record.candidate_version} is already in progress")
    after = {"candidate_version": number, "candidate_weight": weight}
    changes = [(StatusChange(v, S.CANARY, reason), "version.canary")]
    return _plan("start canary", actor, v.model, changes, record, after, now=now, reason=reason)


def plan_rollback_canary(state: State, number: int, actor: Actor, reason: str, *, now: datetime) -> Plan:
    record, v = state.record, state.version(number)
    check_transition(v, S.ROLLED_BACK)
    if record.candidate_version != number:
        raise Conflict(f"{v.model} version {number} is not the canary (the canary is {record.candidate_version})")
    after = {"candidate_version": None, "candidate_weight": 0.0}
    changes = [(StatusChange(v, S.ROLLED_BACK, reason), "version.rollback")]
    return _plan("roll back canary", actor, v.model, changes, record, after, now=now, reason=reason)


def rollback_target(state: State, to_version: int | None) -> ModelVersion:
    """The version production goes back to: the named one, or the latest previous that is ARCHIVED."""
    record = state.record
    if to_version is not None:
        target = state.version(to_version)
        was_production = to_version in record.previous_production or bool(target.production_periods)
        if target.status != S.ARCHIVED or not was_production:
            raise Conflict(
                f"{record.name} version {to_version} ({target.status.value}) was not in production before; "
                "rollback only returns to a former production version"
            )
        return target
    for number in reversed(record.previous_production):
        candidate = state.versions.get(number)
        if candidate is not None and candidate.status == S.ARCHIVED:
            return candidate
    raise Conflict(f"{record.name} has no earlier production version to roll back to")


def plan_rollback_production(
    state: State, actor: Actor, reason: str, to_version: int | None = None, *, now: datetime
) -> Plan:
    """Production -> ROLLED_BACK, the target (ARCHIVED, was production) -> PRODUCTION."""
    record = state.record
    if record.production_version is None:
        raise Conflict(f"{record.name} has no production version to roll back")
    if record.candidate_version is not None:
        raise Conflict(
            f"{record.name}: a canary of version {record.candidate_version} is in progress; roll it back first"
        )
    if to_version == record.production_version:
        raise Conflict(f"{record.name} version {to_version} is already in production")
    current = state.version(record.production_version)
    target = rollback_target(state, to_version)
    changes = [
        (
            StatusChange(current, S.ROLLED_BACK, reason, _leave_production(current, actor, S.ROLLED_BACK, now)),
            "version.rollback",
        ),
        (StatusChange(target, S.PRODUCTION, reason, _enter_production(target, actor, reason, now)), "version.restore"),
    ]
    after = {
        "production_version": target.version,
        "candidate_version": None,
        "candidate_weight": 0.0,
        "previous_production": [p for p in record.previous_production if p != target.version],
    }
    return _plan("roll back production", actor, record.name, changes, record, after, now=now, reason=reason)


def _serving(production: int | None, canary: int | None) -> str:
    if production is None:
        return "no production version" + (f" with canary version {canary}" if canary is not None else "")
    return f"production version {production} with " + (
        f"canary version {canary}" if canary is not None else "no canary"
    )


def check_expected(state: State, production: int | None, canary: int | None) -> None:
    """The aliases the caller saw (`production`, `canary`: None for none) are the registry's now,
    or StaleExpectation naming both, and what became of the versions expected."""
    record = state.record
    if (record.production_version, record.candidate_version) == (production, canary):
        return
    fates = [
        f"version {n} is {state.versions[n].status.value}"
        for n in dict.fromkeys((production, canary))
        if n is not None and n not in (record.production_version, record.candidate_version) and n in state.versions
    ]
    raise StaleExpectation(
        f"{record.name}: expected {_serving(production, canary)}, "
        f"found {_serving(record.production_version, record.candidate_version)}"
        + (f" ({'; '.join(fates)})" if fates else "")
        + "; nothing was rolled back: read the model again and decide"
    )


def plan_rollback(
    state: State,
    actor: Actor,
    reason: str,
    *,
    expected_production: int | None,
    expected_canary: int | None,
    to_version: int | None = None,
    now: datetime,
) -> Plan:
    """The operator's one-call rollback, planned only if the aliases are still the ones the caller
    saw: an in-progress canary is rolled back (production untouched); otherwise production goes
    back to the previous (or the named) former production version."""
    check_expected(state, expected_production, expected_canary)
    if state.record.candidate_version is not None and to_version is None:
        return plan_rollback_canary(state, state.record.candidate_version, actor, reason, now=now)
    return plan_rollback_production(state, actor, reason, to_version, now=now)


# -- writing ------------------------------------------------------------------------------
def apply(settings: Settings, plan: Plan, extra_items: list[dict[str, Any]] | None = None) -> Plan:
    """Write the plan (and any extra guarded items, e.g. an approval decision) in one transaction."""
    now = plan.record_after.updated_at if plan.record_after else utcnow()
    items = [
        dal.transition_item(
            settings.registry_table,
            c.version,
            c.to,
            now,
            reason=c.reason if c.to in EXPLAINED else "",
            production_periods=c.periods,
        )
        for c in plan.changes
    ]
    if plan.record_before is not None and plan.record_after is not None:
        items.append(dal.alias_item(settings.registry_table, plan.record_before, plan.record_after))
    dal.commit([*items, *(extra_items or [])], plan.events, metadata_table=settings.metadata_table, what=plan.what)
    for change in plan.changes:  # the model card tells of the approval (functions/logic/model_card.py)
        if change.to == S.APPROVED:
            from functions.logic import model_card

            model_card.refresh(settings, change.version.model, change.version.version)
    return plan


def verify_artifact(settings: Settings, version: ModelVersion, step: str) -> None:
    """The ONNX artifact serving would load is in the artifacts bucket and its stored bytes still
    hash to the registry's sha256, or the release `step` is refused before anything is written:
    serving refuses such a version, and an alias on it would leave nothing to answer."""
    artifact = version.artifacts.get("onnx")
    what = f"{version.model} version {version.version}"
    if artifact is None:
        raise IntegrityError(f"{what} has no ONNX artifact to serve; {step} refused")
    bucket = artifact.uri[5:].split("/", 1)[0] if artifact.uri.startswith("s3://") else ""
    if settings.artifacts_bucket and bucket != settings.artifacts_bucket:
        raise IntegrityError(
            f"{what}: the artifact failed verification (it is outside the artifacts bucket); {step} refused"
        )
    try:
        actual = dal.artifact_sha256(artifact.uri)
    except NotFound:
        # the registry records an artifact the store does not have: a 503, not a 404 (the model
        # and version exist), and nothing was written
        raise StoreUnavailable(f"{what}: its artifact is missing; {step} refused") from None
    if actual != artifact.sha256:
        raise IntegrityError(
            f"{what}: the artifact failed verification: {artifact.uri} hashes to {actual}, "
            f"the registry says {artifact.sha256}; {step} refused"
        )


def _verified(settings: Settings, version: ModelVersion, step: str, actor: Actor) -> None:
    """verify_artifact; a refusal is recorded in the audit trail (nothing else is written)."""
    try:
        verify_artifact(settings, version, step)
    except IntegrityError as exc:
        event = AuditEvent.of(
            actor,
            "release.refused",
            model_target(version.model),
            version=version.version,
            before={"status": version.status.value},
            after={"step": step, "error": type(exc).__name__},
            reason=exc.message,
        )
        audit_dal.record(settings.metadata_table, event)
        raise


def _fixed(point: float) -> Callable[[], float]:
    return lambda: point


def verify_serving(settings: Settings, expected: ModelRecord) -> ModelRecord:
    """Read back what serving resolves (the ModelRecord aliases, routed by serving's own `choose`)
    and fail loudly if it differs. Serving instances may keep the previous aliases for up to
    STEPWISE_ALIAS_CACHE_TTL seconds."""
    actual = registry_dal.get_model(settings.registry_table, expected.name)
    if actual is None:
        raise ServingMismatch(f"model {expected.name!r} vanished from the registry")
    want, got = _aliases(expected), _aliases(actual)
    if want != got:
        raise ServingMismatch(f"{expected.name}: serving resolves {got}, the release wrote {want}")
    if actual.production_version is not None:  # serving's own routing answers with the versions written
        routed = {choose(actual, None, draw=_fixed(point)).version for point in (0.0, 1.0 - 1e-9)}
        wanted: set[int | None] = {expected.production_version}
        if expected.candidate_version is not None and expected.candidate_weight > 0 and not expected.shadow:
            wanted.add(expected.candidate_version)
        if routed != wanted:
            raise ServingMismatch(
                f"{expected.name}: serving routes to versions {sorted(routed)}, expected {sorted(map(str, wanted))}"
            )
    for number, status in ((actual.production_version, S.PRODUCTION), (actual.candidate_version, S.CANARY)):
        if number is None:
            continue
        v = registry_dal.get_version(settings.registry_table, expected.name, number)
        if v is None or v.status != status:
            raise ServingMismatch(
                f"{expected.name}: alias points at version {number} whose status is "
                f"{v.status.value if v else 'missing'}, expected {status.value}"
            )
    return actual


# -- use cases (read, plan, write) --------------------------------------------------------
def approve(settings: Settings, model: str, number: int, actor: Actor, reason: str) -> Plan:
    state = read_state(settings, model)
    return apply(
        settings, plan_transition(state, number, S.APPROVED, actor, reason, action="version.approve", now=utcnow())
    )


def reject(settings: Settings, model: str, number: int, actor: Actor, reason: str) -> Plan:
    state = read_state(settings, model)
    return apply(
        settings, plan_transition(state, number, S.REJECTED, actor, reason, action="version.reject", now=utcnow())
    )


def retire(settings: Settings, model: str, number: int, actor: Actor, reason: str) -> Plan:
    state = read_state(settings, model)
    return apply(
        settings, plan_transition(state, number, S.RETIRED, actor, reason, action="version.retire", now=utcnow())
    )


def _done(state: State, number: int, status: VersionStatus, **aliases: Any) -> bool:
    """`number` already has `status` and the record's aliases already read `aliases`: an earlier
    attempt of the same step wrote it."""
    v = state.versions.get(number)
    return v is not None and v.status == status and all(getattr(state.record, k) == w for k, w in aliases.items())


def promote(settings: Settings, model: str, number: int, actor: Actor, reason: str = "") -> ModelRecord:
    state = read_state(settings, model)
    if _done(state, number, S.PRODUCTION, production_version=number, candidate_version=None):
        return verify_serving(settings, state.record)
    plan = plan_promote(state, number, actor, reason, now=utcnow())
    _verified(settings, state.version(number), plan.what, actor)
    apply(settings, plan)
    assert plan.record_after is not None
    return verify_serving(settings, plan.record_after)


def start_canary(
    settings: Settings, model: str, number: int, weight: float, actor: Actor, reason: str = ""
) -> ModelRecord:
    state = read_state(settings, model)
    if _done(state, number, S.CANARY, candidate_version=number, candidate_weight=weight):
        return verify_serving(settings, state.record)
    plan = plan_start_canary(state, number, weight, actor, reason, now=utcnow())
    _verified(settings, state.version(number), plan.what, actor)
    apply(settings, plan)
    assert plan.record_after is not None
    return verify_serving(settings, plan.record_after)


def rollback_canary(settings: Settings, model: str, number: int, actor: Actor, reason: str) -> ModelRecord:
    state = read_state(settings, model)
    if state.record.candidate_version != number and _done(state, number, S.ROLLED_BACK):
        return verify_serving(settings, state.record)
    plan = apply(settings, plan_rollback_canary(state, number, actor, reason, now=utcnow()))
    assert plan.record_after is not None
    return verify_serving(settings, plan.record_after)


def rollback(
    settings: Settings,
    model: str,
    actor: Actor,
    reason: str,
    *,
    expected_production: int | None,
    expected_canary: int | None = None,
    to_version: int | None = None,
) -> ModelRecord:
    """One call, made only while the aliases are the ones the caller saw (`expected_*`; else
    StaleExpectation, nothing written): an in-progress canary is rolled back (production
    untouched); otherwise production goes back to the previous (or the named) former production
    version, whose artifact must verify. A retry therefore never rolls back a second step."""
    state = read_state(settings, model)
    now = utcnow()
    if to_version is not None and _done(
        state, to_version, S.PRODUCTION, production_version=to_version, candidate_version=None
    ):
        # already restored (a retry of a rollback that was written, then failed to answer): the
        # named end state holds, so nothing is written
        return verify_serving(settings, state.record)
    plan = plan_rollback(
        state,
        actor,
        reason,
        expected_production=expected_production,
        expected_canary=expected_canary,
        to_version=to_version,
        now=now,
    )
    restored = next((c.version for c in plan.changes if c.to == S.PRODUCTION), None)
    if restored is not None:
        _verified(settings, restored, plan.what, actor)
    apply(settings, plan)
    assert plan.record_after is not None
    return verify_serving(settings, plan.record_after)


# -- the canary's automatic check ----------------------------------------------------------
def judge_canary(observed: CanaryMetrics, check: CanaryCheck) -> tuple[str, str]:
    """("pass" | "fail" | "no_data", why). No data (no requests reached the candidate, e.g. in
    moto or on a quiet model) is its own verdict; `check.on_no_data` decides whether it blocks
    (by default it does: only a spec that says "pass" promotes a canary nothing exercised)."""
    if not observed.requests or observed.requests < max(check.min_requests, 1):
        return "no_data", f"{observed.requests or 0} requests reached the candidate (need {max(check.min_requests, 1)})"
    failures = []
    if observed.error_rate is not None and observed.error_rate > check.max_error_rate:
        failures.append(f"error rate {observed.error_rate:.2%} > {check.max_error_rate:.2%}")
    if observed.latency_ms is not None and observed.latency_ms > check.max_latency_ms:
        stat = check.latency_stat
        failures.append(f"{stat} latency {observed.latency_ms:.0f} ms > {check.max_latency_ms:.0f} ms")
    if check.min_quality is not None and observed.quality is not None and observed.quality < check.min_quality:
        failures.append(f"quality {observed.quality:.4f} < {check.min_quality:.4f}")
    if failures:
        return "fail", "; ".join(failures)
    rate = observed.error_rate or 0
    return "pass", f"{observed.requests} requests, error rate {rate:.2%}, {check.latency_stat} {observed.latency_ms} ms"


def check_canary(
    settings: Settings, model: str, number: int, check: CanaryCheck, observed: CanaryMetrics, actor: Actor
) -> tuple[str, str]:
    """Judge the canary; a failing one (or no data, unless `on_no_data="pass"`) is rolled back and
    CanaryCheckFailed raised, so the previous production keeps serving."""
    verdict, detail = judge_canary(observed, check)
    if verdict == "fail" or (verdict == "no_data" and check.on_no_data == "fail"):
        rollback_canary(settings, model, number, actor, f"canary check failed: {detail}")
        raise CanaryCheckFailed(f"{model} version {number}: canary check failed ({detail}); rolled back")
    return verdict, detail


def check_canary_traffic(
    settings: Settings,
    model: str,
    number: int,
    check: CanaryCheck,
    bake_seconds: int,
    actor: Actor,
    now: datetime | None = None,
) -> tuple[str, str]:
    """The canary check after its bake time: the candidate's serving metrics over the bake window
    (at least a minute, the current still-filling minute included), judged by `check_canary`."""
    now = now or utcnow()
    start, end = now - timedelta(seconds=max(bake_seconds, 60)), now + timedelta(seconds=60)
    observed = dal.canary_metrics(NAMESPACE, SERVICE, model, number, start, end, check.latency_stat)
    return check_canary(settings, model, number, check, observed, actor)
