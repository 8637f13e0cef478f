"""Template lifecycle rules in the S3 API's shape (moto's CloudFormation ignores them)."""

from __future__ import annotations

from stepwise.local.cloud import _lifecycle_rule


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
