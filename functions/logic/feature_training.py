"""Training sets through feature views: the point-in-time join of a spec's label rows with the
offline layouts of the views it reads.

- plan_views: the spec's pinned view versions (a later view version never changes what a spec
  trains on), each with the source dataset version it is joined against (the latest validated one
  at training time) and that version's offline layout, built once and cached in S3 by source
  version (dal/offline_store.py); the layout's one-time cost is reported when it is built.
- build_training_set: the entry point the train step, the evaluation and `reproduce` share (and
  any other engine's caller can use): label rows + recorded view uses in, the joined table out
  (label columns, then `view:feature` columns; missing or expired values null, counted per view).
  The same label dataset version and the same uses give the same table, byte for byte once written
  by training_set_bytes.

The pipeline imputes the nulls (functions/logic/training.py); derived features may read the joined
`view:feature` columns like raw ones, and the served ONNX graph takes them as inputs.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import pyarrow as pa
import pyarrow.parquet as pq

from functions.dal import artifacts as artifacts_dal
from functions.dal import datasets as datasets_dal
from functions.dal import feature_views as views_dal
from functions.dal import offline_store as offline_dal
from functions.logic import offline_paths as paths
from functions.logic.derived import view_references
from functions.logic.offline_store import build_layout, load_layout
from functions.logic.pit_join import JoinView, pit_join
from functions.models.errors import InvalidInput, NotFound
from functions.models.features_offline import OfflineLayoutManifest, SourceVersionRef
from functions.models.registry import Artifact, Feature, FeatureViewUse
from functions.models.settings import Settings
from functions.models.specs import TrainingSpec


class FeatureJoinFailed(InvalidInput):
    """The spec's feature views cannot be joined to its labels (a missing view, source version or
    column, a key or time type that does not match)."""


@dataclass(frozen=True)
class PlannedViews:
    uses: list[FeatureViewUse]  # counts zero until joined
    layout_seconds: float  # the one-time cost of the layouts built by this call (0: all cached)
    layouts_built: int


def view_columns(uses: Sequence[FeatureViewUse]) -> list[Feature]:
    """The `view:feature` columns the uses add to the labels, typed as their views declare."""
    return [column for use in uses for column in use.columns()]


def plan_views(settings: Settings, spec: TrainingSpec) -> PlannedViews:
    """Every view the spec reads, at its pinned version, with the features it reads, against the
    latest validated version of its source (its offline layout built and stored if not yet)."""
    referenced = view_references(spec)
    if referenced and spec.event_time is None:
        raise FeatureJoinFailed(f"spec {spec.name!r} reads feature views {sorted(referenced)} but names no event_time")
    _BUILT.clear()  # holds at most the layouts of one training
    uses: list[FeatureViewUse] = []
    seconds, built = 0.0, 0
    for name, wanted in referenced.items():
        version = spec.views.get(name)
        if version is None:
            raise FeatureJoinFailed(f"spec {spec.name!r} reads feature view {name!r} but pins no version of it")
        try:
            record = views_dal.get_view(settings.metadata_table, name, version)
        except NotFound as exc:
            raise FeatureJoinFailed(f"feature view {name!r} version {version} does not exist") from exc
        view = record.view
        offered = {f.name: f for f in view.features}
        unknown = [f for f in wanted if f not in offered]
        if unknown:
            raise FeatureJoinFailed(f"feature view {name!r} v{version} offers no feature(s) {unknown}")
        try:
            latest = datasets_dal.get_summary(settings.metadata_table, view.source).latest_version
        except NotFound:
            latest = 0
        if latest < 1:
            raise FeatureJoinFailed(
                f"feature view {name!r}: its source dataset {view.source!r} has no validated version to join"
            )
        layout, cost = ensure_layout(settings, view.source, latest, view.entity_keys, view.timestamp_column)
        if cost is not None:
            seconds, built = seconds + cost, built + 1
        source = layout[1].source
        uses.append(
            FeatureViewUse(
                view=name,
                version=record.version,
                entity_keys=list(view.entity_keys),
                timestamp_column=view.timestamp_column,
                ttl_seconds=view.ttl_seconds,
                features=[Feature(name=f, type=offered[f].type, nullable=True) for f in wanted],
                source=source.dataset,
                source_version=source.version,
                source_sha256=source.sha256,
                layout=layout[0],
            )
        )
    return PlannedViews(uses=uses, layout_seconds=seconds, layouts_built=built)


def ensure_layout(
    settings: Settings,
    dataset: str,
    version: int,
    entity_keys: Sequence[str],
    timestamp_column: str,
    *,
    store: bool = True,
) -> tuple[tuple[Artifact, OfflineLayoutManifest], float | None]:
    """The offline layout of `dataset`@`version` sorted by these keys and time: the stored one,
    else built from the validated object (sha256-verified) and, when `store`, written. Returns the
    layout's artifact and manifest, and the seconds building it took (None: it was stored)."""
    bucket = settings.artifacts_bucket
    layout_key = paths.layout_key(dataset, version, entity_keys, timestamp_column)
    manifest_key = paths.manifest_key(dataset, version, entity_keys, timestamp_column)
    manifest = offline_dal.get_manifest(bucket, manifest_key)
    if manifest is not None:
        return (offline_dal.layout_artifact(bucket, layout_key, manifest), manifest), None
    started = time.perf_counter()
    source, table = _load_source(settings, dataset, version)
    try:
        layout = build_layout(table, source=source, entity_keys=entity_keys, timestamp_column=timestamp_column)
    except InvalidInput as exc:
        raise FeatureJoinFailed(f"offline layout of {dataset}@{version}: {exc}") from exc
    if store:
        artifact = offline_dal.put_layout(bucket, layout_key, manifest_key, layout.data, layout.manifest)
    else:
        artifact = offline_dal.layout_artifact(bucket, layout_key, layout.manifest)
    _BUILT[layout.manifest.sha256] = layout.data
    return (artifact, layout.manifest), time.perf_counter() - started


def _load_source(settings: Settings, dataset: str, version: int) -> tuple[SourceVersionRef, pa.Table]:
    """A validated dataset version's object, only if its bytes hash to the recorded sha256."""
    from functions.logic.training import read_table

    record = datasets_dal.get_version(settings.metadata_table, dataset, version)
    data = artifacts_dal.get_verified(
        record.bucket, record.key, record.sha256, record.version_id, what=f"dataset {dataset}@{version}"
    )
    source = SourceVersionRef(dataset=dataset, version=version, sha256=record.sha256)
    return source, read_table(data, record.key, record.format)


# layouts built in this process, by sha256: a join right after a build does not read them back
_BUILT: dict[str, bytes] = {}


def _layout_bytes(use: FeatureViewUse) -> bytes:
    data = _BUILT.pop(use.layout.sha256, None)
    if data is not None:
        return data
    return offline_dal.get_layout(use.layout, f"offline layout of {use.source}@{use.source_version}")


def build_training_set(
    settings: Settings, labels: pa.Table, uses: Sequence[FeatureViewUse], *, event_time: str
) -> tuple[pa.Table, list[FeatureViewUse]]:
    """The labels joined point in time with each use's view (see functions/logic/pit_join.py):
    the labels' columns, then `view:feature` columns; and the uses with their counts."""
    views: list[JoinView] = []
    for use in uses:
        manifest = offline_dal.get_manifest(
            settings.artifacts_bucket,
            paths.manifest_key(use.source, use.source_version, use.entity_keys, use.timestamp_column),
        )
        if manifest is None or manifest.sha256 != use.layout.sha256:
            manifest = ensure_layout(
                settings, use.source, use.source_version, use.entity_keys, use.timestamp_column, store=False
            )[0][1]
        if manifest.sha256 != use.layout.sha256 or manifest.source.sha256 != use.source_sha256:
            raise FeatureJoinFailed(
                f"the offline layout of {use.source}@{use.source_version} no longer matches the one "
                f"feature view {use.view!r} v{use.version} was joined with (sha256 {use.layout.sha256})"
            )
        features = [f.name for f in use.features]
        index = load_layout(_layout_bytes(use), manifest, features=features)
        views.append(JoinView(name=use.view, layout=index, ttl=timedelta(seconds=use.ttl_seconds), features=features))
    try:
        result = pit_join(labels, views, time_column=event_time)
    except InvalidInput as exc:
        raise FeatureJoinFailed(f"point-in-time join: {exc}") from exc
    counted = [
        use.model_copy(update={"matched": c.matched, "missing": c.missing, "expired": c.expired})
        for use, c in zip(uses, result.counts, strict=True)
    ]
    return result.table, counted


def training_set_bytes(table: pa.Table) -> bytes:
    """The training set as Parquet; the same table gives the same bytes (and sha256)."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="snappy")
    return sink.getvalue()


def read_training_set(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))
