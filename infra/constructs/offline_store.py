"""The offline store's SQL side: a Glue database over the feature-view layouts in the artifacts
bucket and an Athena workgroup that runs point-in-time joins too large for one function.

The layouts live under `offline/` (one prefix per source dataset version, entity keys and timestamp
column, shared by every feature view over that source: functions/logic/offline_paths.py); each gets
its own Glue table in this database (its columns are the source's, so the table is registered with
the layout at run time, not declared here). Query results go to
`work/athena/results/`, encrypted with the stack's key; the workgroup enforces that configuration
so no query can write elsewhere or unencrypted, and caps the bytes one query may scan.

The join function (the train step) may: run queries in this workgroup only; read and register
tables in this database only; list the bucket under `offline/` and `work/athena/`, and read and
write under `work/athena/` (the labels a join reads, and the results). It reads and writes the
layouts under `offline/` by its own grant (infra/constructs/lifecycle.py), which Athena uses too.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra import constants as c
from infra.grants import allow_objects
from infra.nag import acknowledge

PREFIX_LAYOUTS = c.PREFIX_OFFLINE  # functions/logic/offline_paths.py OFFLINE_PREFIX
PREFIX_ATHENA = "work/athena/"  # functions/logic/offline_paths.py ATHENA_PREFIX
BYTES_SCANNED_CUTOFF = 1024**4  # 1 TiB per query
JOIN_MAX_BYTES = 1024**3  # layouts joined in the function up to this many Parquet bytes


class OfflineStore(Construct):
    """Exposes `database` (CfnDatabase), `database_name`, `workgroup` (CfnWorkGroup), `workgroup_name`."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        stage: str,
        artifacts_bucket: s3.IBucket,
        key: kms.IKey,
        join_function: lambda_.Function,
    ) -> None:
        super().__init__(scope, id_)
        stack = Stack.of(self)
        self.database_name = f"stepwise_offline_{stage.replace('-', '_')}"
        self.workgroup_name = f"stepwise-offline-{stage}"
        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=stack.account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=self.database_name,
                description="Stepwise offline store: one table per source-version layout (offline/)",
                location_uri=artifacts_bucket.s3_url_for_object(PREFIX_LAYOUTS),
            ),
        )
        self.workgroup = athena.CfnWorkGroup(
            self,
            "WorkGroup",
            name=self.workgroup_name,
            description="Stepwise point-in-time joins beyond one function's memory",
            state="ENABLED",
            recursive_delete_option=False,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=BYTES_SCANNED_CUTOFF,
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=artifacts_bucket.s3_url_for_object(f"{PREFIX_ATHENA}results/"),
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_KMS", kms_key=key.key_arn
                    ),
                ),
            ),
        )

        join_function.add_environment(c.ENV_ATHENA_WORKGROUP, self.workgroup_name)
        join_function.add_environment(c.ENV_OFFLINE_DATABASE, self.database_name)
        join_function.add_environment(c.ENV_OFFLINE_JOIN_MAX_BYTES, str(JOIN_MAX_BYTES))
        workgroup_arn = stack.format_arn(service="athena", resource="workgroup", resource_name=self.workgroup_name)
        join_function.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "athena:StartQueryExecution",
                    "athena:GetQueryExecution",
                    "athena:GetQueryResults",
                    "athena:StopQueryExecution",
                ],
                resources=[workgroup_arn],
            )
        )
        catalog_arn = stack.format_arn(service="glue", resource="catalog")
        database_arn = stack.format_arn(service="glue", resource="database", resource_name=self.database_name)
        tables_arn = stack.format_arn(service="glue", resource="table", resource_name=f"{self.database_name}/*")
        join_function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["glue:GetDatabase", "glue:GetTable", "glue:CreateTable", "glue:UpdateTable"],
                resources=[catalog_arn, database_arn, tables_arn],
            )
        )
        join_function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[artifacts_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{PREFIX_LAYOUTS}*", f"{PREFIX_ATHENA}*"]}},
            )
        )
        join_function.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:GetBucketLocation"], resources=[artifacts_bucket.bucket_arn])
        )
        allow_objects(
            join_function, artifacts_bucket, PREFIX_ATHENA, ["s3:GetObject", "s3:PutObject"], "Athena labels, results"
        )
        assert join_function.role is not None
        acknowledge(
            join_function.role,
            f"AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:glue:<AWS::Region>:<AWS::AccountId>:"
            f"table/{self.database_name}/*]",
            "Tables of the offline store's own Glue database only: one per feature-view layout, named at run time.",
        )
