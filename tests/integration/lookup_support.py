"""Prediction-time lookup test support (no tests here): a small model trained on request fields and
feature-view columns, registered as a version trained through its views, the online table, and a
seeding helper. Also used by benchmarks/predict.py.

`seed` writes one view's entry of an entity's online item in the fixed layout of
functions/models/online.py directly (other views' entries of the item are left as they are): it
stands in for materialization where a test needs exact values, event times and source versions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import numpy as np

from functions.models.online import (
    ATTR_EVENT_TIME_US,
    ATTR_MATERIALIZATION,
    ATTR_SOURCE_VERSION,
    ATTR_VALUES,
    ATTR_VIEW_VERSION,
    ATTR_WRITTEN_AT,
    online_key,
    view_attribute,
)
from functions.models.registry import Artifact, Feature, FeatureViewUse, ModelVersion, VersionStatus
from tests.integration.test_predict_support import NOW, item, put_model
from tests.integration.test_predict_support import TrainedModel as TrainedModel

ONLINE_TABLE = "stepwise-online"
DAY_S = 86_400


@dataclass(frozen=True)
class ViewSpec:
    """A view a test model reads: its name, entity key column, TTL and features (all float)."""

    name: str
    key: str
    ttl_seconds: int
    features: tuple[str, ...]

    def columns(self) -> list[str]:
        return [f"{self.name}:{f}" for f in self.features]


CUSTOMER = ViewSpec("customer", "customer_id", 14 * DAY_S, ("spend_30d", "orders_30d"))


@dataclass(frozen=True)
class LookupModel:
    """The ONNX regressor (one 2-D float input over `features` in order: request fields, then each
    view's columns), its scikit-learn pipeline (imputes nulls with the training means, as the
    lifecycle's pipelines do), and the views."""

    onnx: bytes
    pipeline: Any
    request_fields: tuple[str, ...]
    views: tuple[ViewSpec, ...]

    @property
    def features(self) -> list[Feature]:
        columns = [c for v in self.views for c in v.columns()]
        return [Feature(name=f, type="float") for f in self.request_fields] + [
            Feature(name=c, type="float", nullable=True) for c in columns
        ]

    def predict(self, rows: list[list[float | None]]) -> list[float]:
        """The pipeline's predictions for rows in feature order (None: null)."""
        x = np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=np.float32)
        return [float(p) for p in self.pipeline.predict(x.astype(np.float64))]


def lookup_regressor(
    views: tuple[ViewSpec, ...] = (CUSTOMER,), request_fields: tuple[str, ...] = ("amount",)
) -> LookupModel:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline

    width = len(request_fields) + sum(len(v.features) for v in views)
    rng = np.random.default_rng(7)
    x = rng.normal(50, 20, (300, width)).astype(np.float32)
    y = x @ np.linspace(1.0, 2.0, width) + 3.0
    x[rng.random(x.shape) < 0.1] = np.nan
    x[:, : len(request_fields)] = np.nan_to_num(x[:, : len(request_fields)], nan=50.0)
    pipeline = Pipeline([("impute", SimpleImputer(strategy="mean")), ("model", LinearRegression())]).fit(
        x.astype(np.float64), y
    )
    onx = to_onnx(pipeline, initial_types=[("input", FloatTensorType([None, width]))])
    return LookupModel(onx.SerializeToString(), pipeline, request_fields, views)


def put_lookup_version(
    stores: Any, name: str, version: int, model: LookupModel, *, overrides: bool = False, production: bool = True
) -> ModelVersion:
    """Upload the artifact and register a version trained through `model.views`."""
    key = f"models/{name}/{version}/model.onnx"
    boto3.client("s3").put_object(Bucket=stores.artifacts_bucket, Key=key, Body=model.onnx)
    digest = "0" * 64
    record = ModelVersion(
        model=name,
        version=version,
        status=VersionStatus.APPROVED,
        created_at=NOW,
        updated_at=NOW,
        task="regression",
        features=model.features,
        feature_views=[
            FeatureViewUse(
                view=v.name,
                version=1,
                entity_keys=[v.key],
                timestamp_column="at",
                ttl_seconds=v.ttl_seconds,
                features=[Feature(name=f, type="float", nullable=True) for f in v.features],
                source=f"{v.name}-stats",
                source_version=1,
                source_sha256=digest,
                layout=Artifact(uri=f"s3://{stores.artifacts_bucket}/offline/{v.name}", sha256=digest, size_bytes=0),
            )
            for v in model.views
        ],
        event_time="event_at",
        allow_request_overrides=overrides,
        target="target",
        artifacts={
            "onnx": Artifact(
                uri=f"s3://{stores.artifacts_bucket}/{key}",
                sha256=hashlib.sha256(model.onnx).hexdigest(),
                size_bytes=len(model.onnx),
            )
        },
    )
    boto3.client("dynamodb").put_item(
        TableName=stores.registry_table,
        Item={"pk": {"S": f"MODEL#{name}"}, "sk": {"S": f"VERSION#{version:08d}"}, **item(record)},
    )
    if production:
        put_model(stores, name, production=version)
    return record


def create_online_table(name: str = ONLINE_TABLE) -> str:
    """The online store as infra/constructs/tables.py OnlineStore defines it: keyed by `pk` alone."""
    boto3.client("dynamodb").create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    return name


def epoch_us(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def entity_pk(entity: Mapping[str, str | int]) -> str:
    """The pk of the entity's item (its key columns -> values)."""
    return online_key(list(entity), list(entity.values()))


def online_entry(values: Mapping[str, float | None], event_time: datetime, source_version: int) -> dict[str, Any]:
    """One view's entry (the attributes of its map) in the online store's fixed layout."""
    return {
        ATTR_VIEW_VERSION: {"N": "1"},
        ATTR_VALUES: {"M": {k: {"NULL": True} if v is None else {"N": repr(float(v))} for k, v in values.items()}},
        ATTR_EVENT_TIME_US: {"N": str(epoch_us(event_time))},
        ATTR_SOURCE_VERSION: {"N": str(source_version)},
        ATTR_MATERIALIZATION: {"S": "test-seed"},
        ATTR_WRITTEN_AT: {"S": datetime.now(UTC).isoformat()},
    }


def online_item(
    view: str,
    entity: Mapping[str, str | int],
    values: Mapping[str, float | None],
    event_time: datetime,
    source_version: int,
) -> dict[str, Any]:
    """An entity's item holding one view's entry (functions/models/online.py)."""
    return {
        "pk": {"S": entity_pk(entity)},
        view_attribute(view): {"M": online_entry(values, event_time, source_version)},
    }


def seed(
    view: str,
    entity: Mapping[str, str | int],
    values: Mapping[str, float | None],
    event_time: datetime,
    source_version: int = 1,
    *,
    table: str = ONLINE_TABLE,
) -> None:
    """Write the view's entry of the entity's item as materialization would (see the module
    docstring)."""
    boto3.client("dynamodb").update_item(
        TableName=table,
        Key={"pk": {"S": entity_pk(entity)}},
        UpdateExpression="SET #v = :entry",
        ExpressionAttributeNames={"#v": view_attribute(view)},
        ExpressionAttributeValues={":entry": {"M": online_entry(values, event_time, source_version)}},
    )
