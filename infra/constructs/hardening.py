"""Cross-cutting reliability pieces that belong to no single component:

- a CloudWatch alarm on the depth of every dead-letter queue (a message there is an event that
  was never processed: someone must look), sent to the monitoring alarm topic: the queues given,
  and every other SQS queue already in the stack;
- the same topic as the action of every alarm already in the stack that notifies nobody (e.g. the
  serving integrity alarm);
- the optional WAFv2 web ACL association of the API stage (stack setting `waf_web_acl_arn`);
- a retained log group with the stack's retention for CDK's bucket-notification handler, which
  would otherwise log to an implicit /aws/lambda/... group kept forever.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import CfnResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from infra.nag import acknowledge

HARDENING_ID = "Hardening"
DLQ_ALARM_PERIOD = Duration.minutes(5)


class Hardening(Construct):
    """Exposes `dlq_alarms` (name -> Alarm)."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        dead_letter_queues: Mapping[str, sqs.IQueue],
        alarm_topic: sns.ITopic | None,
        log_retention: logs.RetentionDays,
        api_stage: apigw.Stage | None = None,
        waf_web_acl_arn: str | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self.dlq_alarms: dict[str, cloudwatch.Alarm] = {}
        queues = {**_other_queues(Stack.of(self), dead_letter_queues), **dead_letter_queues}
        for name, queue in queues.items():
            alarm = cloudwatch.Alarm(
                self,
                f"{name}DeadLettersAlarm",
                alarm_description=f"{name}: events that failed every retry are waiting in the dead-letter queue",
                metric=queue.metric_approximate_number_of_messages_visible(
                    period=DLQ_ALARM_PERIOD, statistic="Maximum"
                ),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            if alarm_topic is not None:
                alarm.add_alarm_action(cw_actions.SnsAction(alarm_topic))
            self.dlq_alarms[name] = alarm
        if alarm_topic is not None:
            self.silent_alarms = _notify_silent_alarms(Stack.of(self), alarm_topic)
        self._notification_handler_logs(Stack.of(self), log_retention)
        if api_stage is not None and waf_web_acl_arn:
            self.waf_association: wafv2.CfnWebACLAssociation | None = wafv2.CfnWebACLAssociation(
                self, "ApiWebAcl", resource_arn=api_stage.stage_arn, web_acl_arn=waf_web_acl_arn
            )
        else:
            self.waf_association = None

    def _notification_handler_logs(self, stack: Stack, retention: logs.RetentionDays) -> None:
        for child in stack.node.children:
            if not child.node.id.startswith("BucketNotificationsHandler"):
                continue
            function = child.node.find_child("Resource")
            assert isinstance(function, CfnResource)
            log_group = logs.LogGroup(
                self, "BucketNotificationsHandlerLogs", retention=retention, removal_policy=RemovalPolicy.RETAIN
            )
            function.add_property_override("LoggingConfig.LogGroup", log_group.log_group_name)
            policy = child.node.try_find_child("Role")
            policy = policy.node.try_find_child("DefaultPolicy") if policy is not None else None
            if policy is not None:  # the Resource::* finding is on this policy: name every action it covers
                acknowledge(
                    policy,
                    "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                    "X-Ray's PutTraceSegments and PutTelemetryRecords support no resource-level permissions "
                    "(CDK's bucket-notification handler; its s3:PutBucketNotification names the data bucket).",
                )


def _other_queues(stack: Stack, named: Mapping[str, sqs.IQueue]) -> dict[str, sqs.IQueue]:
    """Every other SQS queue already in the stack (all of ours are dead-letter queues), named by
    the construct that holds it, so a component's new DLQ gets its alarm without a wiring change
    (tests/infra/test_delivery.py fails for a DLQ made after this construct)."""
    known = {id(q) for q in named.values()}
    found: dict[str, sqs.IQueue] = {}
    for node in stack.node.find_all():
        if isinstance(node, sqs.Queue) and id(node) not in known and node.node.scope is not None:
            name = node.node.scope.node.id
            found[name if name not in named and name not in found else node.node.path.replace("/", "")] = node
    return found


def _notify_silent_alarms(stack: Stack, topic: sns.ITopic) -> list[str]:
    """Add `topic` to every alarm in the stack that has no alarm action; returns their paths."""
    silent = []
    for node in stack.node.find_all():
        if isinstance(node, cloudwatch.Alarm):
            cfn = node.node.default_child
            if isinstance(cfn, cloudwatch.CfnAlarm) and not stack.resolve(cfn.alarm_actions):
                node.add_alarm_action(cw_actions.SnsAction(topic))
                silent.append(node.node.path)
    return silent
