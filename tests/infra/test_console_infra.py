"""The web console on AWS (infra/constructs/console.py, its own stack with the setting `console`,
on by default): a private assets bucket read only by CloudFront through OAC, HTTPS and security
headers on every answer, the user pool's settings and app client, and the console's API: every
method behind the pool's authorizer with the scopes of the personas the matrix lets call it. With
the setting off none of it exists."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra import constants as c
from layers.assembly import read_assemblies
from stepwise.local.assembly import Assembly, synthesize
from tests.infra.test_personas import MATRIX

Template = dict[str, Any]
SERVICE_ROUTES = {"POST /v1/models/{name}/predict", "POST /v1/models/{name}/feedback"}


def of_type(template: Template, kind: str) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in template["Resources"].items() if v["Type"] == kind}


def one(template: Template, kind: str) -> tuple[str, dict[str, Any]]:
    (found,) = of_type(template, kind).items()
    return found


def console_routes(template: Template) -> dict[str, dict[str, Any]]:
    """'METHOD /path/{param}' of every console API method -> its properties."""
    resources = of_type(template, "AWS::ApiGateway::Resource")

    def path_of(ref: Any) -> str:
        if isinstance(ref, dict) and ref.get("Ref") in resources:
            props = resources[ref["Ref"]]
            return path_of(props["ParentId"]).rstrip("/") + "/" + props["PathPart"]
        return "/"

    return {
        f"{m['HttpMethod']} {path_of(m['ResourceId'])}": m
        for m in of_type(template, "AWS::ApiGateway::Method").values()
    }


# -- the assets bucket ------------------------------------------------------------------------------
def test_console_infra_assets_bucket_is_private_and_read_only_through_oac(console_template: Template) -> None:
    buckets = of_type(console_template, "AWS::S3::Bucket")
    assets_id = next(k for k in buckets if k.startswith("ConsoleAssets"))
    assets = buckets[assets_id]
    assert assets["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    assert assets["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert assets["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert assets["LoggingConfiguration"]["LogFilePrefix"] == c.CONSOLE_ACCESS_LOG_PREFIX
    (policy,) = (
        p for p in of_type(console_template, "AWS::S3::BucketPolicy").values() if p["Bucket"]["Ref"] == assets_id
    )
    allows = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    denies = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    # only CloudFront reads, and only for this distribution (OAC's SourceArn condition); TLS only
    (allow,) = allows
    assert allow["Principal"] == {"Service": "cloudfront.amazonaws.com"} and allow["Action"] == "s3:GetObject"
    source = json.dumps(allow["Condition"]["StringEquals"]["AWS:SourceArn"])
    assert ":distribution/" in source and "ConsoleDistribution" in source
    assert denies and denies[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # no origin access identity anywhere: the origin uses an Origin Access Control
    assert not of_type(console_template, "AWS::CloudFront::CloudFrontOriginAccessIdentity")
    _, oac = one(console_template, "AWS::CloudFront::OriginAccessControl")
    assert oac["OriginAccessControlConfig"]["SigningBehavior"] == "always"


def test_console_infra_access_logs_bucket_takes_the_console_buckets_logs(assemblies: list[Assembly]) -> None:
    stores = next(a for a in assemblies if a.stack_name == c.STORES_STACK_NAME).template
    statements = [
        s
        for p in of_type(stores, "AWS::S3::BucketPolicy").values()
        for s in p["PolicyDocument"]["Statement"]
        if s.get("Principal") == {"Service": "logging.s3.amazonaws.com"}
        and c.CONSOLE_ACCESS_LOG_PREFIX in json.dumps(s["Resource"])
    ]
    (statement,) = statements
    assert f":s3:::{c.CONSOLE_STACK_NAME.lower()}-*" in json.dumps(statement["Condition"]["ArnLike"])
    assert "aws:SourceAccount" in statement["Condition"]["StringEquals"]


# -- CloudFront ---------------------------------------------------------------------------------------
def test_console_infra_cloudfront_redirects_to_https_and_logs(console_template: Template) -> None:
    _, dist = one(console_template, "AWS::CloudFront::Distribution")
    config = dist["DistributionConfig"]
    behaviors = [config["DefaultCacheBehavior"], *config.get("CacheBehaviors", [])]
    assert {b["ViewerProtocolPolicy"] for b in behaviors} == {"redirect-to-https"}
    assert all("ResponseHeadersPolicyId" in b for b in behaviors)
    (api,) = config["CacheBehaviors"]
    assert api["PathPattern"] == "/v1/*"  # the console's API on the console's own origin
    s3_origin = next(o for o in config["Origins"] if "S3OriginConfig" in o)
    assert s3_origin["OriginAccessControlId"] and s3_origin["S3OriginConfig"]["OriginAccessIdentity"] == ""
    assert all(
        o["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
        for o in config["Origins"]
        if "CustomOriginConfig" in o
    )
    assert config["Logging"]["Bucket"] and config["DefaultRootObject"] == "index.html"
    assert "ViewerCertificate" not in config and "WebACLId" not in config  # defaults: CloudFront's certificate


def test_console_infra_security_headers_with_a_strict_csp(console_template: Template) -> None:
    _, policy = one(console_template, "AWS::CloudFront::ResponseHeadersPolicy")
    headers = policy["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    csp = json.dumps(headers["ContentSecurityPolicy"]["ContentSecurityPolicy"])
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "frame-src 'self' blob:",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ):
        assert directive in csp, directive
    assert "connect-src 'self' https://" in csp and "https://cognito-idp." in csp and ".amazoncognito.com" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "*" not in csp.replace("amazonaws", "")
    assert headers["ContentSecurityPolicy"]["Override"] is True
    hsts = headers["StrictTransportSecurity"]
    assert hsts["AccessControlMaxAgeSec"] >= 31_536_000 and hsts["IncludeSubdomains"] and hsts["Override"]
    assert headers["ContentTypeOptions"] == {"Override": True}
    assert headers["FrameOptions"] == {"FrameOption": "DENY", "Override": True}
    assert headers["ReferrerPolicy"]["ReferrerPolicy"] == "strict-origin-when-cross-origin"


def test_console_infra_assets_and_runtime_config_are_deployed(console_template: Template) -> None:
    _, deployment = one(console_template, "Custom::CDKBucketDeployment")
    assert len(deployment["SourceObjectKeys"]) == 2  # the assets and config.json
    markers = json.dumps(deployment["SourceMarkers"])
    assert "ConsoleUserPoolClient" in markers and "amazoncognito.com" in markers and "ConsoleDistribution" in markers
    assert deployment["DistributionId"] and f"/{c.CONSOLE_CONFIG_FILE}" in deployment["DistributionPaths"]
    assert deployment["Prune"] is True


# -- sign-in ------------------------------------------------------------------------------------------
def test_console_infra_user_pool_settings(console_template: Template) -> None:
    _, pool = one(console_template, "AWS::Cognito::UserPool")
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True  # no self sign-up
    assert pool["MfaConfiguration"] == "ON" and pool["EnabledMfas"] == ["SOFTWARE_TOKEN_MFA"]
    password = pool["Policies"]["PasswordPolicy"]
    assert password["MinimumLength"] >= 14
    assert all(password[k] for k in ("RequireLowercase", "RequireUppercase", "RequireNumbers", "RequireSymbols"))
    assert pool["UserPoolTier"] == "PLUS" and pool["UserPoolAddOns"]["AdvancedSecurityMode"] == "ENFORCED"
    assert pool["LambdaConfig"]["PreTokenGenerationConfig"]["LambdaVersion"] == "V2_0"
    _, domain = one(console_template, "AWS::Cognito::UserPoolDomain")
    assert domain["ManagedLoginVersion"] == 2
    groups = {g["GroupName"] for g in of_type(console_template, "AWS::Cognito::UserPoolGroup").values()}
    assert groups == {"DataProducer", "DataScientist", "Approver", "Operator", "Auditor", "Client"}


def test_console_infra_app_client_is_public_with_the_code_grant(console_template: Template) -> None:
    _, client = one(console_template, "AWS::Cognito::UserPoolClient")
    assert client["GenerateSecret"] is False  # a browser app: PKCE holds the code exchange
    assert client["AllowedOAuthFlows"] == ["code"] and client["AllowedOAuthFlowsUserPoolClient"] is True
    assert not any(s.startswith(f"{c.CONSOLE_SCOPE_SERVER}/") for s in client["AllowedOAuthScopes"])
    for urls in (client["CallbackURLs"], client["LogoutURLs"]):
        assert "ConsoleDistribution" in json.dumps(urls) and json.dumps(urls).count("https://") == len(urls)


# -- the console's API ----------------------------------------------------------------------------------
def test_console_infra_api_methods_need_the_pool_and_their_personas_scopes(console_template: Template) -> None:
    routes = console_routes(console_template)
    authorizer_id, authorizer = one(console_template, "AWS::ApiGateway::Authorizer")
    assert authorizer["Type"] == "COGNITO_USER_POOLS" and "ConsoleUserPool" in json.dumps(authorizer["ProviderARNs"])
    # every route a person may call is there (services' routes stay on the IAM API only)
    assert set(routes) == set(MATRIX) - SERVICE_ROUTES
    for route, method in routes.items():
        assert method["AuthorizationType"] == "COGNITO_USER_POOLS", route
        assert method["AuthorizerId"] == {"Ref": authorizer_id}, route
        expected = {f"{c.CONSOLE_SCOPE_SERVER}/{p}" for p in MATRIX[route]}
        assert set(method["AuthorizationScopes"]) == expected, route
        # the same functions as the IAM API (the compute stack's, imported)
        assert "Fn::ImportValue" in json.dumps(method["Integration"]["Uri"]), route


def test_console_infra_api_decisions_need_the_approver_scope_only(console_template: Template) -> None:
    routes = console_routes(console_template)
    for decision in ("approve", "reject"):
        assert routes[f"POST /v1/approvals/{{approval_id}}/{decision}"]["AuthorizationScopes"] == ["stepwise/Approver"]
    assert routes["POST /v1/models/{name}/rollback"]["AuthorizationScopes"] == ["stepwise/Operator"]


def test_console_infra_api_function_and_trigger_know_the_persona_groups(app_template: Template) -> None:
    functions = of_type(app_template, "AWS::Lambda::Function")
    holders = {
        k: json.loads(f["Environment"]["Variables"][c.ENV_PERSONA_GROUPS])
        for k, f in functions.items()
        if c.ENV_PERSONA_GROUPS in f.get("Environment", {}).get("Variables", {})
    }
    assert {k.split("Function")[0] for k in holders} == {"Api", "PreToken"}
    for mapping in holders.values():  # each persona's own group of the pool
        assert mapping["Approver"] == ["Approver"] and set(mapping) >= {"DataScientist", "Operator", "Auditor"}
    (approval,) = (f for k, f in functions.items() if k.startswith(c.APPROVAL_FUNCTION_ID))
    assert approval["Environment"]["Variables"][c.ENV_CONSOLE_URL_PARAMETER] == "/stepwise/dev/console/url"


# CDK's bucket-deployment handler: what CDK grants it (read the asset zip, write and prune the bucket,
# invalidate the distribution), reviewed and frozen like the stack's own functions
DEPLOYMENT_ACTIONS = {
    "s3:GetObject*",
    "s3:GetBucket*",
    "s3:List*",
    "s3:DeleteObject*",
    "s3:PutObject",
    "s3:PutObjectLegalHold",
    "s3:PutObjectRetention",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionTagging",
    "s3:Abort*",
    "cloudfront:CreateInvalidation",
    "cloudfront:GetInvalidation",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
}


def test_console_infra_roles_hold_exactly_the_reviewed_actions(console_template: Template) -> None:
    roles = of_type(console_template, "AWS::IAM::Role")
    policies = of_type(console_template, "AWS::IAM::Policy")
    (role_id,) = roles
    actions = {
        a
        for p in policies.values()
        if {"Ref": role_id} in p["Roles"]
        for s in p["PolicyDocument"]["Statement"]
        for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }
    assert actions <= DEPLOYMENT_ACTIONS, sorted(actions - DEPLOYMENT_ACTIONS)
    assert {"s3:PutObject", "cloudfront:CreateInvalidation"} <= actions


# -- settings -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def custom(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Template]:
    """A console with a custom domain, a WAF web ACL, an existing user pool and MFA optional."""
    context = {
        "stepwise:console_certificate_arn": "arn:aws:acm:us-east-1:123456789012:certificate/abc",
        "stepwise:console_domain_names": "console.example.com",
        "stepwise:console_waf_web_acl_arn": "arn:aws:wafv2:us-east-1:123456789012:global/webacl/console/abc",
        "stepwise:console_user_pool_id": "eu-west-1_AbCdEf123",
        "stepwise:console_user_pool_domain": "https://login.example.com",
    }
    out = tmp_path_factory.mktemp("cdk.out.console")
    synthesize(out, context=context)
    return {a.stack_name: a.template for a in read_assemblies(out)}


def test_console_infra_custom_domain_needs_tls_1_2_and_takes_the_waf(custom: dict[str, Template]) -> None:
    console = custom[c.CONSOLE_STACK_NAME]
    _, dist = one(console, "AWS::CloudFront::Distribution")
    config = dist["DistributionConfig"]
    assert config["ViewerCertificate"]["MinimumProtocolVersion"] == "TLSv1.2_2021"
    assert config["ViewerCertificate"]["SslSupportMethod"] == "sni-only"
    assert config["Aliases"] == ["console.example.com"]
    assert config["WebACLId"].endswith("global/webacl/console/abc")
    # an existing pool: no pool, domain or trigger made here; the client, groups and authorizer on it
    assert not of_type(console, "AWS::Cognito::UserPool") and not of_type(console, "AWS::Cognito::UserPoolDomain")
    _, client = one(console, "AWS::Cognito::UserPoolClient")
    assert client["UserPoolId"] == "eu-west-1_AbCdEf123"
    assert "https://console.example.com/" in client["CallbackURLs"]
    _, authorizer = one(console, "AWS::ApiGateway::Authorizer")
    assert "userpool/eu-west-1_AbCdEf123" in json.dumps(authorizer["ProviderARNs"])
    _, headers = one(console, "AWS::CloudFront::ResponseHeadersPolicy")
    assert "https://login.example.com" in json.dumps(headers)
    assert c.OUT_CONSOLE_PRE_TOKEN_FUNCTION in console["Outputs"]  # to attach to the given pool


def test_console_infra_setting_off_builds_none_of_it(tmp_path_factory: pytest.TempPathFactory) -> None:
    out = tmp_path_factory.mktemp("cdk.out.noconsole")
    synthesize(out, context={"stepwise:console": False})
    stacks = {a.stack_name: a.template for a in read_assemblies(out)}
    assert set(stacks) == {c.STORES_STACK_NAME, c.STACK_NAME}
    kinds = {r["Type"] for t in stacks.values() for r in t["Resources"].values()}
    assert not {k for k in kinds if k.startswith(("AWS::CloudFront::", "AWS::Cognito::"))}
    assert "Custom::CDKBucketDeployment" not in kinds and "AWS::SSM::Parameter" not in kinds
    functions = of_type(stacks[c.STACK_NAME], "AWS::Lambda::Function")
    assert not any(k.startswith(c.PRE_TOKEN_FUNCTION_ID) for k in functions)
    assert not any(c.ENV_CONSOLE_URL_PARAMETER in json.dumps(f) for f in functions.values())
    assert not any(c.ENV_PERSONA_GROUPS in json.dumps(f) for f in functions.values())
    assert c.CONSOLE_ACCESS_LOG_PREFIX not in json.dumps(stacks[c.STORES_STACK_NAME])


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"console_user_pool_id": "eu-west-1_AbCdEf123"}, "name an existing pool together"),
        ({"console_domain_names": "console.example.com"}, "name a custom domain together"),
        ({"console_certificate_arn": "arn:aws:acm:eu-west-1:123456789012:certificate/abc"}, "acm:us-east-1"),
        ({"console_waf_web_acl_arn": "arn:aws:wafv2:eu-west-1:123456789012:regional/webacl/x/y"}, "global/webacl"),
        ({"console_mfa": "sometimes"}, "'off', 'optional' or 'required'"),
    ],
)
def test_console_infra_settings_refuse_bad_values_naming_the_rule(context: dict[str, Any], message: str) -> None:
    from pydantic import ValidationError

    from infra.config import StackConfig

    with pytest.raises(ValidationError, match=message):
        StackConfig.model_validate(context)
