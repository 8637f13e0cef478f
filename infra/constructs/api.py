"""The REST API: IAM-authorized routes, JSON errors, access logs, throttling."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra import constants as c

_JSON_ERROR = '{"error": "$context.error.responseType", "message": $context.error.messageString}'


class Api(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        throttle_rate: float,
        throttle_burst: int,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, id_)
        access_logs = logs.LogGroup(self, "AccessLogs", retention=log_retention, removal_policy=RemovalPolicy.RETAIN)
        self.rest_api = apigw.RestApi(
            self,
            "RestApi",
            description="Stepwise API",
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            deploy_options=apigw.StageOptions(
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
            ),
            default_method_options=apigw.MethodOptions(authorization_type=apigw.AuthorizationType.IAM),
            endpoint_types=[apigw.EndpointType.REGIONAL],
        )
        self.validator = self.rest_api.add_request_validator(
            "Validator", validate_request_body=True, validate_request_parameters=True
        )
        for kind in (apigw.ResponseType.DEFAULT_4_XX, apigw.ResponseType.DEFAULT_5_XX):
            self.rest_api.add_gateway_response(
                f"Json{kind.response_type}",
                type=kind,
                templates={"application/json": _JSON_ERROR},
            )
        # API Gateway answers an unknown route with 403 "Missing Authentication Token"; say 404.
        self.rest_api.add_gateway_response(
            "UnknownRoute",
            type=apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN,
            status_code="404",
            templates={"application/json": '{"error": "NotFound", "message": "no such route"}'},
        )

    def add_route(self, method: str, path: str, function: lambda_.IFunction) -> apigw.Method:
        """Route `METHOD /a/{b}/c` to a Lambda proxy integration."""
        resource = self.rest_api.root.resource_for_path(path.strip("/"))
        return resource.add_method(
            method, apigw.LambdaIntegration(function, proxy=True), request_validator=self.validator
        )
