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
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from functions.dal import artifacts as artifacts_dal
from functions.dal import athena as athena_dal
from functions.dal import datasets as datasets_dal
from functions.dal import feature_views as views_dal
from functions.dal import offline_store as offline_dal
from functions.logic import offline_paths as paths
from functions.logic.derived import view_references
from functions.logic.offline_store import build_layout, key_kind, load_layout, normalize_key
from functions.logic.pit_join import JoinView, pit_join
from functions.logic.pit_sql import SqlView, choose_join_engine, glue_columns, glue_type, pit_join_sql
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


def build_source_layouts(settings: Settings, dataset: str, version: int, size_bytes: int) -> float | None:
    """At validation: the offline layouts of `dataset`@`version` every stored view over it reads
    (one per distinct key and timestamp columns of the views' latest versions), built and stored
    now so the first training does not pay for them; their one-time cost in seconds (None: none
    built, because no view reads the dataset or they were stored already). A file larger than the
    validating function reads whole (STEPWISE_VALIDATE_CHUNK_BYTES) is left to the first training."""
    wanted = {
        (tuple(r.view.entity_keys), r.view.timestamp_column)
        for r in views_dal.list_latest_views(settings.metadata_table)
        if r.view.source == dataset
    }
    if not wanted or size_bytes > settings.validate_chunk_bytes:
        return None
    seconds, built = 0.0, 0
    for keys, timestamp_column in sorted(wanted):
        cost = ensure_layout(settings, dataset, version, keys, timestamp_column)[1]
        if cost is not None:
            seconds, built = seconds + cost, built + 1
    _BUILT.clear()
    return seconds if built else None


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
    the labels' columns, then `view:feature` columns; and the uses with their counts. The join runs
    in the function, or as one Athena query when choose_join_engine says so (_athena_join); both
    give the same table and counts."""
    manifests = [_verified_manifest(settings, use) for use in uses]
    if choose_join_engine(manifests, settings) == "athena":
        return _athena_join(settings, labels, uses, manifests, event_time=event_time)
    views = [_join_view(use, manifest) for use, manifest in zip(uses, manifests, strict=True)]
    try:
        result = pit_join(labels, views, time_column=event_time)
    except InvalidInput as exc:
        raise FeatureJoinFailed(f"point-in-time join: {exc}") from exc
    counted = [
        use.model_copy(update={"matched": c.matched, "missing": c.missing, "expired": c.expired})
        for use, c in zip(uses, result.counts, strict=True)
    ]
    return result.table, counted


def _join_view(use: FeatureViewUse, manifest: OfflineLayoutManifest) -> JoinView:
    features = [f.name for f in use.features]
    index = load_layout(_layout_bytes(use), manifest, features=features)
    return JoinView(name=use.view, layout=index, ttl=timedelta(seconds=use.ttl_seconds), features=features)


def join_views(settings: Settings, uses: Sequence[FeatureViewUse]) -> list[JoinView]:
    """The views a version was trained through, each over the very layout its training joined
    (verified by sha256), with the same features and TTL: what batch scoring joins its input with."""
    return [_join_view(use, _verified_manifest(settings, use)) for use in uses]


def _verified_manifest(settings: Settings, use: FeatureViewUse) -> OfflineLayoutManifest:
    """The manifest of the layout `use` was joined with (rebuilt, not stored, when it is gone),
    only if it is still that layout of that source version."""
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
    return manifest


_ROW = "__row"


def _arrow_type(name: str, printed: str) -> pa.DataType:
    """The Arrow type a layout feature has, from the manifest's printed form."""
    if printed.startswith("timestamp["):
        unit, _, tz = printed[len("timestamp[") : -1].partition(", tz=")
        return pa.timestamp(unit, tz or None)
    try:
        return pa.type_for_alias(printed)
    except ValueError as exc:
        raise FeatureJoinFailed(f"feature {name!r} is {printed}, which the Athena join cannot read back") from exc


def _athena_join(
    settings: Settings,
    labels: pa.Table,
    uses: Sequence[FeatureViewUse],
    manifests: Sequence[OfflineLayoutManifest],
    *,
    event_time: str,
) -> tuple[pa.Table, list[FeatureViewUse]]:
    """The join as one Athena query (functions/logic/pit_sql.py) over Glue tables registered now:
    one per layout (its prefix is the table's location) and one over the label rows the join needs
    (their keys, time and row number, written as Parquet under a work prefix of this join). The
    query UNLOADs `__row`, the view features and per-view statuses as Parquet; the features are put
    back in the labels' order and appended to the labels as the in-function join appends them, and
    the statuses give the same per-view counts."""
    if not settings.offline_database:
        raise FeatureJoinFailed("the Athena join needs the offline store's Glue database (STEPWISE_OFFLINE_DATABASE)")
    bucket, database = settings.artifacts_bucket, settings.offline_database
    work = uuid.uuid4().hex
    key_columns = list(dict.fromkeys(k for use in uses for k in use.entity_keys))
    for name in [*key_columns, event_time]:
        if name not in labels.column_names:
            raise FeatureJoinFailed(f"point-in-time join: the labels have no column {name!r}")
    if not pa.types.is_timestamp(labels.schema.field(event_time).type):
        raise FeatureJoinFailed(f"point-in-time join: {event_time!r} is not a timestamp column")
    try:
        kinds = [key_kind(k, labels.schema.field(k).type) for k in key_columns]
    except InvalidInput as exc:
        raise FeatureJoinFailed(f"point-in-time join: {exc}") from exc
    rows = labels.num_rows
    label_rows = pa.table(
        {
            **{k: normalize_key(k, labels.column(k)) for k in key_columns},
            event_time: labels.column(event_time),
            _ROW: pa.array(np.arange(rows, dtype=np.int64)),
        }
    )
    labels_table = paths.labels_table(work)
    labels_key = paths.labels_prefix(work)
    artifacts_dal.put_bytes(bucket, labels_key + "labels.parquet", training_set_bytes(label_rows))
    label_glue = [{"Name": k.lower(), "Type": glue_type(k, str(t))} for k, t in zip(key_columns, kinds, strict=True)]
    label_glue += [{"Name": event_time.lower(), "Type": "timestamp"}, {"Name": _ROW, "Type": "bigint"}]
    athena_dal.register_parquet_table(database, labels_table, artifacts_dal.s3_uri(bucket, labels_key), label_glue)
    sql_views: list[SqlView] = []
    for use, manifest in zip(uses, manifests, strict=True):
        table = paths.layout_table(use.source, use.source_version, use.entity_keys, use.timestamp_column)
        prefix = paths.layout_prefix(use.source, use.source_version, use.entity_keys, use.timestamp_column)
        key_types = [str(key_kind(k, labels.schema.field(k).type)) for k in use.entity_keys]
        try:
            columns = glue_columns(manifest, key_types, "timestamp[us]")
        except InvalidInput as exc:
            raise FeatureJoinFailed(f"offline table of {use.source}@{use.source_version}: {exc}") from exc
        athena_dal.register_parquet_table(database, table, artifacts_dal.s3_uri(bucket, prefix), columns)
        sql_views.append(
            SqlView(
                name=use.view,
                table=table,
                entity_keys=use.entity_keys,
                timestamp_column=use.timestamp_column,
                features=[f.name for f in use.features],
                ttl_seconds=use.ttl_seconds,
            )
        )
    try:
        select = pit_join_sql(
            labels_table=labels_table,
            label_columns=[*key_columns, event_time],
            time_column=event_time,
            views=sql_views,
            row_column=_ROW,
            database=database,
            statuses=True,
            keep_row=True,
        )
    except InvalidInput as exc:
        raise FeatureJoinFailed(f"point-in-time join: {exc}") from exc
    results = paths.results_prefix(work)
    athena_dal.run_query(
        f"UNLOAD ({select})\nTO '{artifacts_dal.s3_uri(bucket, results)}' WITH (format = 'PARQUET')",
        workgroup=settings.athena_workgroup,
        database=database,
        max_wait_seconds=settings.athena_max_wait_seconds,
        poll_seconds=settings.athena_poll_seconds,
    )
    parts = [
        pq.read_table(io.BytesIO(artifacts_dal.get_object(bucket, key)))
        for key in athena_dal.list_keys(bucket, results)
        if not key.rsplit("/", 1)[1].startswith(("_", "."))
    ]
    # result columns by position: the label columns passed, the features, the statuses, the row
    n_labels = len(key_columns) + 1
    types = [{f.name: f.arrow_type for f in m.features} for m in manifests]
    features = [(use, f.name, t[f.name]) for use, t in zip(uses, types, strict=True) for f in use.features]
    result = (
        pa.concat_tables([p.rename_columns([str(i) for i in range(p.num_columns)]) for p in parts]) if parts else None
    )
    if result is None or result.num_rows != rows or result.num_columns != n_labels + len(features) + len(uses) + 1:
        raise FeatureJoinFailed(
            f"the Athena join returned {0 if result is None else result.num_rows} row(s) in an unexpected shape "
            f"for {rows} label row(s)"
        )
    order = pc.sort_indices(result.column(result.num_columns - 1))
    result = result.take(order)
    if not np.array_equal(result.column(result.num_columns - 1).to_numpy(), np.arange(rows)):
        raise FeatureJoinFailed("the Athena join did not return each label row exactly once")
    names, arrays = list(labels.column_names), [labels.column(n).combine_chunks() for n in labels.column_names]
    for i, (use, feature, printed) in enumerate(features):
        column = result.column(n_labels + i).combine_chunks()
        names.append(f"{use.view}:{feature}")
        arrays.append(pc.cast(column, _arrow_type(feature, printed)))
    counted: list[FeatureViewUse] = []
    for j, use in enumerate(uses):
        status = result.column(n_labels + len(features) + j)
        tally = {s: int(pc.sum(pc.equal(status, s)).as_py() or 0) for s in ("matched", "missing", "expired")}
        counted.append(use.model_copy(update=tally))
    return pa.Table.from_arrays(arrays, names=names), counted


def training_set_bytes(table: pa.Table) -> bytes:
    """The training set as Parquet; the same table gives the same bytes (and sha256)."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="snappy")
    return sink.getvalue()


def read_training_set(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))
