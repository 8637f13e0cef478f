"""Where the offline store's objects live in the artifacts bucket, and the Glue names over them.

One prefix per (feature view version, source dataset version): the view's offline layout
(functions/logic/offline_store.py build_layout: the source version's rows sorted by the view's
entity key and timestamp, with the view's features) and its manifest beside it:

    offline/views/<view>/<%08d view version>/<dataset>/<%08d dataset version>/layout.parquet
    offline/views/<view>/<%08d view version>/<dataset>/<%08d dataset version>/_manifest.json

The prefix holds exactly one data file, so it is the LOCATION of the layout's Glue table; Athena
skips objects whose names start with `_`, so the manifest never reads as data. A layout is written
once and never changed: a new view version or a new source version gets a new prefix.

Athena's work lives under `work/athena/`: the label rows a join reads (one prefix per run) and the
query results (the workgroup's output location).
"""

from __future__ import annotations

import re

from functions.models.errors import InvalidInput
from functions.models.features_offline import SourceVersionRef

OFFLINE_PREFIX = "offline/views/"
LAYOUT_FILE = "layout.parquet"
MANIFEST_FILE = "_manifest.json"
ATHENA_PREFIX = "work/athena/"
ATHENA_RESULTS_PREFIX = f"{ATHENA_PREFIX}results/"
ATHENA_LABELS_PREFIX = f"{ATHENA_PREFIX}labels/"
GLUE_NAME_MAX = 255
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def layout_prefix(view: str, view_version: int, source: SourceVersionRef) -> str:
    """The prefix of the layout of `source` for version `view_version` of `view` (ends with `/`)."""
    if view_version < 1:
        raise InvalidInput(f"view {view!r}: version must be at least 1 (got {view_version})")
    return f"{OFFLINE_PREFIX}{view}/{view_version:08d}/{source.dataset}/{source.version:08d}/"


def layout_key(view: str, view_version: int, source: SourceVersionRef) -> str:
    return layout_prefix(view, view_version, source) + LAYOUT_FILE


def manifest_key(view: str, view_version: int, source: SourceVersionRef) -> str:
    return layout_prefix(view, view_version, source) + MANIFEST_FILE


def layout_table(view: str, view_version: int, source: SourceVersionRef) -> str:
    """The Glue table over one layout: lower-case letters, digits and `_` only, as Glue and Athena
    want them (view and dataset names are lower case, digits and `-`, so replacing `-` by `_`
    cannot make two names one: neither may contain `_`)."""
    name = f"fv_{view}_v{view_version}_{source.dataset}_{source.version}".replace("-", "_")
    if len(name) > GLUE_NAME_MAX:
        raise InvalidInput(f"Glue table name for view {view!r} is longer than {GLUE_NAME_MAX} characters")
    return name


def labels_prefix(run_id: str) -> str:
    """Where a run writes the label rows an Athena join reads (its Glue table's LOCATION)."""
    if not _RUN_ID.match(run_id):
        raise InvalidInput(f"run id {run_id!r} is not a valid key part (letters, digits, '_', '.', '-')")
    return f"{ATHENA_LABELS_PREFIX}{run_id}/"


def labels_table(run_id: str) -> str:
    """The Glue table over a run's label rows."""
    labels_prefix(run_id)
    return "labels_" + re.sub(r"[^a-z0-9_]", "_", run_id.lower())
