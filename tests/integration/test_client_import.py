"""The notebook client's import on moto: the same upload, import request and run as `stepwise import`,
answered as typed results and typed errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from onnx import TensorProto

from functions.dal import registry as registry_dal
from functions.models.lineage import Lineage
from functions.models.runs import VersionSummary
from stepwise.client import ImportResult, Stepwise, StepwiseError
from tests.integration import test_lifecycle_state_machine as machine
from tests.integration.conftest import Stores
from tests.integration.lifecycle_support import seed_dataset
from tests.integration.test_import_run import MODEL, _deployed, _graph
from tests.integration.test_many_cli import HandlerTarget
from tests.unit.lifecycle_data import regression_table

lifecycle_handlers = machine.routed  # the `routed` fixture: moto's Lambda invokes go to our handlers


def test_client_import_model_uploads_posts_and_waits_for_the_registered_version(
    stores: Stores, lifecycle_handlers: dict[str, int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given a dataset version, the deployed workflow and a client of the API (signed as carol)
    seed_dataset(stores, "reg", regression_table(rows=200), "y")
    _deployed(stores, monkeypatch)
    client = Stepwise(target=HandlerTarget(api_url="http://local", outputs={}))
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(_graph([("a", TensorProto.FLOAT), ("b", TensorProto.FLOAT)]))

    # When a notebook imports the graph from its path and waits
    result = client.import_model(
        MODEL, onnx_file, dataset="reg", version=1, task="regression", source_commit="0123abc", wait=True, timeout=60
    )

    # Then the version is registered with imported lineage naming the caller
    assert isinstance(result, ImportResult) and result.version == 1 and result.execution_name, result
    version = registry_dal.get_version(stores.registry_table, MODEL, 1)
    assert version is not None and version.source == "imported" and version.imported is not None
    assert version.imported.import_id == result.import_id and version.imported.source_commit == "0123abc"
    assert version.imported.requested_by.endswith("carol")

    # And the typed reads answer the API's reply models: the model, its version, its imported lineage
    assert [m.name for m in client.models()] == [MODEL]
    (listed,) = client.versions(MODEL)
    assert isinstance(listed, VersionSummary) and listed.version == 1 and listed.status == "PENDING_APPROVAL"
    lineage = client.lineage(MODEL, 1)
    assert isinstance(lineage, Lineage) and lineage.run.source == "imported"
    assert lineage.run.imported is not None and lineage.run.imported.import_id == result.import_id
    with pytest.raises(StepwiseError, match="HTTP 404"):
        client.lineage(MODEL, 2)

    # And a refusal by the API is a typed error naming the field; bad arguments fail before any request
    with pytest.raises(StepwiseError, match="dataset"):
        client.import_model(MODEL, onnx_file.read_bytes(), dataset="reg@9", task="regression")
    with pytest.raises(ValueError, match="NAME@VERSION"):
        client.import_model(MODEL, onnx_file, dataset="reg", task="regression")
    with pytest.raises(ValueError, match="cannot read"):
        client.import_model(MODEL, tmp_path / "missing.onnx", dataset="reg@1", task="regression")
