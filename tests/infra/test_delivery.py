"""Delivery guarantees, read from the synthesized template: every function that AWS invokes
asynchronously (S3 notifications, EventBridge rules, SNS subscriptions, and asynchronous
Invoke calls from our own functions) keeps failed events (an on-failure destination or a DLQ)
and bounds their age; every dead-letter queue has an alarm on its depth, and every alarm notifies
someone (an alarm without an action is a failure nobody hears of).
"""

from __future__ import annotations

import copy
from typing import Any

from stepwise.local.assembly import Assembly

Template = dict[str, Any]
ASYNC_PRINCIPALS = {"s3.amazonaws.com", "events.amazonaws.com", "sns.amazonaws.com"}


def _of_type(template: Template, kind: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == kind}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _target(value: Any) -> str | None:
    """The logical id a `Ref` or `Fn::GetAtt` points at."""
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            return str(value["Fn::GetAtt"][0])
    return None


def async_functions(template: Template) -> dict[str, str]:
    """function logical id -> why it is invoked asynchronously."""
    functions = set(_of_type(template, "AWS::Lambda::Function"))
    found: dict[str, str] = {}
    for lid, perm in _of_type(template, "AWS::Lambda::Permission").items():
        fn = _target(perm["Properties"]["FunctionName"])
        if perm["Properties"].get("Principal") in ASYNC_PRINCIPALS and fn in functions:
            found[fn] = f"{perm['Properties']['Principal']} ({lid})"
    for lid, rule in _of_type(template, "AWS::Events::Rule").items():
        for target in rule["Properties"].get("Targets", []):
            if (fn := _target(target["Arn"])) in functions:
                found[fn] = f"EventBridge rule {lid}"
    for lid, sub in _of_type(template, "AWS::SNS::Subscription").items():
        if sub["Properties"].get("Protocol") == "lambda" and (fn := _target(sub["Properties"]["Endpoint"])):
            found[fn] = f"SNS subscription {lid}"
    # our own functions that may invoke another function (Invoke with InvocationType=Event)
    roles = {_target(f["Properties"]["Role"]) for f in _of_type(template, "AWS::Lambda::Function").values()}
    for lid, policy in _of_type(template, "AWS::IAM::Policy").items():
        if not any(_target(r) in roles for r in policy["Properties"].get("Roles", [])):
            continue
        for statement in _as_list(policy["Properties"]["PolicyDocument"]["Statement"]):
            if "lambda:InvokeFunction" in _as_list(statement["Action"]):
                for resource in _as_list(statement["Resource"]):
                    if (fn := _target(resource)) in functions:
                        found[fn] = f"Invoke from a function ({lid})"
    return found


def dead_letter_queues(template: Template) -> set[str]:
    """Every SQS queue the template uses to keep failed events."""
    queues = set(_of_type(template, "AWS::SQS::Queue"))
    used: set[str] = set()
    for config in _of_type(template, "AWS::Lambda::EventInvokeConfig").values():
        used.add(
            _target(config["Properties"].get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")) or ""
        )
    for fn in _of_type(template, "AWS::Lambda::Function").values():
        used.add(_target(fn["Properties"].get("DeadLetterConfig", {}).get("TargetArn")) or "")
    for rule in _of_type(template, "AWS::Events::Rule").values():
        for target in rule["Properties"].get("Targets", []):
            used.add(_target(target.get("DeadLetterConfig", {}).get("Arn")) or "")
    for queue in _of_type(template, "AWS::SQS::Queue").values():
        used.add(_target(queue["Properties"].get("RedrivePolicy", {}).get("deadLetterTargetArn")) or "")
    return used & queues


def check_delivery(template: Template) -> list[str]:
    problems: list[str] = []
    configs = {
        _target(cfg["Properties"]["FunctionName"]): cfg["Properties"]
        for cfg in _of_type(template, "AWS::Lambda::EventInvokeConfig").values()
    }
    functions = _of_type(template, "AWS::Lambda::Function")
    for fn, why in sorted(async_functions(template).items()):
        config = configs.get(fn, {})
        on_failure = config.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        dlq = functions[fn]["Properties"].get("DeadLetterConfig", {}).get("TargetArn")
        if not (on_failure or dlq):
            problems.append(f"{fn} (invoked by {why}): no on-failure destination or DLQ")
        if not config.get("MaximumEventAgeInSeconds"):
            problems.append(f"{fn} (invoked by {why}): no maximum event age")
        if "MaximumRetryAttempts" not in config:
            problems.append(f"{fn} (invoked by {why}): retry attempts left to the default")
    for lid, rule in _of_type(template, "AWS::Events::Rule").items():
        for target in rule["Properties"].get("Targets", []):
            if not target.get("DeadLetterConfig"):
                problems.append(f"{lid} target {target.get('Id')}: no dead-letter queue")
            if not target.get("RetryPolicy"):
                problems.append(f"{lid} target {target.get('Id')}: no retry policy")
    alarmed = {
        _target(d["Value"])
        for alarm in _of_type(template, "AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("Namespace") == "AWS/SQS"
        and alarm["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
        and alarm["Properties"].get("AlarmActions")
        for d in alarm["Properties"].get("Dimensions", [])
        if d["Name"] == "QueueName"
    }
    for queue in sorted(dead_letter_queues(template) - alarmed):
        problems.append(f"{queue}: dead-letter queue without a depth alarm that notifies")
    for lid, alarm in _of_type(template, "AWS::CloudWatch::Alarm").items():
        if not alarm["Properties"].get("AlarmActions"):
            problems.append(f"{lid}: alarm that notifies nobody (no AlarmActions)")
    return problems


def _function(template: Template, prefix: str) -> str:
    found = [lid for lid in _of_type(template, "AWS::Lambda::Function") if lid.startswith(prefix)]
    assert len(found) == 1, (prefix, found)
    return found[0]


# -- tests ---------------------------------------------------------------------------------------
def test_async_functions_keep_failed_events_and_every_dlq_is_alarmed(assembly: Assembly) -> None:
    # Given the synthesized template
    # When delivery settings are checked
    problems = check_delivery(assembly.template)
    # Then every asynchronous path keeps its failures and every DLQ notifies
    assert problems == [], "\n".join(problems)


def test_async_functions_are_found_for_each_kind_of_trigger(assembly: Assembly) -> None:
    # Given the template
    found = async_functions(assembly.template)
    # Then the validation function (S3) and the drift function (schedule, API) are among them
    validate = _function(assembly.template, "ValidateFunction")
    drift = _function(assembly.template, "DriftFunction")
    assert validate in found and "s3.amazonaws.com" in found[validate], found
    assert drift in found, found
    # And both DLQs are known
    assert len(dead_letter_queues(assembly.template)) >= 2


def test_delivery_check_catches_a_removed_dlq(assembly: Assembly) -> None:
    # Given a copy of the template where the validation function's on-failure destination is gone
    broken = copy.deepcopy(assembly.template)
    validate = _function(broken, "ValidateFunction")
    for config in _of_type(broken, "AWS::Lambda::EventInvokeConfig").values():
        if _target(config["Properties"]["FunctionName"]) == validate:
            config["Properties"].pop("DestinationConfig")
    # When the check runs
    problems = check_delivery(broken)
    # Then it names the function
    assert any(p.startswith(f"{validate} ") and "no on-failure destination" in p for p in problems), problems


def test_delivery_check_catches_a_dlq_without_an_alarm_and_an_unbounded_event_age(assembly: Assembly) -> None:
    # Given a copy without any SQS depth alarm, and without the drift function's maximum event age
    broken = copy.deepcopy(assembly.template)
    for lid, alarm in _of_type(broken, "AWS::CloudWatch::Alarm").items():
        if alarm["Properties"].get("Namespace") == "AWS/SQS":
            del broken["Resources"][lid]
    drift = _function(broken, "DriftFunction")
    for config in _of_type(broken, "AWS::Lambda::EventInvokeConfig").values():
        if _target(config["Properties"]["FunctionName"]) == drift:
            config["Properties"].pop("MaximumEventAgeInSeconds")
    # When the check runs
    problems = check_delivery(broken)
    # Then every DLQ is named, and the drift function
    for queue in dead_letter_queues(broken):
        assert f"{queue}: dead-letter queue without a depth alarm that notifies" in problems, problems
    assert any(p.startswith(f"{drift} ") and "no maximum event age" in p for p in problems), problems


def test_delivery_check_catches_an_alarm_that_notifies_nobody(assembly: Assembly) -> None:
    # Given a copy where one alarm loses its actions
    broken = copy.deepcopy(assembly.template)
    alarm = next(iter(_of_type(broken, "AWS::CloudWatch::Alarm")))
    broken["Resources"][alarm]["Properties"].pop("AlarmActions")
    # When the check runs
    problems = check_delivery(broken)
    # Then it names the alarm
    assert f"{alarm}: alarm that notifies nobody (no AlarmActions)" in problems, problems
