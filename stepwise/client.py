"""The Python client for notebooks: import a model trained elsewhere without shelling out to the CLI.

    from stepwise.client import Stepwise
    sw = Stepwise(endpoint="http://127.0.0.1:8787")          # a local cloud, or
    sw = Stepwise(stack="Stepwise", region="eu-west-1")     # a deployed stack (your AWS credentials)
    result = sw.import_model("wine-gbt", "model.onnx", dataset="wine@3", task="classification", wait=True)
    result.version  # the registered version, waiting for approval
    sw.import_sklearn(pipeline, model="wine-lr", dataset="wine@3", sample=frame.head(50), wait=True)
    sw.models(); sw.versions("wine-lr"); sw.lineage("wine-lr", 1); sw.predict("wine-lr", rows)

It resolves its target as the CLI does (stepwise/target.py: SigV4-signed with the caller's AWS
credentials on AWS) and holds the upload/post/wait code the CLI's import and reads call
(stepwise/import_steps.py), so both send the same requests, signed the same way. Reads answer
the API's own reply models (functions/models).
"""

from __future__ import annotations

import hashlib
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from functions.models.api import ModelList, VersionList
from functions.models.lineage import Lineage
from functions.models.runs import ModelSummary, VersionSummary
from functions.models.serving import PredictReply
from stepwise import sklearn_export
from stepwise.import_steps import DATASET_VERSION, ImportFailed, refused, upload_and_request, wait_for_run
from stepwise.sklearn_export import ConversionError, ParityError, Tolerance
from stepwise.target import ApiReply, Target, resolve

__all__ = [
    "ConversionError",
    "ImportResult",
    "ParityError",
    "Stepwise",
    "StepwiseError",
    "Tolerance",
]

Task = Literal["classification", "regression"]
DEFAULT_TOLERANCE = Tolerance()


class StepwiseError(Exception):
    """A request the platform refused, or a run that did not register a version; the message
    carries every reason the platform gave, one a line."""


@dataclass(frozen=True)
class ImportResult:
    """An accepted import: its id, its lifecycle run, the uploaded artifact's sha256 and, once
    waited for, the registered version."""

    model: str
    import_id: str
    execution_name: str
    version: int | None = None
    sha256: str = ""


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
        except ImportFailed as exc:
            raise StepwiseError(str(exc)) from None
        result = ImportResult(
            model=model,
            import_id=record["import_id"],
            execution_name=record["execution_name"],
            sha256=hashlib.sha256(content).hexdigest(),
        )
        return self.wait(result, timeout) if wait else result

    def wait(self, result: ImportResult, timeout: float = 900.0) -> ImportResult:
        """Follows an accepted import's lifecycle run until it registers a version (the result with
        `version` set); StepwiseError with the run's error and cause when it fails or times out."""
        try:
            run = wait_for_run(self._target, result.model, result.execution_name, timeout)
        except ImportFailed as exc:
            raise StepwiseError(str(exc)) from None
        return replace(result, version=int(run["version"]))

    def import_sklearn(
        self,
        pipeline: Any,
        *,
        model: str,
        dataset: str,
        sample: Any,
        version: int | None = None,
        task: Task | None = None,
        target: str | None = None,
        tolerance: Tolerance = DEFAULT_TOLERANCE,
        source_url: str | None = None,
        source_commit: str | None = None,
        description: str = "",
        wait: bool = False,
        timeout: float = 900.0,
    ) -> ImportResult:
        """Imports a fitted scikit-learn pipeline, converted to ONNX here with skl2onnx.

        `sample` is a pandas DataFrame of a few rows holding the columns the pipeline was fitted on
        (named as the dataset's contract columns; a `target` column in it is ignored). Each column
        becomes one graph input named after it. Before anything is uploaded the graph is run in ONNX
        Runtime on the sample and must answer as the pipeline does (predictions, and classifiers'
        probabilities, within `tolerance`). `task` defaults to the pipeline's (classifier or
        regressor). Then it is imported as `import_model` does.

        Raises ConversionError naming a step skl2onnx cannot convert (or a column it cannot type),
        ParityError naming the sample rows that differ, ValueError for bad arguments and
        StepwiseError for a refusal by the platform.
        """
        _dataset_version(dataset, version)  # a bad dataset argument fails before the conversion
        found = sklearn_export.task_of(pipeline)
        if task is not None and task != found:
            raise ValueError(f"task={task!r}, but the pipeline is a {found} model")
        columns = sklearn_export.feature_columns(pipeline, sample, target)
        content = sklearn_export.to_onnx_graph(pipeline, sample, columns, found)
        sklearn_export.check_parity(pipeline, content, sample, columns, found, tolerance)
        return self.import_model(
            model,
            content,
            dataset=dataset,
            version=version,
            task=found,
            target=target,
            source_url=source_url,
            source_commit=source_commit,
            description=description,
            wait=wait,
            timeout=timeout,
        )

    # -- typed reads --------------------------------------------------------------------------
    def models(self) -> list[ModelSummary]:
        """Every model in the registry (following the pages): versions, production and candidate."""
        models: list[ModelSummary] = []
        token: str | None = None
        while True:
            page = self.models_page(limit=1000, next_token=token)
            models += page.models
            token = page.next_token
            if not token:
                return models

    def models_page(self, *, limit: int = 100, next_token: str | None = None) -> ModelList:
        """One page of at most `limit` models; its `next_token` (None on the last page) reads the next."""
        query = {"limit": str(limit), **({"next_token": next_token} if next_token else {})}
        return ModelList.model_validate(self._get(f"/v1/models?{urllib.parse.urlencode(query)}"))

    def versions(self, model: str) -> list[VersionSummary]:
        """Every version of `model` (following the pages): status, primary metric, dataset version."""
        versions: list[VersionSummary] = []
        token: str | None = None
        while True:
            query = f"?{urllib.parse.urlencode({'next_token': token})}" if token else ""
            page = VersionList.model_validate(self._get(f"/v1/models/{_segment(model)}/versions{query}"))
            versions += page.versions
            token = page.next_token
            if not token:
                return versions

    def lineage(self, model: str, version: int) -> Lineage:
        """One version's chain: its run (trained, or imported with who, source and sha256), dataset
        version down to the uploaded object, evaluation, approval, artifacts and audit events."""
        return Lineage.model_validate(self._get(f"/v1/models/{_segment(model)}/versions/{int(version)}/lineage"))

    def predict(
        self, model: str, instances: Sequence[Mapping[str, Any]] | Any, *, request_id: str | None = None
    ) -> PredictReply:
        """Predictions of `model`'s serving endpoint for `instances` (row dicts, or a pandas
        DataFrame), one request: the version that answered, predictions and, for classifiers,
        probabilities in that version's class_labels order."""
        rows = instances.to_dict(orient="records") if hasattr(instances, "to_dict") else [dict(r) for r in instances]
        body: dict[str, Any] = {"instances": rows, **({"request_id": request_id} if request_id else {})}
        reply = self._target.api("POST", f"/v1/models/{_segment(model)}/predict", body)
        return PredictReply.model_validate(self._ok(reply))

    def _get(self, path: str) -> Any:
        return self._ok(self._target.api("GET", path))

    @staticmethod
    def _ok(reply: ApiReply) -> Any:
        if not reply.ok:
            raise StepwiseError(str(refused(reply)))
        return reply.body


def _segment(name: str) -> str:
    return urllib.parse.quote(name, safe="")


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
