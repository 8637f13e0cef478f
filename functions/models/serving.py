"""Serving vocabulary: the predict and feedback contracts, the capture line, serving errors.

The predict request model is not declared here once: it is built per model version from the
version's feature schema (`request_model`), so that unknown fields, missing features, wrong
types, non-finite numbers and over-long strings are refused with the field's name.

Capture line (one JSON object per line, gzip JSON Lines, read by the monitoring drift check):
    key  captures/<model>/dt=YYYY-MM-DD/hour=HH/<epoch ms>-<uuid>.jsonl.gz   (data bucket)
    line {"request_id": str, "model": str, "version": int,
          "variant": "production" | "candidate" | "shadow", "time": "YYYY-MM-DDTHH:MM:SS.mmmZ",
          "features": {name: value | null, ...}, "prediction": number | string | null,
          "probabilities": [float, ...] | null}   (classifiers: in ModelVersion.class_labels order;
          null for regressors; a non-finite number, never expected, is written as null)
          and, for a version trained through feature views, "lookups": {view: {"status",
          "source_version", "event_time"}} (where the row's looked-up values came from)
Feedback line (ground truth, gzip JSON Lines):
    key  feedback/<model>/dt=YYYY-MM-DD/<epoch ms>-<uuid>.jsonl.gz              (data bucket)
    line {"request_id": str, "model": str, "label": number | string | bool,
          "time": "YYYY-MM-DDTHH:MM:SS.mmmZ" (received), "event_time": str | null}
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, create_model

from functions.models.errors import InvalidInput, StepwiseError
from functions.models.registry import Feature, ModelVersion

Variant = Literal["production", "candidate", "shadow"]

REQUEST_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/+=@-]{0,127}$"
DEFAULT_STRING_MAX_LENGTH = 1_024
MAX_FEEDBACK_LABELS = 1_000
FLOAT_LIMIT = 3.0e38  # inside float32: every accepted number stays finite in the ONNX tensor
INT_LIMIT = 2**53  # exactly representable as a float64
MAX_ERROR_DETAILS = 20

RequestId = Annotated[str, Field(pattern=REQUEST_ID_PATTERN, strict=True)]


# -- errors ------------------------------------------------------------------------------------
class RequestInvalid(InvalidInput):
    """The body does not match the answering version's input contract (400, like every malformed
    request)."""

    def __init__(self, message: str, details: list[dict[str, str]]) -> None:
        super().__init__(message, details)


class BodyInvalid(InvalidInput):
    """The body is not a JSON document (or uses NaN/Infinity, which JSON does not have)."""


class ModelUnavailable(StepwiseError):
    """The model exists but cannot answer now (no production version, artifact unusable)."""

    status_code = 503


class GraphInputMismatch(ModelUnavailable):
    """An ONNX graph does not take the inputs its features map to (functions/models/registry.py
    `graph_inputs`): the message names the missing and the unexpected inputs. Evaluation fails with
    it (the run record shows it), and serving refuses the version with it."""


MAX_NAMED_INPUTS = 20


def _some(items: list[str]) -> str:
    more = len(items) - MAX_NAMED_INPUTS
    return ", ".join(items[:MAX_NAMED_INPUTS]) + (f" and {more} more" if more > 0 else "")


def check_graph_inputs(what: str, features: list[Feature], expected: list[str], actual: list[str]) -> None:
    """Raise GraphInputMismatch unless the graph's inputs (`actual`) are exactly the inputs the
    features feed (`expected`, one per feature, in feature order)."""
    present = set(actual)
    pairs = zip(features, expected, strict=True)
    missing = [f"{name!r} (feature {f.name!r})" for f, name in pairs if name not in present]
    extra = sorted(present - set(expected))
    if not missing and not extra:
        return
    raise GraphInputMismatch(
        f"{what}: the ONNX graph's inputs do not match its features; "
        f"missing: {_some(missing) or 'none'}; unexpected: {extra[:MAX_NAMED_INPUTS]}"
        + (f" and {len(extra) - MAX_NAMED_INPUTS} more" if len(extra) > MAX_NAMED_INPUTS else "")
    )


# -- predict -----------------------------------------------------------------------------------
class PredictReply(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str
    version: int
    predictions: list[float | int | str | bool | None]
    probabilities: list[list[float]] | None = None
    request_id: str
    # models trained through feature views: per row, per looked-up view, where its values came from
    # ({"status": "fresh" | "missing" | "expired", "source_version": int | null, "event_time": ISO | null})
    lookups: list[dict[str, dict[str, Any]]] | None = None


def _field_type(feature: Feature) -> Any:
    if feature.type == "float":
        kind: Any = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-FLOAT_LIMIT, le=FLOAT_LIMIT)]
    elif feature.type == "int":
        kind = Annotated[int, Field(strict=True, ge=-INT_LIMIT, le=INT_LIMIT)]
    elif feature.type == "bool":
        kind = StrictBool
    elif feature.type == "timestamp":  # an ISO-8601 string, passed to the model as given
        kind = Annotated[str, Field(strict=True, max_length=64), AfterValidator(_iso_timestamp)]
    else:  # string, category
        max_length = feature.max_length or DEFAULT_STRING_MAX_LENGTH
        kind = Annotated[str, Field(strict=True, max_length=max_length)]
        if feature.type == "category" and feature.categories:
            known = frozenset(feature.categories)
            kind = Annotated[kind, AfterValidator(partial(_known_category, known=known))]
    return kind | None if feature.nullable else kind


def _iso_timestamp(value: str) -> str:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("not an ISO-8601 date-time") from None
    return value


def _known_category(value: str, known: frozenset[str]) -> str:
    if value not in known:
        raise ValueError(f"not one of the model's {len(known)} known categories")
    return value


def instance_model(version: ModelVersion) -> type[BaseModel]:
    """One row: a field per feature (aliased by the feature's name), in the schema's order.

    Non-nullable features are required; nullable ones may be null or left out.
    """
    fields: dict[str, Any] = {}
    for i, feature in enumerate(version.features):
        default = None if feature.nullable else ...
        fields[f"f{i}"] = (_field_type(feature), Field(default, alias=feature.name))
    return create_model(  # type: ignore[no-any-return, call-overload]
        f"Instance_{version.model.replace('-', '_')}_v{version.version}",
        __config__=ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=False),
        **fields,
    )


def request_model(version: ModelVersion, max_instances: int) -> type[BaseModel]:
    """The predict body for this version: 1..max_instances rows and an optional request id."""
    row = instance_model(version)
    return create_model(  # type: ignore[no-any-return, call-overload]
        f"PredictRequest_{version.model.replace('-', '_')}_v{version.version}",
        __config__=ConfigDict(extra="forbid", allow_inf_nan=False),
        instances=(Annotated[list[row], Field(min_length=1, max_length=max_instances)], ...),  # type: ignore[valid-type, arg-type]
        request_id=(RequestId | None, None),
    )


EntityKeyValue = (
    Annotated[str, Field(strict=True, min_length=1, max_length=DEFAULT_STRING_MAX_LENGTH)]
    | Annotated[int, Field(strict=True, ge=-INT_LIMIT, le=INT_LIMIT)]
)


def lookup_request_model(
    version: ModelVersion, max_instances: int, *, looked_up: frozenset[str], entity_fields: list[str], overrides: bool
) -> type[BaseModel]:
    """The predict body of a version trained through feature views: per row, the features the
    caller sends (fields `f<i>`, in feature order), the views' entity keys that are not features
    (fields `k<j>`: a string or an integer, required) and, only when the version allows request
    overrides, the looked-up features (optional). Without overrides a looked-up feature is refused
    before validation (functions/logic/lookups.py names it)."""
    fields: dict[str, Any] = {}
    for i, feature in enumerate(version.features):
        if feature.name in looked_up:
            if overrides:
                optional = feature.model_copy(update={"nullable": True})
                fields[f"f{i}"] = (_field_type(optional), Field(None, alias=feature.name))
            continue
        fields[f"f{i}"] = (_field_type(feature), Field(None if feature.nullable else ..., alias=feature.name))
    for j, key in enumerate(entity_fields):
        fields[f"k{j}"] = (EntityKeyValue, Field(..., alias=key))
    row = create_model(  # type: ignore[call-overload]
        f"LookupInstance_{version.model.replace('-', '_')}_v{version.version}",
        __config__=ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=False),
        **fields,
    )
    return create_model(  # type: ignore[no-any-return, call-overload]
        f"LookupPredictRequest_{version.model.replace('-', '_')}_v{version.version}",
        __config__=ConfigDict(extra="forbid", allow_inf_nan=False),
        instances=(Annotated[list[row], Field(min_length=1, max_length=max_instances)], ...),  # type: ignore[valid-type]
        request_id=(RequestId | None, None),
    )


class PredictBody(BaseModel):
    """The shape every predict body has, for the API's documentation: the answering version's
    own model (`request_model`) validates it, one field per feature, at most the function's
    configured number of instances."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    instances: list[dict[str, float | int | str | bool | None]] = Field(min_length=1)
    request_id: RequestId | None = None


def error_details(errors: list[Any]) -> list[dict[str, str]]:
    """pydantic errors as [{"field": "instances.0.age", "reason": "..."}] (the first few)."""
    return [
        {
            "field": ".".join(str(p) for p in err.get("loc", ())) or "body",
            "reason": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in errors[:MAX_ERROR_DETAILS]
    ]


# -- feedback ----------------------------------------------------------------------------------
class FeedbackLabel(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    request_id: RequestId
    label: Annotated[
        StrictBool
        | Annotated[int, Field(strict=True, ge=-INT_LIMIT, le=INT_LIMIT)]
        | Annotated[float, Field(strict=True, allow_inf_nan=False)]
        | Annotated[str, Field(strict=True, min_length=1, max_length=DEFAULT_STRING_MAX_LENGTH)],
        Field(union_mode="left_to_right"),
    ]
    event_time: datetime | None = None  # when the outcome happened, if the caller knows


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    labels: list[FeedbackLabel] = Field(min_length=1, max_length=MAX_FEEDBACK_LABELS)


class FeedbackReply(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    accepted: int
    key: str


# -- capture -----------------------------------------------------------------------------------
class CaptureLine(BaseModel):
    """Documents (and tests) one capture line; the writer serializes rows without building these."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    request_id: str
    model: str
    version: int
    variant: Variant
    time: str
    features: dict[str, Any]
    prediction: float | int | str | bool | None
    probabilities: list[float | None] | None  # null entries only where the model produced a non-finite number
    lookups: dict[str, dict[str, Any]] | None = None  # looked-up views: as PredictReply.lookups for this row
