"""The lineage of a version trained through feature views shows the view and source versions, and
reproduce shows whether the point-in-time training set came out identical (CLI text)."""

from __future__ import annotations

import json

from functions.models.registry import Artifact, Feature, FeatureViewUse
from functions.models.reproduction import ReproduceResult
from tests.unit.test_governance_logic import _lineage

USE = FeatureViewUse(
    view="cust",
    version=2,
    entity_keys=["customer"],
    timestamp_column="at",
    ttl_seconds=864_000,
    features=[Feature(name="spend_30d", type="float", nullable=True)],
    source="customer-stats",
    source_version=3,
    source_sha256="a" * 64,
    layout=Artifact(uri="s3://b/offline/customer-stats/layout.parquet", sha256="b" * 64, size_bytes=10),
    matched=90,
    missing=7,
    expired=3,
)


def test_governance_cli_renders_the_feature_views_of_a_version() -> None:
    from stepwise.commands.governance import render_lineage

    # Given a version's lineage naming a view version and its source dataset version
    body = json.loads(
        _lineage().model_copy(update={"feature_views": [USE], "event_time": "event_at"}).model_dump_json()
    )
    # When the CLI renders it
    text = render_lineage(body)
    # Then the view, its version, features, source version and the join's counts are shown
    assert "feature views (joined point in time at event_at):" in text
    assert "cust v2: spend_30d from customer-stats@3 (ttl 864000 s; matched 90, missing 7, expired 3)" in text
    assert "feature views" not in render_lineage(json.loads(_lineage().model_dump_json()))


def test_governance_cli_renders_whether_the_training_set_was_rebuilt_identically() -> None:
    from stepwise.commands.governance import render_reproduce

    base = {"model": "m", "version": 1, "dataset": "d", "dataset_version": 1, "data_sha256": "c" * 64}
    base |= {"spec_name": "s", "spec_version": 1, "seed": 0, "holdout_rows": 5, "identical": True}
    same = ReproduceResult.model_validate(base | {"training_set_sha256": "d" * 64, "training_set_identical": True})
    other = same.model_copy(update={"training_set_identical": False, "identical": False})
    assert f"point-in-time training set IDENTICAL (sha256 {'d' * 64})" in render_reproduce(same.model_dump())
    assert "point-in-time training set DIFFERENT" in render_reproduce(other.model_dump())
    assert "training set" not in render_reproduce(ReproduceResult.model_validate(base).model_dump())
