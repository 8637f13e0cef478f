"""The REST API: IAM-authorized routes, JSON errors, access logs, throttling.

Authentication (README "Security model"):
- every route is IAM-authorized (SigV4) by default;
- with the stack setting `cognito_user_pool_arn`, the control-plane routes use a Cognito user pool
  authorizer instead (browser and SSO callers with an ID token); the prediction routes stay on IAM;
- with `prediction_api_clients`, the prediction routes also require an API key, one per client, in
  a usage plan with per-client throttling and a daily quota: a key meters a client, IAM (never the
  key alone) authenticates it.
Routes that carry a JSON body have a model: API Gateway's validator refuses a body that is not a
JSON object with 400 before the Lambda runs (the Lambda still validates the fields).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import CfnOutput, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra import constants as c

_JSON_ERROR = '{"error": "$context.error.responseType", "message": $context.error.messageString}'
# Gateway answers whose own message would name ARNs, the policy that refused, or the canonical
# request of a bad signature: a fixed message instead (the access log keeps the detail).
_FIXED_MESSAGES = {
    apigw.ResponseType.ACCESS_DENIED: "the caller is not allowed to call this route",
    apigw.ResponseType.UNAUTHORIZED: "the request is not authenticated",
    apigw.ResponseType.INVALID_SIGNATURE: "the request signature does not match (check the credentials and clock)",
    apigw.ResponseType.EXPIRED_TOKEN: "the security token has expired",
    apigw.ResponseType.AUTHORIZER_FAILURE: "the request could not be authorized",
    apigw.ResponseType.AUTHORIZER_CONFIGURATION_ERROR: "the request could not be authorized",
    apigw.ResponseType.WAF_FILTERED: "the request was refused",
    apigw.ResponseType.INVALID_API_KEY: "the API key is missing or not valid for this route",
}
# Gateway throttling (stage limits, a client's usage plan): 429 with a retry hint like the Lambdas'.
_RETRY_AFTER = {apigw.ResponseType.THROTTLED: "1", apigw.ResponseType.QUOTA_EXCEEDED: "3600"}


def _retry_body(error: str, seconds: int) -> str:
    return json.dumps({"error": error, "message": "too many requests", "retry_after_seconds": seconds})


@dataclass(frozen=True)
class ApiRoute:
    """A route as added (`Api.routes`): what a second API in front of the same functions repeats."""

    method: str
    path: str
    function: lambda_.IFunction
    json_body: bool
    service: bool


def stage_options(*, throttle_rate: float, throttle_burst: int, access_logs: logs.ILogGroup) -> apigw.StageOptions:
    """The stage every Stepwise REST API deploys: traced, INFO execution logs and metrics, the
    stack's throttling, and JSON access logs naming the caller."""
    return apigw.StageOptions(
        stage_name=c.API_STAGE,
        tracing_enabled=True,
        logging_level=apigw.MethodLoggingLevel.INFO,
        metrics_enabled=True,
        throttling_rate_limit=throttle_rate,
        throttling_burst_limit=throttle_burst,
        access_log_destination=apigw.LogGroupLogDestination(access_logs),
        access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
            caller=True,
            http_method=True,
            ip=True,
            protocol=True,
            request_time=True,
            resource_path=True,
            response_length=True,
            status=True,
            user=True,
        ),
    )


class Api(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        throttle_rate: float,
        throttle_burst: int,
        log_retention: logs.RetentionDays,
        user_pool_arn: str | None = None,
    ) -> None:
        super().__init__(scope, id_)
        access_logs = logs.LogGroup(self, "AccessLogs", retention=log_retention, removal_policy=RemovalPolicy.RETAIN)
        self.rest_api = apigw.RestApi(
            self,
            "RestApi",
            description="Stepwise API",
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            deploy_options=stage_options(
                throttle_rate=throttle_rate, throttle_burst=throttle_burst, access_logs=access_logs
            ),
            default_method_options=apigw.MethodOptions(authorization_type=apigw.AuthorizationType.IAM),
            endpoint_types=[apigw.EndpointType.REGIONAL],
        )
        self.validator = self.rest_api.add_request_validator(
            "Validator", validate_request_body=True, validate_request_parameters=True
        )
        self.json_object = self.rest_api.add_model(
            "JsonObject",
            content_type="application/json",
            description="Any JSON object (the Lambda validates its fields)",
            schema=apigw.JsonSchema(schema=apigw.JsonSchemaVersion.DRAFT4, type=apigw.JsonSchemaType.OBJECT),
        )
        self.user_pool_authorizer: apigw.CognitoUserPoolsAuthorizer | None = None
        if user_pool_arn:
            pool = cognito.UserPool.from_user_pool_arn(self, "UserPool", user_pool_arn)
            self.user_pool_authorizer = apigw.CognitoUserPoolsAuthorizer(
                self,
                "UserPoolAuthorizer",
                cognito_user_pools=[pool],
                identity_source="method.request.header.Authorization",
            )
        self.usage_plan: apigw.UsagePlan | None = None
        self.routes: list[ApiRoute] = []
        for kind in (apigw.ResponseType.DEFAULT_4_XX, apigw.ResponseType.DEFAULT_5_XX):
            self.rest_api.add_gateway_response(
                f"Json{kind.response_type}",
                type=kind,
                templates={"application/json": _JSON_ERROR},
            )
        for kind, message in _FIXED_MESSAGES.items():
            self.rest_api.add_gateway_response(
                f"Fixed{kind.response_type}",
                type=kind,
                templates={"application/json": json.dumps({"error": kind.response_type, "message": message})},
            )
        for kind, seconds in _RETRY_AFTER.items():
            self.rest_api.add_gateway_response(
                f"Retry{kind.response_type}",
                type=kind,
                response_headers={"Retry-After": f"'{seconds}'"},
                templates={
                    "application/json": json.dumps(
                        {
                            "error": kind.response_type,
                            "message": "too many requests",
                            "retry_after_seconds": int(seconds),
                        }
                    )
                },
            )
        # API Gateway answers an unknown route with 403 "Missing Authentication Token"; say 404.
        self.rest_api.add_gateway_response(
            "UnknownRoute",
            type=apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN,
            status_code="404",
            templates={"application/json": '{"error": "NotFound", "message": "no such route"}'},
        )

    def add_route(
        self,
        method: str,
        path: str,
        function: lambda_.IFunction,
        *,
        json_body: bool | None = None,
        service: bool = False,
        api_key: bool = False,
    ) -> apigw.Method:
        """Route `METHOD /a/{b}/c` to a Lambda proxy integration. `json_body`: the route needs a JSON
        object body (refused before the Lambda otherwise; default: PUT routes, which always carry
        the resource they put, and constants.JSON_BODY_ROUTES); `service`: called by services (IAM even
        when browsers use Cognito); `api_key`: also needs a usage-plan API key."""
        resource = self.rest_api.root.resource_for_path(path.strip("/"))
        cognito_auth = self.user_pool_authorizer is not None and not service
        if json_body is None:
            json_body = method == "PUT" or (method, path) in c.JSON_BODY_ROUTES
        self.routes.append(ApiRoute(method, path, function, json_body, service))
        return resource.add_method(
            method,
            apigw.LambdaIntegration(function, proxy=True),
            request_validator=self.validator,
            request_models={"application/json": self.json_object} if json_body else None,
            authorization_type=apigw.AuthorizationType.COGNITO if cognito_auth else apigw.AuthorizationType.IAM,
            authorizer=self.user_pool_authorizer if cognito_auth else None,
            api_key_required=api_key or None,
        )

    def add_clients(
        self, clients: Sequence[str], *, rate: float, burst: int, quota_per_day: int, methods: Sequence[apigw.Method]
    ) -> apigw.UsagePlan:
        """One API key per client name in a usage plan on the stage: each client's own throttle and
        daily quota on `methods`. The key values are generated by API Gateway (never in the template);
        outputs name each key's id (`aws apigateway get-api-key --api-key <id> --include-value`)."""
        plan = self.rest_api.add_usage_plan(
            "PredictionClients",
            description="Per-client throttling and quota on the prediction routes",
            throttle=apigw.ThrottleSettings(rate_limit=rate, burst_limit=burst),
            quota=apigw.QuotaSettings(limit=quota_per_day, period=apigw.Period.DAY),
        )
        plan.add_api_stage(
            stage=self.rest_api.deployment_stage,
            throttle=[
                apigw.ThrottlingPerMethod(method=m, throttle=apigw.ThrottleSettings(rate_limit=rate, burst_limit=burst))
                for m in methods
            ],
        )
        for client in clients:
            name = client.title().replace("-", "")
            key = self.rest_api.add_api_key(f"Client{name}", description=f"prediction client {client}")
            plan.add_api_key(key)
            CfnOutput(self, f"ApiKey{name}", value=key.key_id, description=f"API key id of client {client}")
        self.usage_plan = plan
        return plan
