"""Cognito groups as personas: with the stack setting `persona_groups`, a caller authorized by the
user pool may call only the routes of the personas its token's `cognito:groups` map to
(functions/models/personas.py, the routes of the persona policies). IAM callers are held to the
persona policies attached to their roles by IAM itself, so they are not checked here.

A refused call of a guarded route (approve, reject, rollback, retire) is audited (`access.refused`:
who, which route, why); the refusal stands even when the audit write fails.
"""

from __future__ import annotations

from functions.dal import audit as audit_dal
from functions.models.approvals import CallerIdentity
from functions.models.audit import Actor, AuditEvent, model_target
from functions.models.errors import Forbidden, StepwiseError
from functions.models.personas import GUARDED_ROUTES, PERSONA_ROUTES, SCOPE_SERVER
from functions.models.settings import Settings
from functions.observability import logger


def caller_personas(settings: Settings, caller: CallerIdentity) -> frozenset[str]:
    by_group = settings.personas_of_groups
    return frozenset().union(*(by_group.get(g, frozenset()) for g in caller.groups))


def token_scopes(settings: Settings, groups: list[str] | tuple[str, ...]) -> list[str]:
    """The access-token scopes (`stepwise/<Persona>`) of the personas the user's groups map to:
    what the console's API methods require, per the persona matrix."""
    caller = CallerIdentity(groups=tuple(str(g) for g in groups)[:100])
    return sorted(f"{SCOPE_SERVER}/{p}" for p in caller_personas(settings, caller))


def check_route(
    settings: Settings,
    caller: CallerIdentity,
    route: str,
    *,
    path_parameters: dict[str, str],
    cognito: bool,
    correlation_id: str = "",
) -> None:
    """Refuse (403 naming the rule) a Cognito caller whose groups' personas do not have `route`
    (`METHOD /resource/{param}`). Nothing to check when the setting is off or the caller is IAM."""
    if not cognito or not settings.personas_of_groups:
        return
    personas = caller_personas(settings, caller)
    if any(route in PERSONA_ROUTES.get(p, frozenset()) for p in personas):
        return
    why = (
        f"persona_groups: {caller.principal}'s Cognito groups {sorted(caller.groups)} map to personas "
        f"{sorted(personas)}, none of which may call {route} (setting persona_groups)"
    )
    if route in GUARDED_ROUTES:
        _audit_refusal(settings, caller, route, path_parameters, why, correlation_id)
    raise Forbidden(why)


def _audit_refusal(
    settings: Settings,
    caller: CallerIdentity,
    route: str,
    path_parameters: dict[str, str],
    why: str,
    correlation_id: str,
) -> None:
    model = path_parameters.get("name", "")
    if not model and "-" in path_parameters.get("approval_id", ""):
        model = path_parameters["approval_id"].rsplit("-", 1)[0]  # approval ids are `<model>-<version>`
    event = AuditEvent.of(
        Actor(identity=caller.principal, correlation_id=correlation_id),
        "access.refused",
        model_target((model or "unknown")[:128]),
        after={"route": route, **{k: v[:256] for k, v in path_parameters.items()}},
        reason=why,
    )
    try:
        audit_dal.record(settings.metadata_table, event)
    except StepwiseError as exc:
        logger.warning("refused call not audited", extra={"route": route, "reason": exc.message})
