"""API access, read from the synthesized template: IAM on every route by default;
the Cognito user pool authorizer and prediction API keys are stack settings; routes that carry a
JSON body are validated by API Gateway before the Lambda; the stack's KMS key is used only through
its stores. Variants are synthesized with the settings given as CDK context, the way `cdk deploy -c`
gives them, and must pass cdk-nag (synthesis fails otherwise) and cfn-lint."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from infra import constants as c
from infra.config import StackConfig
from stepwise.local.assembly import Assembly, synthesize
from tests.infra.test_cfn_lint import _lint_errors

POOL = "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_AbCdEf123"
PREDICTION_PATHS = ("/v1/models/{name}/predict", "/v1/models/{name}/feedback")


def _methods(assembly: Assembly) -> dict[str, dict[str, Any]]:
    """'METHOD /path' -> the method's properties."""
    resources = assembly.resources_of_type("AWS::ApiGateway::Resource")

    def path_of(ref: Any) -> str:
        if isinstance(ref, dict) and ref.get("Ref") in resources:
            props = resources[ref["Ref"]]["Properties"]
            return path_of(props["ParentId"]).rstrip("/") + "/" + props["PathPart"]
        return "/"

    return {
        f"{m['Properties']['HttpMethod']} {path_of(m['Properties']['ResourceId'])}": m["Properties"]
        for m in assembly.resources_of_type("AWS::ApiGateway::Method").values()
    }


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    return synthesize(
        tmp_path_factory.mktemp("cdk.out.secured"),
        context={"stepwise:cognito_user_pool_arn": POOL, "stepwise:prediction_api_clients": "shop,batch-scoring"},
    )


def test_api_every_route_is_iam_authorized_and_needs_no_api_key_by_default(assembly: Assembly) -> None:
    methods = _methods(assembly)
    assert len(methods) >= 30
    for route, props in methods.items():
        assert props["AuthorizationType"] == "AWS_IAM", route
        assert not props.get("ApiKeyRequired"), route
    assert not assembly.resources_of_type("AWS::ApiGateway::UsagePlan")
    assert not assembly.resources_of_type("AWS::ApiGateway::Authorizer")


def test_api_json_body_routes_have_a_model_the_validator_checks(assembly: Assembly) -> None:
    # Given the methods, the request validator and the models
    methods = _methods(assembly)
    (validator,) = assembly.resources_of_type("AWS::ApiGateway::RequestValidator").values()
    assert validator["Properties"]["ValidateRequestBody"] is True
    models = assembly.resources_of_type("AWS::ApiGateway::Model")
    # Then every PUT route and every route of JSON_BODY_ROUTES refuse a body that is not a JSON object
    body_routes = [r for r in methods if r.startswith("PUT ")] + [f"{m} {p}" for m, p in sorted(c.JSON_BODY_ROUTES)]
    assert len(body_routes) >= 9, body_routes
    # And no other route has a model (an optional body stays the Lambda's to validate)
    assert {r for r, props in methods.items() if props.get("RequestModels")} == set(body_routes)
    for route in body_routes:
        ref = methods[route].get("RequestModels", {}).get("application/json", {}).get("Ref")
        assert ref in models, route
        assert models[ref]["Properties"]["Schema"]["type"] == "object", route
        assert methods[route]["RequestValidatorId"], route


def test_api_settings_put_control_routes_on_cognito_and_prediction_on_iam_plus_api_keys(secured: Assembly) -> None:
    # Given the app synthesized with a user pool and two prediction clients
    methods = _methods(secured)
    (authorizer,) = secured.resources_of_type("AWS::ApiGateway::Authorizer").values()
    assert authorizer["Properties"]["Type"] == "COGNITO_USER_POOLS"
    assert authorizer["Properties"]["ProviderARNs"] == [POOL]
    for route, props in methods.items():
        if any(route.endswith(p) for p in PREDICTION_PATHS):
            # Then prediction routes stay on IAM and also need an API key: a key never authenticates alone
            assert props["AuthorizationType"] == "AWS_IAM" and props["ApiKeyRequired"] is True, route
        else:
            # And the control-plane routes take the user pool's tokens
            assert props["AuthorizationType"] == "COGNITO_USER_POOLS", route
            assert props["AuthorizerId"], route
            assert not props.get("ApiKeyRequired"), route
    # And one key per client in a usage plan with a throttle and a daily quota
    keys = secured.resources_of_type("AWS::ApiGateway::ApiKey")
    assert sorted(k["Properties"]["Description"] for k in keys.values()) == [
        "prediction client batch-scoring",
        "prediction client shop",
    ]
    (plan,) = secured.resources_of_type("AWS::ApiGateway::UsagePlan").values()
    defaults = StackConfig.model_validate({})
    assert plan["Properties"]["Quota"] == {"Limit": defaults.prediction_client_quota_per_day, "Period": "DAY"}
    assert plan["Properties"]["Throttle"]["RateLimit"] == defaults.prediction_client_rate
    assert len(secured.resources_of_type("AWS::ApiGateway::UsagePlanKey")) == 2
    assert not any("Value" in k["Properties"] for k in keys.values())  # generated by API Gateway, not in the template


def test_api_secured_variant_lints_clean(secured: Assembly) -> None:
    assert _lint_errors(secured) == []


@pytest.mark.parametrize(
    ("context", "field"),
    [
        ({"cognito_user_pool_arn": "arn:aws:iam::123456789012:role/x"}, "cognito_user_pool_arn"),
        ({"prediction_api_clients": "shop,shop"}, "prediction_api_clients"),
        ({"prediction_api_clients": "Shop!"}, "prediction_api_clients"),
        ({"prediction_client_quota_per_day": 0}, "prediction_client_quota_per_day"),
    ],
)
def test_api_settings_refuse_bad_values_naming_the_setting(context: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        StackConfig.model_validate(context)
    assert field in str(err.value)


def test_stack_key_is_used_only_through_the_stores(assembly: Assembly) -> None:
    # Given the stack's key
    (key,) = assembly.resources_of_type("AWS::KMS::Key").values()
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == "Retain"
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    # Then the statement open to the account's principals is conditioned on the calling service
    anyone = [s for s in statements if s["Principal"] == {"AWS": "*"}]
    assert len(anyone) == 1
    via = anyone[0]["Condition"]["ForAnyValue:StringEquals"]["kms:ViaService"]
    assert len(via) == 3 and "kms:CallerAccount" in anyone[0]["Condition"]["StringEquals"]
    # And no role policy grants kms actions directly (the store grants are the only gate)
    for lid, policy in assembly.resources_of_type("AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert not any(a.startswith("kms:") for a in actions), (lid, actions)


def test_api_gateway_errors_never_echo_arns_policies_or_signatures_and_throttling_says_when(
    assembly: Assembly,
) -> None:
    # Given the gateway responses of the API
    responses = {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in assembly.resources_of_type("AWS::ApiGateway::GatewayResponse").values()
    }
    # Then the answers whose AWS message names ARNs, policies or the canonical request are fixed text
    for kind in ("ACCESS_DENIED", "UNAUTHORIZED", "INVALID_SIGNATURE", "EXPIRED_TOKEN", "INVALID_API_KEY"):
        template = responses[kind]["ResponseTemplates"]["application/json"]
        assert "messageString" not in template and json.loads(template)["error"] == kind, kind
    # And gateway throttling answers with a retry hint, like the functions' 429s
    for kind in ("THROTTLED", "QUOTA_EXCEEDED"):
        assert responses[kind]["ResponseParameters"]["gatewayresponse.header.Retry-After"].strip("'").isdigit()
        assert json.loads(responses[kind]["ResponseTemplates"]["application/json"])["retry_after_seconds"] > 0
