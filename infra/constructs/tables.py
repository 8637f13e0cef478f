"""Registry, metadata and online-feature tables: on-demand, PITR, deletion protection, retained."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from infra import constants as c


def _table(scope: Construct, id_: str) -> dynamodb.Table:
    table = dynamodb.Table(
        scope,
        id_,
        partition_key=dynamodb.Attribute(name=c.PK, type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name=c.SK, type=dynamodb.AttributeType.STRING),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        deletion_protection=True,
        encryption=dynamodb.TableEncryption.AWS_MANAGED,  # then the stack's KMS key (infra/constructs/encryption.py)
        removal_policy=RemovalPolicy.RETAIN,
        time_to_live_attribute=c.TTL_ATTRIBUTE,
    )
    table.add_global_secondary_index(
        index_name=c.GSI1,
        partition_key=dynamodb.Attribute(name=c.GSI1_PK, type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name=c.GSI1_SK, type=dynamodb.AttributeType.STRING),
    )
    return table


class Registry(Construct):
    """Models, versions, aliases."""

    def __init__(self, scope: Construct, id_: str) -> None:
        super().__init__(scope, id_)
        self.table = _table(self, "Table")


class Metadata(Construct):
    """Contracts, datasets, runs, approvals, audit events, idempotency records."""

    def __init__(self, scope: Construct, id_: str) -> None:
        super().__init__(scope, id_)
        self.table = _table(self, "Table")


class OnlineStore(Construct):
    """The online feature store: one item per (feature view, entity key) holding the view's latest
    materialized feature values, keyed by `pk` alone (functions/models/online.py) so that one
    BatchGetItem reads every view a prediction request needs."""

    def __init__(self, scope: Construct, id_: str) -> None:
        super().__init__(scope, id_)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name=c.PK, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=True,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,  # then the stack's KMS key
            removal_policy=RemovalPolicy.RETAIN,
        )
