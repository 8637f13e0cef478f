"""Registry reads, training specs and runs on the control API (IAM-authorized).

GET  /v1/models                              models with production version and counts
GET  /v1/models/{name}/versions              version summaries
GET  /v1/models/{name}/versions/{version}    one version: everything, gates and lineage
GET  /v1/models/{name}/runs                  lifecycle runs and their steps
PUT  /v1/specs/{name}                        store a new version of a training spec
GET  /v1/specs/{name}[?version=N]            a spec version (latest by default)
POST /v1/models/{name}/train                 start the workflow {"spec", "dataset_version"}
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, ValidationError

from functions.dal import runs as runs_dal
from functions.dal import specs as specs_dal
from functions.handlers.routes.identity import caller_name
from functions.logic import lifecycle, registration
from functions.models.errors import InvalidInput
from functions.models.runs import TrainRequest, TrainStarted
from functions.models.settings import get_settings
from functions.models.specs import TrainingSpec

router = APIGatewayRouter()
JSON = "application/json"


Reply = Response[dict[str, Any]]


def _reply(status: int, body: Any) -> Reply:
    """A JSON reply; models are dumped in JSON mode (times as ISO strings)."""
    data = json.loads(body.model_dump_json()) if isinstance(body, BaseModel) else body
    return Response(status_code=status, content_type=JSON, body=data)


def _dump(items: list[Any]) -> list[Any]:
    return [json.loads(i.model_dump_json()) for i in items]


def _caller() -> str:
    return caller_name(router.current_event)


def _body(model: type[BaseModel], overrides: dict[str, Any] | None = None) -> Any:
    raw = router.current_event.decoded_body or "{}"
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise InvalidInput("the body must be a JSON object")
        return model.model_validate({**data, **(overrides or {})})
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(detail) from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not JSON: {exc}") from None


@router.get("/v1/models")
def list_models() -> Reply:
    return _reply(200, {"models": _dump(registration.model_summaries(get_settings()))})


@router.get("/v1/models/<name>/versions")
def list_versions(name: str) -> Reply:
    return _reply(200, {"model": name, "versions": _dump(registration.version_summaries(get_settings(), name))})


@router.get("/v1/models/<name>/versions/<version>")
def get_version(name: str, version: str) -> Reply:
    if not version.isdigit():
        raise InvalidInput(f"version must be a positive integer, not {version!r}")
    return _reply(200, registration.version_detail(get_settings(), name, int(version)))


@router.get("/v1/models/<name>/runs")
def list_runs(name: str) -> Reply:
    return _reply(200, {"model": name, "runs": _dump(runs_dal.list_runs(get_settings().metadata_table, name))})


@router.put("/v1/specs/<name>")
def put_spec(name: str) -> Reply:
    spec = _body(TrainingSpec, {"name": name})
    record = specs_dal.put_spec(get_settings().metadata_table, spec, _caller(), datetime.now(UTC))
    return _reply(201, record)


@router.get("/v1/specs/<name>")
def get_spec(name: str) -> Reply:
    raw = router.current_event.get_query_string_value("version")
    if raw is not None and not raw.isdigit():
        raise InvalidInput(f"version must be a positive integer, not {raw!r}")
    return _reply(200, specs_dal.get_spec(get_settings().metadata_table, name, int(raw) if raw else None))


@router.post("/v1/models/<name>/train")
def start_training(name: str) -> Reply:
    request: TrainRequest = _body(TrainRequest)
    settings = get_settings()
    spec = specs_dal.get_spec(settings.metadata_table, request.spec)
    if spec.spec.model != name:
        raise InvalidInput(f"spec {request.spec!r} trains model {spec.spec.model!r}, not {name!r}")
    arn, started, execution = lifecycle.start_training(
        settings, request.spec, spec.spec.dataset, request.dataset_version, _caller()
    )
    return _reply(202, TrainStarted(execution_arn=arn, execution_name=execution, started=started))
