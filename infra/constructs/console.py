"""The web console on AWS (stack setting `console`, README "Security model").

- Assets: a private S3 bucket (public access blocked, SSE-S3, TLS only, server access logs to the
  stores' access-log bucket, versioned, retained like every bucket of the app: the assets are
  rebuilt by every deploy, but a retained bucket never fails a stack deletion and keeps what was
  served until someone chooses to delete it) behind a CloudFront distribution that reads it through
  an Origin Access Control (the bucket policy names the distribution; no OAI, no public read).
  `config.json` next to the assets tells the console its API, user pool domain, client id, region.
- HTTPS only (viewers redirected to https), TLS 1.2 (2021 policy) where a certificate is given,
  security headers on every answer (a strict Content-Security-Policy, HSTS, nosniff, frame DENY,
  referrer policy), CloudFront access logs into the console's own log bucket (CloudFront's
  standard logs need a bucket with ACLs, which the stores' access-log bucket refuses), an optional
  CloudFront-scope WAF web ACL.
- Sign-in: a Cognito user pool (created unless an existing pool is given): no self sign-up, strong
  passwords, MFA per setting, threat protection, managed login, one public app client with the
  authorization-code grant (PKCE, no secret) whose callback and logout URLs are the distribution.
  One group per persona (infra/constructs/personas.py).
- The console's API: a second REST API with the pool's authorizer in front of the SAME functions
  as the IAM-authorized API (the CLI, notebooks and services keep SigV4 there). Each method
  requires the access-token scopes `stepwise/<Persona>` of the personas that may call it (the
  persona matrix); a pre-token-generation trigger (functions/handlers/pre_token.py) adds those
  scopes from the user's groups, and the API function checks the groups again
  (functions/logic/personas.py). CloudFront serves it under `/v1/*` on the console's own origin,
  so the browser calls its own origin (no CORS).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from aws_cdk import Aws, CfnOutput, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from infra import constants as c
from infra.constructs.api import ApiRoute, stage_options
from infra.constructs.storage import hardened_bucket
from infra.nag import acknowledge

Route = tuple[str, str]
_MFA = {"off": cognito.Mfa.OFF, "optional": cognito.Mfa.OPTIONAL, "required": cognito.Mfa.REQUIRED}
_JSON_ERROR = '{"error": "$context.error.responseType", "message": $context.error.messageString}'


def persona_scope(persona: str) -> str:
    """The access-token scope the pre-token trigger adds for a persona: `stepwise/<Persona>`."""
    return f"{c.CONSOLE_SCOPE_SERVER}/{persona}"


def route_scopes(persona_routes: Mapping[str, Sequence[Route]]) -> dict[Route, list[str]]:
    """(METHOD, path) -> the scopes of the personas that may call it (the persona matrix)."""
    scopes: dict[Route, list[str]] = {}
    for persona, routes in persona_routes.items():
        for route in routes:
            scopes.setdefault(route, []).append(persona_scope(persona))
    return scopes


def content_security_policy(*, api_url: str, region: str, pool_domain: str) -> str:
    """The console's CSP: its own origin only, plus the API and Cognito endpoints it calls."""
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "frame-src 'self' blob:",
            f"connect-src 'self' {api_url} https://cognito-idp.{region}.amazonaws.com {pool_domain}",
            f"form-action 'self' {pool_domain}",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        )
    )


class Console(Construct):
    """Attributes: `bucket`, `distribution`, `url`, `user_pool`, `client`, `pool_domain_url`,
    `rest_api` (the console's API) and `methods` ((METHOD, path) -> its method)."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        routes: Sequence[ApiRoute],
        persona_routes: Mapping[str, Sequence[Route]],
        access_logs_bucket_name: str,
        assets_dir: Path,
        stage: str,
        mfa: str,
        log_retention: logs.RetentionDays,
        throttle_rate: float,
        throttle_burst: int,
        pre_token_function: lambda_.IFunction,
        user_pool_id: str | None = None,
        user_pool_domain: str | None = None,
        certificate_arn: str | None = None,
        domain_names: Sequence[str] = (),
        waf_web_acl_arn: str | None = None,
    ) -> None:
        super().__init__(scope, id_)
        access_logs = s3.Bucket.from_bucket_name(self, "AccessLogs", access_logs_bucket_name)
        self._assets_bucket(access_logs)
        self._log_bucket(access_logs)
        self._user_pool(stage=stage, mfa=mfa, user_pool_id=user_pool_id, user_pool_domain=user_pool_domain)
        self._api(
            routes=routes,
            persona_routes=persona_routes,
            log_retention=log_retention,
            throttle_rate=throttle_rate,
            throttle_burst=throttle_burst,
        )
        self._distribution(certificate_arn=certificate_arn, domain_names=domain_names, waf_web_acl_arn=waf_web_acl_arn)
        self._sign_in(domain_names=domain_names, pre_token_function=pre_token_function, created=user_pool_id is None)
        self._deploy_assets(assets_dir)
        self.url_parameter = ssm.StringParameter(
            self,
            "UrlParameter",
            parameter_name=c.CONSOLE_URL_PARAMETER.format(stage=stage),
            string_value=self.url,
            description="The Stepwise console's https URL (approval notifications link to it)",
        )
        stack = Stack.of(self)
        CfnOutput(stack, c.OUT_CONSOLE_URL, value=self.url, description="the web console")
        CfnOutput(stack, c.OUT_CONSOLE_API_URL, value=self.rest_api.url, description="the console's API (Cognito)")
        CfnOutput(stack, c.OUT_CONSOLE_USER_POOL_ID, value=self.user_pool.user_pool_id)
        CfnOutput(stack, c.OUT_CONSOLE_CLIENT_ID, value=self.client.user_pool_client_id)
        CfnOutput(stack, c.OUT_CONSOLE_BUCKET, value=self.bucket.bucket_name)

    # -- assets and logs ---------------------------------------------------------------------
    def _assets_bucket(self, access_logs: s3.IBucket) -> None:
        self.bucket = hardened_bucket(
            self, "Assets", access_logs=access_logs, log_prefix=c.CONSOLE_ACCESS_LOG_PREFIX, noncurrent_days=30
        )
        acknowledge(
            self.bucket,
            "NIST.800.53.R5::NIST.800.53.R5-S3DefaultEncryptionKMS",
            "Public static assets (HTML, JS, CSS) read by CloudFront through OAC: SSE-S3 is enough and "
            "keeps the key policy free of a CloudFront grant.",
        )

    def _log_bucket(self, access_logs: s3.IBucket) -> None:
        self.log_bucket = hardened_bucket(
            self,
            "Logs",
            access_logs=access_logs,
            log_prefix=f"{c.CONSOLE_ACCESS_LOG_PREFIX}logs/",
            # CloudFront's standard logs are written with an ACL granting the bucket owner
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-logs",
                    expiration=Duration.days(365),
                    noncurrent_version_expiration=Duration.days(30),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
        )
        acknowledge(
            self.log_bucket,
            "NIST.800.53.R5::NIST.800.53.R5-S3DefaultEncryptionKMS",
            "CloudFront delivers standard logs only to SSE-S3 buckets.",
        )

    # -- sign-in -----------------------------------------------------------------------------
    def _user_pool(self, *, stage: str, mfa: str, user_pool_id: str | None, user_pool_domain: str | None) -> None:
        if user_pool_id:
            self.user_pool: cognito.IUserPool = cognito.UserPool.from_user_pool_id(self, "UserPool", user_pool_id)
            self.pool_domain_url = str(user_pool_domain)
            return
        pool = cognito.UserPool(
            self,
            "UserPool",
            self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(username=True, email=True),
            sign_in_case_sensitive=False,
            password_policy=cognito.PasswordPolicy(
                min_length=14,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
                temp_password_validity=Duration.days(3),
            ),
            mfa=_MFA[mfa],
            mfa_second_factor=cognito.MfaSecondFactor(sms=False, otp=True) if mfa != "off" else None,
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            feature_plan=cognito.FeaturePlan.PLUS,
            standard_threat_protection_mode=cognito.StandardThreatProtectionMode.FULL_FUNCTION,
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        # cdk-nag reads the (older) AdvancedSecurityMode property; PLUS + FULL_FUNCTION is its successor
        pool.node.default_child.add_property_override(  # type: ignore[union-attr]
            "UserPoolAddOns.AdvancedSecurityMode", "ENFORCED"
        )
        if mfa != "required":
            acknowledge(
                pool,
                "AwsSolutions::AwsSolutions-COG2",
                f"MFA is the stack setting console_mfa ({mfa}); 'required' is the default.",
            )
        acknowledge(
            pool,
            "AwsSolutions::AwsSolutions-COG8",
            "The PLUS feature plan is set (threat protection in full-function mode).",
        )
        domain = pool.add_domain(
            "Login",
            cognito_domain=cognito.CognitoDomainOptions(domain_prefix=f"stepwise-{stage}-{Aws.ACCOUNT_ID}"),
            managed_login_version=cognito.ManagedLoginVersion.NEWER_MANAGED_LOGIN,
        )
        self.user_pool = pool
        self.pool_domain_url = domain.base_url()

    def _sign_in(self, *, domain_names: Sequence[str], pre_token_function: lambda_.IFunction, created: bool) -> None:
        urls = [self.url, *(f"https://{name}" for name in domain_names)]
        self.client = self.user_pool.add_client(
            "Client",
            generate_secret=False,  # a browser app: public client, the code exchange is held by PKCE
            auth_flows=cognito.AuthFlow(user_srp=True),
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True, implicit_code_grant=False),
                # persona scopes are never requested: the pre-token trigger adds them from the groups
                scopes=[cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL, cognito.OAuthScope.PROFILE],
                callback_urls=[f"{u}/" for u in urls],
                logout_urls=[f"{u}/" for u in urls],
            ),
            prevent_user_existence_errors=True,
            access_token_validity=Duration.hours(1),
            id_token_validity=Duration.hours(1),
            refresh_token_validity=Duration.hours(12),
            enable_token_revocation=True,
        )
        for persona in self.personas:
            cognito.CfnUserPoolGroup(
                self,
                f"Group{persona}",
                user_pool_id=self.user_pool.user_pool_id,
                group_name=persona,
                description=f"Stepwise persona {persona}: its routes in the console (scope {persona_scope(persona)})",
            )
        if created:
            cognito.CfnManagedLoginBranding(
                self,
                "Branding",
                user_pool_id=self.user_pool.user_pool_id,
                client_id=self.client.user_pool_client_id,
                use_cognito_provided_values=True,
            )
            pool = self.user_pool.node.default_child
            pool.lambda_config = cognito.CfnUserPool.LambdaConfigProperty(  # type: ignore[union-attr]
                pre_token_generation_config=cognito.CfnUserPool.PreTokenGenerationConfigProperty(
                    lambda_arn=pre_token_function.function_arn, lambda_version="V2_0"
                )
            )
            lambda_.CfnPermission(
                self,
                "PreTokenInvoke",
                action="lambda:InvokeFunction",
                function_name=pre_token_function.function_arn,
                principal="cognito-idp.amazonaws.com",
                source_arn=self.user_pool.user_pool_arn,
                source_account=Aws.ACCOUNT_ID,
            )

    # -- the console's API ----------------------------------------------------------------------
    def _api(
        self,
        *,
        routes: Sequence[ApiRoute],
        persona_routes: Mapping[str, Sequence[Route]],
        log_retention: logs.RetentionDays,
        throttle_rate: float,
        throttle_burst: int,
    ) -> None:
        access_logs = logs.LogGroup(self, "ApiAccessLogs", retention=log_retention, removal_policy=RemovalPolicy.RETAIN)
        self._log_retention = log_retention
        why_logs = (
            "CloudWatch Logs encrypts at rest with its own keys; the app's KMS key is the stores stack's, "
            "whose key policy this stack does not change (access logs hold no model or data content)."
        )
        acknowledge(access_logs, "NIST.800.53.R5::NIST.800.53.R5-CloudWatchLogGroupEncrypted", why_logs)
        self.rest_api = apigw.RestApi(
            self,
            "Api",
            description="Stepwise console API (Cognito user pool callers, the same functions as the IAM API)",
            cloud_watch_role=False,  # the account's API Gateway logging role is the main API's
            deploy_options=stage_options(
                throttle_rate=throttle_rate, throttle_burst=throttle_burst, access_logs=access_logs
            ),
            endpoint_types=[apigw.EndpointType.REGIONAL],
        )
        self.authorizer = apigw.CognitoUserPoolsAuthorizer(
            self,
            "Authorizer",
            cognito_user_pools=[self.user_pool],
            identity_source="method.request.header.Authorization",
        )
        validator = self.rest_api.add_request_validator(
            "Validator", validate_request_body=True, validate_request_parameters=True
        )
        json_object = self.rest_api.add_model(
            "JsonObject",
            content_type="application/json",
            schema=apigw.JsonSchema(schema=apigw.JsonSchemaVersion.DRAFT4, type=apigw.JsonSchemaType.OBJECT),
        )
        for kind in (apigw.ResponseType.DEFAULT_4_XX, apigw.ResponseType.DEFAULT_5_XX):
            self.rest_api.add_gateway_response(
                f"Json{kind.response_type}", type=kind, templates={"application/json": _JSON_ERROR}
            )
        self.personas = tuple(persona_routes)
        scopes = route_scopes(persona_routes)
        self.methods: dict[Route, apigw.Method] = {}
        functions: dict[str, lambda_.IFunction] = {}
        for route in routes:
            allowed = scopes.get((route.method, route.path))
            if route.service or not allowed:
                continue  # services' routes (predict, feedback) and routes no persona has stay IAM-only
            uri = Fn.join(
                "",
                [
                    f"arn:{Aws.PARTITION}:apigateway:{Aws.REGION}:lambda:path/2015-03-31/functions/",
                    route.function.function_arn,
                    "/invocations",
                ],
            )
            resource = self.rest_api.root.resource_for_path(route.path.strip("/"))
            self.methods[(route.method, route.path)] = resource.add_method(
                route.method,
                apigw.Integration(type=apigw.IntegrationType.AWS_PROXY, integration_http_method="POST", uri=uri),
                request_validator=validator,
                request_models={"application/json": json_object} if route.json_body else None,
                authorization_type=apigw.AuthorizationType.COGNITO,
                authorizer=self.authorizer,
                authorization_scopes=allowed,
            )
            functions[route.function.node.path] = route.function
        for i, fn in enumerate(functions.values()):  # one grant per function, not one per method
            lambda_.CfnPermission(
                self,
                f"Invoke{i}",
                action="lambda:InvokeFunction",
                function_name=fn.function_arn,
                principal="apigateway.amazonaws.com",
                source_arn=self.rest_api.arn_for_execute_api("*", "/*", c.API_STAGE),
            )
        acknowledge(
            self.rest_api,
            "AwsSolutions::AwsSolutions-APIG3",
            "The console's API is reached through the console's CloudFront distribution, where the optional "
            "WAF web ACL (console_waf_web_acl_arn) applies; stage throttling limits abuse.",
        )

    # -- CloudFront --------------------------------------------------------------------------------
    def _distribution(
        self, *, certificate_arn: str | None, domain_names: Sequence[str], waf_web_acl_arn: str | None
    ) -> None:
        region = Stack.of(self).region
        headers = cloudfront.ResponseHeadersPolicy(
            self,
            "Headers",
            comment="Stepwise console: strict CSP, HSTS, nosniff, frame DENY, referrer policy",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy=content_security_policy(
                        api_url=self.rest_api.url.rstrip("/"), region=region, pool_domain=self.pool_domain_url
                    ),
                    override=True,
                ),
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=Duration.days(730), include_subdomains=True, preload=True, override=True
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption.DENY, override=True
                ),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.STRICT_ORIGIN_WHEN_CROSS_ORIGIN, override=True
                ),
            ),
        )
        # API answers are per caller: the token is part of the cache key, and nothing is kept (TTL 0
        # unless the API says otherwise, at most a second)
        api_cache = cloudfront.CachePolicy(
            self,
            "ApiCache",
            comment="Stepwise console API: per-token, not cached",
            default_ttl=Duration.seconds(0),
            min_ttl=Duration.seconds(0),
            max_ttl=Duration.seconds(1),
            header_behavior=cloudfront.CacheHeaderBehavior.allow_list("Authorization"),
            query_string_behavior=cloudfront.CacheQueryStringBehavior.all(),
            cookie_behavior=cloudfront.CacheCookieBehavior.none(),
        )
        certificate = (
            acm.Certificate.from_certificate_arn(self, "Certificate", certificate_arn) if certificate_arn else None
        )
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment="Stepwise console",
            default_root_object="index.html",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                response_headers_policy=headers,
            ),
            additional_behaviors={
                "/v1/*": cloudfront.BehaviorOptions(
                    origin=origins.RestApiOrigin(self.rest_api),
                    viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                    allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
                    cache_policy=api_cache,
                    origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
                    response_headers_policy=headers,
                )
            },
            certificate=certificate,
            domain_names=list(domain_names) or None,
            minimum_protocol_version=cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            enable_logging=True,
            log_bucket=self.log_bucket,
            log_file_prefix="cloudfront/",
            web_acl_id=waf_web_acl_arn,
        )
        self.url = f"https://{domain_names[0]}" if domain_names else f"https://{self.distribution.domain_name}"
        if not certificate_arn:
            for rule in ("AwsSolutions::AwsSolutions-CFR4", "AwsSolutions::AwsSolutions-CFR5"):
                acknowledge(
                    self.distribution,
                    rule,
                    "No custom domain is set (console_certificate_arn): the default CloudFront certificate "
                    "serves *.cloudfront.net, whose minimum TLS version CloudFront fixes; viewers are "
                    "redirected to HTTPS. With a certificate the distribution requires TLSv1.2_2021.",
                )
        if not waf_web_acl_arn:
            acknowledge(
                self.distribution,
                "AwsSolutions::AwsSolutions-CFR2",
                "A CloudFront-scope WAF web ACL is an optional stack setting (console_waf_web_acl_arn).",
            )
        acknowledge(
            self.distribution,
            "AwsSolutions::AwsSolutions-CFR1",
            "The console is for the organization's users wherever they are; sign-in (Cognito) gates every "
            "call of its API, and a WAF web ACL with geo rules can be set (console_waf_web_acl_arn).",
        )

    def _deploy_assets(self, assets_dir: Path) -> None:
        """The assets and the runtime config.json (the console reads it at start)."""
        config = {
            "api": self.url,  # same origin: CloudFront forwards /v1/* to the console's API
            "auth": "cognito",
            "userPoolDomain": self.pool_domain_url,
            "clientId": self.client.user_pool_client_id,
            "userPoolId": self.user_pool.user_pool_id,
            "region": Stack.of(self).region,
        }
        deploy_logs = logs.LogGroup(
            self, "DeployLogs", retention=self._log_retention, removal_policy=RemovalPolicy.RETAIN
        )
        acknowledge(
            deploy_logs,
            "NIST.800.53.R5::NIST.800.53.R5-CloudWatchLogGroupEncrypted",
            "CloudWatch Logs encrypts at rest with its own keys; the deploy handler logs file names only.",
        )
        self.deployment = s3deploy.BucketDeployment(
            self,
            "Deploy",
            sources=[
                # the folder's own config.json is the local cloud's default; the stack writes its own
                s3deploy.Source.asset(str(assets_dir), exclude=[c.CONSOLE_CONFIG_FILE]),
                s3deploy.Source.json_data(c.CONSOLE_CONFIG_FILE, config),
            ],
            destination_bucket=self.bucket,
            distribution=self.distribution,
            distribution_paths=["/index.html", f"/{c.CONSOLE_CONFIG_FILE}"],
            prune=True,
            memory_limit=256,
            log_group=deploy_logs,
        )
        self._acknowledge_deployment_handler()

    def _acknowledge_deployment_handler(self) -> None:
        """CDK's singleton Lambda behind Custom::CDKBucketDeployment (it copies the asset zip into
        the bucket and invalidates the distribution at deploy time): its CDK-made grants acknowledged."""
        iam5 = "AwsSolutions::AwsSolutions-IAM5"
        grant = "CDK's bucket-deployment grant"
        why = {
            "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AWSLambdaBasicExecutionRole]": "CDK's bucket-deployment handler; it only writes its own logs.",
            f"{iam5}[Resource::*]": "CDK's bucket-deployment handler calls cloudfront:CreateInvalidation and "
            "GetInvalidation, which CDK grants on every distribution.",
            f"{iam5}[Action::s3:GetObject*]": f"{grant}: read the asset zip.",
            f"{iam5}[Action::s3:GetBucket*]": f"{grant} on the two buckets.",
            f"{iam5}[Action::s3:List*]": f"{grant}: list to prune.",
            f"{iam5}[Action::s3:DeleteObject*]": f"{grant}: prune old assets.",
            f"{iam5}[Action::s3:Abort*]": f"{grant}: multipart uploads.",
            f"{iam5}[Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*]": (
                "CDK's bootstrap assets bucket: the deployment reads its asset zip there."
            ),
            f"{iam5}[Resource::<{self._bucket_logical_id()}.Arn>/*]": (
                "The console's assets bucket, every object of which the deployment writes or prunes."
            ),
            "AwsSolutions::AwsSolutions-L1": "CDK pins the runtime of its bucket-deployment handler.",
            "Serverless::Serverless-LambdaDLQ": "CloudFormation invokes the custom resource and reports its failure.",
            "Serverless::Serverless-LambdaLatestVersion": "CDK pins the runtime of its bucket-deployment handler.",
            "Serverless::Serverless-LambdaTracing": "CDK's deploy-time handler; nothing to trace at run time.",
        }
        stack = Stack.of(self)
        for child in stack.node.children:
            if child.node.id.startswith("Custom::CDKBucketDeployment"):
                for rule, reason in why.items():
                    acknowledge(child, rule, reason)

    def _bucket_logical_id(self) -> str:
        stack = Stack.of(self)
        return str(stack.resolve(stack.get_logical_id(self.bucket.node.default_child)))  # type: ignore[arg-type]
