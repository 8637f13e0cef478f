"""The offline store's SQL side in the synthesized template: the Glue database over the layouts,
the Athena workgroup (results encrypted with the stack's key, configuration enforced, a scan
cap), and the train step's settings and exact, scoped grants for it."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Match, Template

from functions.logic import offline_paths
from infra import constants as c
from infra.constructs import offline_store


def _one(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [r for r in resources.values() if r["Type"] == kind]
    assert len(found) == 1, found
    return found[0]["Properties"]  # type: ignore[no-any-return]


def _train(resources: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    [(lid, fn)] = [
        (k, r) for k, r in resources.items() if r["Type"] == "AWS::Lambda::Function" and k.startswith("TrainFunction")
    ]
    return lid, fn


def test_offline_store_prefixes_match_the_runtime_layout() -> None:
    assert offline_store.PREFIX_LAYOUTS == offline_paths.OFFLINE_PREFIX
    assert offline_store.PREFIX_ATHENA == offline_paths.ATHENA_PREFIX


def test_offline_store_glue_database_over_the_layouts(resources: dict[str, Any]) -> None:
    props = _one(resources, "AWS::Glue::Database")
    assert props["CatalogId"] == {"Ref": "AWS::AccountId"}
    assert props["DatabaseInput"]["Name"] == "stepwise_offline_dev"
    parts = props["DatabaseInput"]["LocationUri"]["Fn::Join"][1]
    [bucket] = [k for k in resources if k.startswith("ArtifactStore") and resources[k]["Type"] == "AWS::S3::Bucket"]
    assert parts == ["s3://", {"Ref": bucket}, "/offline/"]


def test_offline_store_workgroup_encrypts_results_and_enforces_its_configuration(resources: dict[str, Any]) -> None:
    props = _one(resources, "AWS::Athena::WorkGroup")
    assert props["Name"] == "stepwise-offline-dev" and props["State"] == "ENABLED"
    config = props["WorkGroupConfiguration"]
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["BytesScannedCutoffPerQuery"] == offline_store.BYTES_SCANNED_CUTOFF
    results = config["ResultConfiguration"]
    assert "work/athena/results/" in str(results["OutputLocation"])
    encryption = results["EncryptionConfiguration"]
    assert encryption["EncryptionOption"] == "SSE_KMS"
    [key_id] = [k for k, r in resources.items() if r["Type"] == "AWS::KMS::Key"]
    assert encryption["KmsKey"] == {"Fn::GetAtt": [key_id, "Arn"]}


def test_offline_store_train_function_gets_the_workgroup_database_and_limit(resources: dict[str, Any]) -> None:
    _, fn = _train(resources)
    variables = fn["Properties"]["Environment"]["Variables"]
    assert variables[c.ENV_ATHENA_WORKGROUP] == "stepwise-offline-dev"
    assert variables[c.ENV_OFFLINE_DATABASE] == "stepwise_offline_dev"
    assert variables[c.ENV_OFFLINE_JOIN_MAX_BYTES] == str(offline_store.JOIN_MAX_BYTES)


def test_offline_store_grants_are_scoped_to_the_workgroup_database_and_prefixes(template: Template) -> None:
    def statement(actions: list[str], resource: Any, **extra: Any) -> Any:
        return Match.object_like({"Action": actions, "Effect": "Allow", "Resource": resource, **extra})

    arn = lambda service, rest: {  # noqa: E731
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                f":{service}:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                rest,
            ],
        ]
    }
    athena = [
        "athena:StartQueryExecution",
        "athena:GetQueryExecution",
        "athena:GetQueryResults",
        "athena:StopQueryExecution",
    ]
    glue = ["glue:GetDatabase", "glue:GetTable", "glue:CreateTable", "glue:UpdateTable"]
    template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyName": Match.string_like_regexp("^TrainFunction"),
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        statement(athena, arn("athena", ":workgroup/stepwise-offline-dev")),
                        statement(
                            glue,
                            [
                                arn("glue", ":catalog"),
                                arn("glue", ":database/stepwise_offline_dev"),
                                arn("glue", ":table/stepwise_offline_dev/*"),
                            ],
                        ),
                        statement(
                            "s3:ListBucket",
                            Match.any_value(),
                            Condition={"StringLike": {"s3:prefix": ["offline/*", "work/athena/*"]}},
                        ),
                    ]
                )
            },
        },
    )
