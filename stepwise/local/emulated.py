"""CloudFormation resource types moto's CloudFormation does not create, emulated from the
template's own properties so the rest of the template (Fn::GetAtt, Ref, outputs) resolves.

- AWS::CloudWatch::Alarm: created in moto's CloudWatch (put_metric_alarm with the template's
  properties); Arn attribute as on AWS. Alarms are stored, not evaluated.

- AWS::Cognito::UserPool: created in moto's Cognito (the pool's name only: sign-in is the local
  console's identity picker); Ref and Arn as on AWS.
- AWS::CloudFront::Distribution and AWS::CloudFront::OriginAccessControl: nothing serves them
  locally (the local cloud serves the console itself); they get an id, and the distribution a
  `<id>.cloudfront.net` DomainName, so what names them (the console's config, callback URLs,
  the CSP) resolves.

Worked around (moto creates the resource, but mis-reads a property):
- AWS::KMS::Key: moto's CloudFormation passes the template's Tags (Key/Value) to KMS's tagger,
  which wants TagKey/TagValue, and fails; the tags are renamed, then moto creates the key.
- AWS::SSM::Parameter: the template's Tags are a map (as CloudFormation defines them for SSM), moto
  wants a Key/Value list; the tags are converted, then moto creates the parameter.

AWS::S3::BucketPolicy stays skipped on purpose: moto would evaluate the SSL-only Deny against its
in-process calls (no TLS) and refuse every request, which AWS would not.

Everything else moto skips stays skipped and is reported by the local cloud.
"""

from __future__ import annotations

import hashlib
from typing import Any

import boto3
from moto.cloudformation import parsing
from moto.core.common_models import CloudFormationModel
from moto.kms.models import Key as MotoKmsKey  # imported first: a later CloudFormationModel subclass wins
from moto.ssm.models import Parameter as MotoSsmParameter

_ALARM_PARAMS = {
    "AlarmName", "AlarmDescription", "ActionsEnabled", "OKActions", "AlarmActions",
    "InsufficientDataActions", "MetricName", "Namespace", "Statistic", "ExtendedStatistic",
    "Dimensions", "Period", "Unit", "EvaluationPeriods", "DatapointsToAlarm", "Threshold",
    "ComparisonOperator", "TreatMissingData", "EvaluateLowSampleCountPercentile", "Metrics",
    "ThresholdMetricId",
}  # fmt: skip


def _client(service: str, region: str) -> Any:
    return boto3.client(service, region_name=region, aws_access_key_id="local", aws_secret_access_key="local")


class EmulatedAlarm(CloudFormationModel):
    def __init__(self, name: str, account_id: str, region: str) -> None:
        self.name = name
        self.arn = f"arn:aws:cloudwatch:{region}:{account_id}:alarm:{name}"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CloudWatch::Alarm"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "AlarmName"

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Arn"

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        return self.arn

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> EmulatedAlarm:
        props = {k: v for k, v in cloudformation_json["Properties"].items() if k in _ALARM_PARAMS}
        props["AlarmName"] = props.get("AlarmName") or resource_name
        if "Threshold" in props:
            props["Threshold"] = float(props["Threshold"])
        for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
            if key in props:
                props[key] = int(props[key])
        for metric in props.get("Metrics", []):
            stat = metric.get("MetricStat")
            if stat and "Period" in stat:
                stat["Period"] = int(stat["Period"])
        _client("cloudwatch", region_name).put_metric_alarm(**props)
        return cls(props["AlarmName"], account_id, region_name)


class EmulatedUserPool(CloudFormationModel):
    def __init__(self, pool_id: str, arn: str) -> None:
        self.pool_id, self.arn = pool_id, arn

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Cognito::UserPool"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "UserPoolName"

    @property
    def physical_resource_id(self) -> str:
        return self.pool_id

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in ("Arn", "UserPoolId", "ProviderName")

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name == "Arn":
            return self.arn
        return self.pool_id

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> EmulatedUserPool:
        name = cloudformation_json.get("Properties", {}).get("UserPoolName") or resource_name
        pool = _client("cognito-idp", region_name).create_user_pool(PoolName=name)["UserPool"]
        return cls(pool["Id"], pool["Arn"])


class _EmulatedCloudFront:
    """A CloudFront resource with an id (and a distribution's DomainName), nothing behind it (a
    mixin: moto lists CloudFormationModel's direct subclasses only)."""

    def __init__(self, resource_id: str) -> None:
        self.resource_id = resource_id

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @property
    def physical_resource_id(self) -> str:
        return self.resource_id

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in ("Id", "DomainName")

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        return f"{self.resource_id.lower()}.cloudfront.net" if attribute_name == "DomainName" else self.resource_id

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> _EmulatedCloudFront:
        digest = hashlib.sha256(f"{account_id}/{region_name}/{resource_name}".encode()).hexdigest()
        return cls(f"E{digest[:13].upper()}")


class EmulatedDistribution(_EmulatedCloudFront, CloudFormationModel):
    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CloudFront::Distribution"


class EmulatedOriginAccessControl(_EmulatedCloudFront, CloudFormationModel):
    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CloudFront::OriginAccessControl"


class KmsKeyWithTemplateTags(CloudFormationModel):
    """AWS::KMS::Key with the template's Key/Value tags given to moto as KMS's TagKey/TagValue."""

    @staticmethod
    def cloudformation_type() -> str:
        return MotoKmsKey.cloudformation_type()

    @staticmethod
    def cloudformation_name_type() -> str:
        return MotoKmsKey.cloudformation_name_type()

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return MotoKmsKey.has_cfn_attr(attr)

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> Any:
        props = dict(cloudformation_json["Properties"])
        props["Tags"] = [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in props.get("Tags", [])]
        return MotoKmsKey.create_from_cloudformation_json(
            resource_name, {**cloudformation_json, "Properties": props}, account_id, region_name, **kwargs
        )


class SsmParameterWithTemplateTags(CloudFormationModel):
    """AWS::SSM::Parameter with the template's tag map given to moto as a Key/Value list."""

    @staticmethod
    def cloudformation_type() -> str:
        return MotoSsmParameter.cloudformation_type()

    @staticmethod
    def cloudformation_name_type() -> str:
        return MotoSsmParameter.cloudformation_name_type()

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return MotoSsmParameter.has_cfn_attr(attr)

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> Any:
        props = dict(cloudformation_json["Properties"])
        if isinstance(props.get("Tags"), dict):
            props["Tags"] = [{"Key": k, "Value": v} for k, v in props["Tags"].items()]
        return MotoSsmParameter.create_from_cloudformation_json(
            resource_name, {**cloudformation_json, "Properties": props}, account_id, region_name, **kwargs
        )


EMULATED_TYPES = {
    model.cloudformation_type()
    for model in (EmulatedAlarm, EmulatedUserPool, EmulatedDistribution, EmulatedOriginAccessControl)
}


def register() -> None:
    """Make moto's CloudFormation see the emulated models (it lists CloudFormationModel's subclasses)."""
    parsing.get_model_list.cache_clear()
    parsing.get_model_map.cache_clear()
    parsing.get_name_type_map.cache_clear()
