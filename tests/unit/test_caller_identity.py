"""Who is calling, as each authorizer names it (functions/handlers/routes/identity.py): IAM's
requestContext.identity by default, the Cognito user pool's token claims when the stack setting
puts the control-plane routes behind the user pool authorizer."""

from __future__ import annotations

import copy

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from functions.handlers.routes.identity import caller_identity, caller_name
from tests.conftest import load_event

CLAIMS = {
    "sub": "6f1c2d3e-0000-4000-8000-1234567890ab",
    "cognito:username": "ana",
    "email": "ana@example.com",
    "iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbCdEf123",
}


def test_caller_identity_iam_names_the_signing_principal() -> None:
    event = load_event("apigw/health.json")
    event["requestContext"]["identity"].update(
        {"userArn": "arn:aws:iam::123456789012:user/ana", "caller": "AIDAEXAMPLE", "accessKey": "AKIAEXAMPLE"}
    )
    who = caller_identity(APIGatewayProxyEvent(event))
    assert who.principal == "arn:aws:iam::123456789012:user/ana"
    assert who.is_("arn:aws:iam::123456789012:user/ana")


def test_caller_identity_cognito_names_the_pool_user_and_keeps_the_subject() -> None:
    # Given a request the user pool authorizer let through (no IAM identity)
    event = copy.deepcopy(load_event("apigw/health.json"))
    event["requestContext"]["identity"].update({"userArn": None, "caller": None, "accessKey": None})
    event["requestContext"]["authorizer"] = {"claims": CLAIMS}
    # When the caller is read
    who = caller_identity(APIGatewayProxyEvent(event))
    # Then it is the pool's user, and the token's subject identifies it too (four-eyes checks)
    assert caller_name(APIGatewayProxyEvent(event)) == "cognito:us-east-1_AbCdEf123/ana"
    assert who.is_(CLAIMS["sub"])
    # And without a username the email names the caller
    event["requestContext"]["authorizer"]["claims"] = {k: v for k, v in CLAIMS.items() if k != "cognito:username"}
    assert caller_name(APIGatewayProxyEvent(event)) == "cognito:us-east-1_AbCdEf123/ana@example.com"


def test_caller_identity_unsigned_request_is_unknown() -> None:
    event = load_event("apigw/health.json")
    event["requestContext"]["identity"].update({"userArn": None, "caller": None, "accessKey": None})
    assert caller_name(APIGatewayProxyEvent(event)) == "unknown"
