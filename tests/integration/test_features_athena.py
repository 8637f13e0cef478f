"""Training sets through feature views joined by Athena: when the layouts a join reads exceed
STEPWISE_OFFLINE_JOIN_MAX_BYTES and a workgroup is deployed, the train step registers Glue tables
over the layouts and the run's label rows, runs pit_sql's statement and reads its result back into
the same table the in-function join gives. Glue, S3 and the handlers are real (moto); only Athena's
query execution is a fake (tests/integration/athena_fake.py: DuckDB over the registered tables)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest

from functions.dal import athena as athena_dal
from functions.dal import clients
from functions.dal import runs as runs_dal
from functions.dal import specs as specs_dal
from functions.models.errors import OfflineQueryFailed
from functions.models.settings import get_settings
from tests.integration.athena_fake import FakeAthena
from tests.integration.conftest import Stores
from tests.integration.lifecycle_support import run_steps, seed_dataset, start_state
from tests.integration.test_lifecycle_features import (
    MODEL,
    _bytes,
    api_call,
    events_table,
    put_view,
    spec_body,
    specs_dal_dataset,
    stats_table,
)

DATABASE = "stepwise_offline_test"


@pytest.fixture
def athena(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAthena]:
    """The label and view source datasets and the view (as in test_lifecycle_features), the offline
    store's Glue database (moto) and the Athena fake in place of the Athena client."""
    seed_dataset(stores, "customer-stats", stats_table(), "spend_30d")
    seed_dataset(stores, "events", events_table(), "churned")
    put_view(stores)
    boto3.client("glue").create_database(DatabaseInput={"Name": DATABASE})
    fake = FakeAthena()
    real = clients.client
    monkeypatch.setattr(athena_dal, "client", lambda service: fake if service == "athena" else real(service))
    yield fake


def _use_athena(monkeypatch: pytest.MonkeyPatch, **extra: str) -> None:
    for name, value in {
        "STEPWISE_ATHENA_WORKGROUP": "stepwise-offline-test",
        "STEPWISE_OFFLINE_DATABASE": DATABASE,
        "STEPWISE_OFFLINE_JOIN_MAX_BYTES": "1",  # every layout is "too large" for the function
        **extra,
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


def _train(stores: Stores) -> dict[str, Any]:
    spec = specs_dal.get_spec(stores.metadata_table, MODEL)
    return run_steps(start_state(spec, specs_dal_dataset(stores)), until="train")


def _counts(state: dict[str, Any]) -> list[tuple[int, int, int]]:
    return [(u["matched"], u["missing"], u["expired"]) for u in state["train"]["feature_views"]]


def test_features_athena_join_gives_the_identical_training_set(
    stores: Stores, athena: FakeAthena, monkeypatch: pytest.MonkeyPatch
) -> None:
    status, stored = api_call("PUT", f"/v1/specs/{MODEL}", spec_body())
    assert status == 201, stored
    # Given the spec trained once with the join in the function
    in_function = _train(stores)
    assert athena.queries == []
    # When the limit is forced low, so the same train step joins through Athena
    _use_athena(monkeypatch)
    through_athena = _train(stores)
    # Then one query ran in the workgroup over the Glue tables the step registered
    (query,) = athena.queries
    assert query["WorkGroup"] == "stepwise-offline-test" and query["QueryExecutionContext"] == {"Database": DATABASE}
    tables = {t["Name"]: t for t in boto3.client("glue").get_tables(DatabaseName=DATABASE)["TableList"]}
    layout = next(t for n, t in tables.items() if n.startswith("layout_customer_stats_v1_"))
    assert "/offline/customer-stats/v00000001/" in layout["StorageDescriptor"]["Location"]
    assert any(n.startswith("labels_") for n in tables)
    # and the training set is byte for byte the in-function one, with the same per-view counts
    first, second = (s["train"]["artifacts"]["training_set"] for s in (in_function, through_athena))
    assert second["sha256"] == first["sha256"]
    assert pq.read_table(io.BytesIO(_bytes(second["uri"]))).num_rows == 400
    assert _counts(through_athena) == _counts(in_function)
    (matched, missing, expired), *_ = _counts(in_function)
    assert matched > 0 and missing > 0 and expired > 0 and matched + missing + expired == 400


@pytest.mark.parametrize(
    ("outcome", "extra", "message"),
    [
        ("FAILED", {}, r"failed: HIVE_BAD_DATA"),
        ("CANCELLED", {}, r"was cancelled"),
        ("RUNNING", {"STEPWISE_ATHENA_MAX_WAIT": "0.05", "STEPWISE_ATHENA_POLL": "0.01"}, r"did not finish within"),
    ],
)
def test_features_athena_join_that_does_not_succeed_fails_the_run_with_a_named_error(
    stores: Stores,
    athena: FakeAthena,
    monkeypatch: pytest.MonkeyPatch,
    outcome: str,
    extra: dict[str, str],
    message: str,
) -> None:
    status, stored = api_call("PUT", f"/v1/specs/{MODEL}", spec_body())
    assert status == 201, stored
    # Given a query that fails, is cancelled or never finishes
    athena.outcome = outcome
    athena.reason = "HIVE_BAD_DATA: bad parquet" if outcome == "FAILED" else ""
    _use_athena(monkeypatch, **extra)
    # When the train step joins through Athena, Then it fails with the named error, recorded on the run
    with pytest.raises(OfflineQueryFailed, match=message):
        _train(stores)
    assert athena.stopped == (["q1"] if outcome == "RUNNING" else [])
    run = runs_dal.list_runs(stores.metadata_table, MODEL)[0]
    assert [(s.name, s.outcome, s.error) for s in run.steps][-1] == ("train", "failed", "OfflineQueryFailed")
