"""Cognito pre-token-generation trigger (event version 2) of the console's user pool.

Adds to the access token the scopes `stepwise/<Persona>` of the personas the user's groups map to
(functions/logic/personas.py, setting persona_groups plus the pool's groups named after the
personas); the console API's methods each require the scopes of the personas that may call them,
so the authorizer holds a user to its personas, and the API function checks the groups again. A
`stepwise/` scope the user did not earn (the app client never offers them) is suppressed.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.logic import personas
from functions.models.personas import SCOPE_SERVER
from functions.models.settings import get_settings
from functions.observability import logger


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = event.get("request") or {}
    groups = (request.get("groupConfiguration") or {}).get("groupsToOverride") or []
    earned = personas.token_scopes(get_settings(), [str(g) for g in groups if isinstance(g, str)])
    asked = [str(s) for s in request.get("scopes") or [] if isinstance(s, str)]
    unearned = sorted(s for s in asked if s.startswith(f"{SCOPE_SERVER}/") and s not in earned)
    event["response"] = {
        "claimsAndScopeOverrideDetails": {
            "accessTokenGeneration": {"scopesToAdd": earned, "scopesToSuppress": unearned},
        }
    }
    logger.info("persona scopes", extra={"groups": groups[:100], "scopes": earned})
    return event
