"""The Python client for notebooks: import a model trained elsewhere without shelling out to the CLI.

    from stepwise.client import Stepwise
    sw = Stepwise(endpoint="http://127.0.0.1:8787")          # a local cloud, or
    sw = Stepwise(stack="Stepwise", region="eu-west-1")     # a deployed stack (your AWS credentials)
    result = sw.import_model("wine-gbt", "model.onnx", dataset="wine@3", task="classification", wait=True)
    result.version  # the registered version, waiting for approval

It resolves its target as the CLI does and reuses the CLI's upload/post/wait code
(stepwise/commands/imports.py), so both send the same requests, signed the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from stepwise.commands.imports import DATASET_VERSION, ImportFailed, upload_and_request, wait_for_run
from stepwise.target import Target, resolve

Task = Literal["classification", "regression"]


class StepwiseError(Exception):
    """A request the platform refused, or a run that did not register a version; the message
    carries every reason the platform gave, one a line."""


@dataclass(frozen=True)
class ImportResult:
    """An accepted import: its id, its lifecycle run and, once waited for, the registered version."""

    model: str
    import_id: str
    execution_name: str
    version: int | None = None


class Stepwise:
    """A client of one Stepwise deployment: a local cloud (`endpoint`) or a deployed stack (`stack`,
    `region`; API calls signed with the caller's AWS credentials)."""

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        stack: str | None = None,
        region: str | None = None,
        identity: str = "operator",
        target: Target | None = None,
    ) -> None:
        if endpoint and stack:
            raise ValueError("give endpoint (a local cloud) or stack (a deployed stack), not both")
        self._target = target if target is not None else resolve(endpoint, stack, region, identity)

    def import_model(
        self,
        model: str,
        onnx: bytes | str | Path,
        *,
        dataset: str,
        version: int | None = None,
        task: Task,
        target: str | None = None,
        source_url: str | None = None,
        source_commit: str | None = None,
        description: str = "",
        wait: bool = False,
        timeout: float = 900.0,
    ) -> ImportResult:
        """Imports an ONNX model as a candidate version of `model`, evaluated on a dataset version.

        `onnx` is the serialized graph (bytes) or a path to it. The dataset version is
        `dataset="wine@3"`, or `dataset="wine", version=3`. The platform verifies the graph, checks
        its inputs against the dataset's contract, evaluates it with the same gates as trained models
        and registers it with "imported" lineage; with `wait=True` this returns once that version is
        registered (waiting for approval). Raises StepwiseError with the reasons of any refusal.
        """
        name, number = _dataset_version(dataset, version)
        content = _onnx_bytes(onnx)
        request: dict[str, Any] = {
            "dataset": name,
            "dataset_version": number,
            "task": task,
            "description": description,
        }
        optional = {"target": target, "source_url": source_url, "source_commit": source_commit}
        request.update({key: value for key, value in optional.items() if value})
        try:
            record = upload_and_request(self._target, model, content, request)
            result = ImportResult(model=model, import_id=record["import_id"], execution_name=record["execution_name"])
            if not wait:
                return result
            run = wait_for_run(self._target, model, result.execution_name, timeout)
        except ImportFailed as exc:
            raise StepwiseError(str(exc)) from None
        return ImportResult(
            model=model,
            import_id=result.import_id,
            execution_name=result.execution_name,
            version=int(run["version"]),
        )


def _dataset_version(dataset: str, version: int | None) -> tuple[str, int]:
    match = DATASET_VERSION.match(dataset)
    if match is not None:
        if version is not None and version != int(match["version"]):
            raise ValueError(f"dataset {dataset!r} names version {match['version']}, but version={version} was given")
        return match["name"], int(match["version"])
    if version is None or isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"dataset {dataset!r}: give NAME@VERSION (e.g. wine@3) or dataset=NAME with version=N >= 1")
    if DATASET_VERSION.match(f"{dataset}@{version}") is None:
        raise ValueError(f"dataset {dataset!r} is not a dataset name (lowercase letters, digits, '-')")
    return dataset, version


def _onnx_bytes(onnx: bytes | str | Path) -> bytes:
    if isinstance(onnx, bytes | bytearray):
        if not onnx:
            raise ValueError("onnx: the model bytes are empty")
        return bytes(onnx)
    path = Path(onnx)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"onnx: cannot read {path}: {exc}") from exc
