"""Where the offline store's objects live in the artifacts bucket, and the Glue names over them.

One prefix per (source dataset version, entity key columns, timestamp column): the source version's
offline layout (functions/logic/offline_store.py build_layout: its rows sorted by entity key and
timestamp, with every other column as a feature) and its manifest beside it. Every feature view over
that source with the same key and time columns shares the one layout, whatever its version:

    offline/<dataset>/v<%08d dataset version>/<keys digest>/layout.parquet
    offline/<dataset>/v<%08d dataset version>/<keys digest>/_manifest.json

The keys digest is the first 16 hex digits of the sha256 of the key columns and the timestamp
column. The prefix holds exactly one data file, so it is the LOCATION of the layout's Glue table
(in the offline store's Glue database, whose location is `offline/`); Athena skips objects whose
names start with `_`, so the manifest never reads as data. A layout is written once and never
changed: a new source version gets a new prefix.

Athena's work lives under `work/athena/`: the label rows a join reads (one prefix per run) and the
query results (the workgroup's output location; a join's result under `results/<run>/`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from functions.models.errors import InvalidInput

OFFLINE_PREFIX = "offline/"
LAYOUT_FILE = "layout.parquet"
MANIFEST_FILE = "_manifest.json"
ATHENA_PREFIX = "work/athena/"
ATHENA_RESULTS_PREFIX = f"{ATHENA_PREFIX}results/"
ATHENA_LABELS_PREFIX = f"{ATHENA_PREFIX}labels/"
GLUE_NAME_MAX = 255
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def keys_digest(entity_keys: Sequence[str], timestamp_column: str) -> str:
    return hashlib.sha256("\x00".join([*entity_keys, "", timestamp_column]).encode()).hexdigest()[:16]


def layout_prefix(dataset: str, version: int, entity_keys: Sequence[str], timestamp_column: str) -> str:
    """The prefix of the layout of `dataset`@`version` sorted by these keys and this time (ends with `/`)."""
    if version < 1:
        raise InvalidInput(f"dataset {dataset!r}: version must be at least 1 (got {version})")
    return f"{OFFLINE_PREFIX}{dataset}/v{version:08d}/{keys_digest(entity_keys, timestamp_column)}/"


def layout_key(dataset: str, version: int, entity_keys: Sequence[str], timestamp_column: str) -> str:
    return layout_prefix(dataset, version, entity_keys, timestamp_column) + LAYOUT_FILE


def manifest_key(dataset: str, version: int, entity_keys: Sequence[str], timestamp_column: str) -> str:
    return layout_prefix(dataset, version, entity_keys, timestamp_column) + MANIFEST_FILE


def layout_table(dataset: str, version: int, entity_keys: Sequence[str], timestamp_column: str) -> str:
    """The Glue table over one layout: lower-case letters, digits and `_` only, as Glue and Athena
    want them (dataset names are lower case, digits and `-`, so replacing `-` by `_` cannot make two
    names one: none may contain `_`)."""
    name = f"layout_{dataset}_v{version}_{keys_digest(entity_keys, timestamp_column)}".replace("-", "_")
    if len(name) > GLUE_NAME_MAX:
        raise InvalidInput(f"Glue table name for dataset {dataset!r} is longer than {GLUE_NAME_MAX} characters")
    return name


def _run_part(run_id: str) -> str:
    if not _RUN_ID.match(run_id):
        raise InvalidInput(f"run id {run_id!r} is not a valid key part (letters, digits, '_', '.', '-')")
    return run_id


def labels_prefix(run_id: str) -> str:
    """Where a run writes the label rows an Athena join reads (its Glue table's LOCATION)."""
    return f"{ATHENA_LABELS_PREFIX}{_run_part(run_id)}/"


def results_prefix(run_id: str) -> str:
    """Where a run's Athena join writes its result (Parquet, UNLOAD)."""
    return f"{ATHENA_RESULTS_PREFIX}{_run_part(run_id)}/"


def labels_table(run_id: str) -> str:
    """The Glue table over a run's label rows."""
    _run_part(run_id)
    return "labels_" + re.sub(r"[^a-z0-9_]", "_", run_id.lower())
