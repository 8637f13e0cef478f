"""Template lifecycle rules in the S3 API's shape (moto's CloudFormation ignores them)."""

from __future__ import annotations

from stepwise.local.cloud import _lifecycle_rule, scheduled_event


def test_lifecycle_rule_maps_prefix_expiry_and_noncurrent_versions() -> None:
    rule = {
        "Id": "captures",
        "Status": "Enabled",
        "Prefix": "captures/",
        "ExpirationInDays": 30,
        "NoncurrentVersionExpiration": {"NoncurrentDays": 7},
    }
    assert _lifecycle_rule(rule) == {
        "ID": "captures",
        "Status": "Enabled",
        "Filter": {"Prefix": "captures/"},
        "Expiration": {"Days": 30},
        "NoncurrentVersionExpiration": {"NoncurrentDays": 7},
    }


def test_lifecycle_rule_maps_tag_filters_and_transitions() -> None:
    rule = {
        "Id": "retired",
        "Status": "Enabled",
        "TagFilters": [{"Key": "stepwise:retired", "Value": "true"}],
        "Transitions": [{"TransitionInDays": 30, "StorageClass": "GLACIER"}],
    }
    mapped = _lifecycle_rule(rule)
    assert mapped["Filter"] == {"Tag": {"Key": "stepwise:retired", "Value": "true"}}
    assert mapped["Transitions"] == [{"Days": 30, "StorageClass": "GLACIER"}]


def test_object_lock_maps_default_retention_to_integers() -> None:
    from stepwise.local.cloud import _object_lock

    lock = {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": "2555"}}}
    assert _object_lock(lock) == {
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 2555}},
    }


def test_scheduled_event_applies_the_targets_input_transformer() -> None:
    # Given a target whose input takes the scheduled event's time (as CDK's EventField.time renders it)
    target = {
        "InputTransformer": {
            "InputPathsMap": {"time": "$.time", "rule": "$.resources"},
            "InputTemplate": '{"all_models":true,"time":<time>,"quoted":"<time>","rules":<rule>}',
        }
    }
    # When the local cloud fires the schedule
    event = scheduled_event("Schedule", target)
    # Then the placeholders hold the scheduled event's values
    assert event["all_models"] is True
    assert event["time"] == event["quoted"] and event["time"].endswith("Z")
    assert event["rules"] == ["arn:aws:events:us-east-1:123456789012:rule/Schedule"]


def test_scheduled_event_constant_input_or_the_event_itself() -> None:
    assert scheduled_event("R", {"Input": '{"a": 1}'}) == {"a": 1}
    assert scheduled_event("R", {})["detail-type"] == "Scheduled Event"
