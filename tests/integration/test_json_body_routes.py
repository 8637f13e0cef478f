"""API Gateway refuses a body that is not a JSON object before the Lambda on the routes of
JSON_BODY_ROUTES and every PUT (tests/infra/test_api_access.py). Here the other side: each of those
routes' handler refuses such a body too, so the gateway's model never turns away a request the
handler would have accepted (it only answers sooner)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from functions.handlers import api, predict
from infra import constants as c
from tests.integration.approval_support import Context, api_event
from tests.integration.conftest import Stores
from tests.integration.test_predict_support import NAME, feedback_event, predict_event

PUT_ROUTES = {
    ("PUT", "/v1/datasets/{name}/contract"),
    ("PUT", "/v1/specs/{name}"),
    ("PUT", "/v1/models/{name}/drift/settings"),
}
VALUES = {"name": "churn", "approval_id": "churn-1", "version": "1"}


def _path(template: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: VALUES[m.group(1)], template)


NOT_OBJECTS = [[{"reason": "x"}], "a string", 7]
CONTROL_ROUTES = sorted(r for r in c.JSON_BODY_ROUTES | PUT_ROUTES if not r[1].endswith(("/predict", "/feedback")))
SERVING_ROUTES = sorted(r for r in c.JSON_BODY_ROUTES if r[1].endswith(("/predict", "/feedback")))


@pytest.mark.parametrize("body", NOT_OBJECTS)
@pytest.mark.parametrize(("method", "template"), CONTROL_ROUTES)
def test_json_body_route_handler_refuses_a_body_that_is_not_an_object(
    stores: Stores, method: str, template: str, body: Any
) -> None:
    event: dict[str, Any] = api_event(method, _path(template), body, who="alice")
    event["resource"] = template
    reply = api.lambda_handler(event, Context())
    assert reply["statusCode"] == 400 and json.loads(reply["body"])["error"] == "InvalidInput", (
        method,
        template,
        reply,
    )


@pytest.mark.usefixtures("served")
@pytest.mark.parametrize("body", NOT_OBJECTS)
@pytest.mark.parametrize(("method", "template"), SERVING_ROUTES)
def test_json_body_serving_route_refuses_a_body_that_is_not_an_object(method: str, template: str, body: Any) -> None:
    # Given a model in production (so the body, not the name, decides)
    event = (predict_event if template.endswith("/predict") else feedback_event)(NAME, body)
    reply = predict.lambda_handler(event, Context())
    assert reply["statusCode"] == 400 and json.loads(reply["body"])["error"] == "InvalidInput", (
        method,
        template,
        reply,
    )


def test_json_body_routes_split_covers_them_all() -> None:
    assert len(CONTROL_ROUTES) + len(SERVING_ROUTES) == len(c.JSON_BODY_ROUTES | PUT_ROUTES)
