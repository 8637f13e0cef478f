"""Who is calling: the identity API Gateway's authorizer established, never a field of the body.

- IAM (SigV4, the default): requestContext.identity (userArn, caller, accessKey).
- Cognito user pool authorizer (stack setting `cognito_user_pool_arn`: ID tokens; the console's
  API: access tokens): the token's claims in requestContext.authorizer.claims; the caller is named
  `cognito:<pool id>/<username>` (the username, `cognito:username` in an ID token and `username`
  in an access token, which the pool never changes, else the subject; never the email, which a
  user can change), with the token's `sub` as its stable form (four-eyes compares both), and its
  `cognito:groups` (the approvers allow-list may name a group).
"""

from __future__ import annotations

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from functions.models.approvals import CallerIdentity


def _groups(claims: dict) -> tuple[str, ...]:
    """The token's `cognito:groups`: a list, or the string API Gateway renders it as (`[a, b]` or `a,b`)."""
    raw = claims.get("cognito:groups") or []
    names = raw if isinstance(raw, list) else str(raw).strip("[]").replace(",", " ").split()
    return tuple(str(n).strip() for n in names if str(n).strip())[:100]


def caller_identity(event: APIGatewayProxyEvent) -> CallerIdentity:
    context = event.request_context
    claims = context.authorizer.claims
    if claims:
        pool = str(claims.get("iss", "")).rstrip("/").rsplit("/", 1)[-1] or "user-pool"
        user = claims.get("cognito:username") or claims.get("username") or claims.get("sub") or "unknown"
        return CallerIdentity(
            user_arn=f"cognito:{pool}/{user}"[:2048], caller=str(claims.get("sub", ""))[:2048], groups=_groups(claims)
        )
    identity = context.identity
    return CallerIdentity(
        user_arn=identity.user_arn or "", caller=identity.caller or "", access_key=identity.access_key or ""
    )


def caller_name(event: APIGatewayProxyEvent) -> str:
    """The name an audit event or a record gives the caller."""
    return caller_identity(event).principal or "unknown"
