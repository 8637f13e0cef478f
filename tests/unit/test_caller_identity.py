"""Who is calling, as each authorizer names it (functions/handlers/routes/identity.py): IAM's
requestContext.identity by default, the Cognito user pool's token claims when the stack setting
puts the control-plane routes behind the user pool authorizer."""

from __future__ import annotations

import copy

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from functions.handlers.routes.identity import caller_identity, caller_name
from functions.models.approvals import CallerIdentity
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
    # And without a username the subject names the caller, never the email (a user can change it)
    event["requestContext"]["authorizer"]["claims"] = {k: v for k, v in CLAIMS.items() if k != "cognito:username"}
    assert caller_name(APIGatewayProxyEvent(event)) == f"cognito:us-east-1_AbCdEf123/{CLAIMS['sub']}"


def test_caller_identity_unsigned_request_is_unknown() -> None:
    event = load_event("apigw/health.json")
    event["requestContext"]["identity"].update({"userArn": None, "caller": None, "accessKey": None})
    assert caller_name(APIGatewayProxyEvent(event)) == "unknown"


# -- four-eyes compares the person, not the session (CallerIdentity.person / person_keys) --------
ACCOUNT = "123456789012"
ROLE_ID = "AROAEXAMPLEROLEID"


def _role_caller(role: str, session: str, role_id: str = ROLE_ID) -> CallerIdentity:
    return CallerIdentity(
        user_arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}",
        caller=f"{role_id}:{session}",
        access_key="ASIAEXAMPLE",
    )


def test_caller_identity_same_role_with_another_session_name_is_the_same_person() -> None:
    # Given a run started as assumed-role/MLOps/alice-1 (over the API, or by an upload)
    started_api = f"arn:aws:sts::{ACCOUNT}:assumed-role/MLOps/alice-1"
    started_upload = f"AWS:{ROLE_ID}:alice-1"
    # When the same role approves under a session name it chose, Then it is the starter
    approver = _role_caller("MLOps", "alice-2")
    assert approver.is_(started_api) and approver.is_(started_upload)
    # And another session name of that role too (a role is one person unless its sessions are trusted)
    assert _role_caller("MLOps", "bob").is_(started_api)


def test_caller_identity_trusted_session_role_compares_role_and_session() -> None:
    started = f"arn:aws:sts::{ACCOUNT}:assumed-role/MLOps/alice"
    trusted = frozenset({"MLOps"})
    assert not _role_caller("MLOps", "bob").is_(started, trusted)
    assert not _role_caller("MLOps", "bob").is_(f"AWS:{ROLE_ID}:alice", trusted)
    assert _role_caller("MLOps", "alice").is_(started, trusted)
    assert _role_caller("MLOps", "alice").is_(f"AWS:{ROLE_ID}:alice", trusted)


def test_caller_identity_identity_center_role_session_is_the_user() -> None:
    role = "AWSReservedSSO_DataScientist_0123456789abcdef"
    started = f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/alice@example.com"
    # Another user of the same permission set is another person
    assert not _role_caller(role, "bob@example.com").is_(started)
    assert not _role_caller(role, "bob@example.com").is_(f"AWS:{ROLE_ID}:alice@example.com")
    # The same user is the same person, by ARN or by the S3 event's principal id
    assert _role_caller(role, "alice@example.com").is_(started)
    assert _role_caller(role, "alice@example.com").is_(f"AWS:{ROLE_ID}:alice@example.com")


def test_caller_identity_roles_of_other_accounts_or_names_are_other_people() -> None:
    started = f"arn:aws:sts::{ACCOUNT}:assumed-role/MLOps/alice"
    assert not _role_caller("Approvers", "alice", role_id="AROAOTHERROLEID").is_(started)
    other_account = CallerIdentity(
        user_arn="arn:aws:sts::210987654321:assumed-role/MLOps/alice", caller="AROAOTHERROLEID:alice"
    )
    assert not other_account.is_(started)


def test_caller_identity_iam_user_by_arn_or_unique_id_and_not_by_name_alone() -> None:
    ana = CallerIdentity(user_arn=f"arn:aws:iam::{ACCOUNT}:user/ana", caller="AIDAANAEXAMPLE")
    assert ana.is_(f"arn:aws:iam::{ACCOUNT}:user/ana")
    assert ana.is_("AWS:AIDAANAEXAMPLE")  # the S3 event's principal id of her upload
    # A role session that happens to be called "ana" is not the user ana
    assert not ana.is_(f"arn:aws:sts::{ACCOUNT}:assumed-role/MLOps/ana")
    assert not ana.is_(f"arn:aws:iam::{ACCOUNT}:user/bob")


def test_caller_identity_cognito_user_by_username_or_subject() -> None:
    pool = "us-east-1_AbCdEf123"
    ana = CallerIdentity(user_arn=f"cognito:{pool}/ana", caller=CLAIMS["sub"])
    assert ana.is_(f"cognito:{pool}/ana")
    assert ana.is_(f"cognito:{pool}/{CLAIMS['sub']}")
    assert not ana.is_(f"cognito:{pool}/bob")
    assert not ana.is_("cognito:us-east-1_Other/ana")


def test_caller_identity_approvers_allow_list_names_users_roles_and_groups() -> None:
    entries = frozenset({f"arn:aws:iam::{ACCOUNT}:user/ana", f"arn:aws:iam::{ACCOUNT}:role/Approvers", "group:leads"})
    assert CallerIdentity(user_arn=f"arn:aws:iam::{ACCOUNT}:user/ana", caller="AIDAANA").allowed_by(entries)
    assert not CallerIdentity(user_arn=f"arn:aws:iam::{ACCOUNT}:user/bob", caller="AIDABOB").allowed_by(entries)
    # every session of a named role, an Identity Center one too
    assert _role_caller("Approvers", "anyone").allowed_by(entries)
    assert not _role_caller("MLOps", "anyone").allowed_by(entries)
    # a Cognito caller by its group (from the token's cognito:groups claim)
    event = copy.deepcopy(load_event("apigw/health.json"))
    event["requestContext"]["identity"].update({"userArn": None, "caller": None, "accessKey": None})
    event["requestContext"]["authorizer"] = {"claims": {**CLAIMS, "cognito:groups": "[leads, readers]"}}
    who = caller_identity(APIGatewayProxyEvent(event))
    assert who.groups == ("leads", "readers") and who.allowed_by(entries)
    assert not who.allowed_by(frozenset({"group:admins"}))


# the console's API authorizes access tokens: `username` (not `cognito:username`), `scope`, `client_id`
ACCESS_CLAIMS = {
    "sub": CLAIMS["sub"],
    "username": "ana",
    "iss": CLAIMS["iss"],
    "client_id": "abc123",
    "token_use": "access",
    "scope": "openid stepwise/Approver",
    "cognito:groups": "[Approver]",
}


def test_caller_identity_console_access_token_names_the_pool_user_by_username() -> None:
    # Given a request the console API's authorizer let through with an access token
    event = copy.deepcopy(load_event("apigw/health.json"))
    event["requestContext"]["identity"].update({"userArn": None, "caller": None, "accessKey": None})
    event["requestContext"]["authorizer"] = {"claims": ACCESS_CLAIMS}
    # When the caller is read
    who = caller_identity(APIGatewayProxyEvent(event))
    # Then it is recorded under the same name as the user's ID-token calls, with its subject and groups
    assert who.principal == "cognito:us-east-1_AbCdEf123/ana"
    assert who.caller == CLAIMS["sub"] and who.groups == ("Approver",)
