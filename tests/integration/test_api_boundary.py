"""One API boundary: every route of the synthesized template, whichever function serves it, refuses
a malformed body, path parameter or query parameter the same way (400 InvalidInput, the field named
in `details` and in the message), and the OpenAPI document describes every route of the template
with its parameters. The routes come from the template (and its functions' handlers), never from a
list kept here."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from functions.handlers import api, predict
from infra import constants as c
from stepwise.local.assembly import synthesize
from stepwise.local.server import api_methods
from tests.integration.approval_support import Context, api_event
from tests.integration.conftest import Stores

Route = tuple[str, str, Callable[..., dict[str, Any]]]  # method, resource, the handler serving it
VALUES = {
    "name": "churn",
    "approval_id": "churn-1",
    "version": "1",
    "request_id": "req-1",
    "job": "0" * 20,
    "row": "c1",
    "check_id": "abc123",
    "materialization_id": "0" * 20,
}
MALFORMED_BODIES = {
    "not JSON": "{reason: ",
    "an array": '[{"reason": "x"}]',
    "a string": '"reason"',
    "a number": "7",
    "null": "null",
    "NaN": '{"reason": NaN}',
    "nested too deeply": "[" * 10_000 + "]" * 10_000,
}
BAD_PATH_VALUES = {
    "version": ["0", "-1", "abc", "1.5", "100000000"],  # versions have at most 8 digits (the registry's keys)
    "name": ["Bad_Name", "a" * 64, "-churn", "x" * 300],
    "approval_id": ["churn", "Churn-1", "a" * 80 + "-1"],
    "request_id": ["-req", "r" * 129],
    "job": ["not-a-job", "0" * 19, "0" * 21, "G" * 20],
    "row": ["r" * 257],
    "check_id": ["bad id!", "c" * 129],
    "materialization_id": ["not-a-run", "0" * 19, "0" * 21, "G" * 20],
}


def _template_routes(out: Path) -> list[Route]:
    """(method, resource, handler) of every API method of the synthesized template."""
    template = synthesize(out).template
    functions = {k: v for k, v in template["Resources"].items() if v["Type"] == "AWS::Lambda::Function"}
    routes = []
    for resource, props in api_methods(template):
        uri = json.dumps(props.get("Integration", {}).get("Uri"))
        (function,) = {f for f in re.findall(r'"([A-Za-z0-9]+)"', uri) if f in functions}
        props_of = functions[function]["Properties"]
        handler = props_of.get("Handler") or props_of["ImageConfig"]["Command"][0]  # zip or image function
        module = handler.rsplit(".", 1)[0]
        routes.append((props["HttpMethod"], resource, importlib.import_module(module).lambda_handler))
    return sorted(routes, key=lambda r: (r[1], r[0]))


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> list[Route]:
    return _template_routes(tmp_path_factory.mktemp("cdk.out"))


def call(
    handler: Callable[..., dict[str, Any]],
    method: str,
    resource: str,
    *,
    values: dict[str, str] | None = None,
    raw: str | None = None,
    query: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    given = {**VALUES, **(values or {})}
    event = api_event(method, re.sub(r"\{(\w+)\}", lambda m: given[m.group(1)], resource), None, who="alice")
    event.update(body=raw, resource=resource)
    event["headers"] = {**(event.get("headers") or {}), "content-type": "application/json"}
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in (query or {}).items()} or None
    reply = handler(event, Context())
    return reply["statusCode"], json.loads(reply["body"])


def published_document() -> dict[str, Any]:
    reply = api.lambda_handler(api_event("GET", "/v1/openapi.json"), Context())
    assert reply["statusCode"] == 200, reply
    return json.loads(reply["body"])  # type: ignore[no-any-return]


def assert_invalid(status: int, body: dict[str, Any], field: str, case: object) -> None:
    """The one shape of a malformed request: 400 InvalidInput, the field named in details and message."""
    assert status == 400, (case, body)
    assert set(body) == {"error", "message", "details"}, (case, body)
    assert body["error"] == "InvalidInput" and body["message"], (case, body)
    fields = [d["field"] for d in body["details"]]
    assert field in fields and all(d["reason"] for d in body["details"]), (case, body)
    assert field in body["message"], (case, body)


def test_every_route_with_a_body_refuses_the_same_malformed_body_the_same_way(
    routes: list[Route], stores: Stores
) -> None:
    # Given every route of the template that takes a body (every POST and PUT)
    body_routes = [r for r in routes if r[0] in ("POST", "PUT")]
    assert {r[1] for r in body_routes} >= {"/v1/models/{name}/predict", "/v1/datasets/{name}/contract"}
    for method, resource, handler in body_routes:
        for label, raw in MALFORMED_BODIES.items():
            # When it is sent a malformed body
            status, body = call(handler, method, resource, raw=raw)
            # Then it answers 400 InvalidInput naming the body, like every other route
            assert_invalid(status, body, "body", (method, resource, label))


def test_every_route_refuses_a_bad_path_parameter_the_same_way(routes: list[Route], stores: Stores) -> None:
    # Given every route of the template with a path parameter
    checked = set()
    for method, resource, handler in routes:
        for param in re.findall(r"\{(\w+)\}", resource):
            for bad in BAD_PATH_VALUES[param]:
                # When the parameter is malformed (the body, if any, is a valid-looking object)
                raw = "{}" if method in ("POST", "PUT") else None
                status, body = call(handler, method, resource, values={param: bad}, raw=raw)
                # Then 400 InvalidInput names the parameter
                assert_invalid(status, body, f"path.{param}", (method, resource, bad))
                checked.add(param)
    assert checked == set(BAD_PATH_VALUES)


def _bad_query_values(schema: dict[str, Any]) -> list[str]:
    kinds = schema.get("anyOf", [schema])
    bad = []
    for kind in kinds:
        if kind.get("type") == "integer":
            bad += ["0", "-1", "abc", "1.5", "99999999999999999999"]
        if "pattern" in kind:
            bad += ["Bad_Name!", "x" * 400]
        if kind.get("format") == "date-time":
            bad += ["last week", "2026-13-45"]
    return bad


def test_every_route_refuses_a_bad_query_parameter_the_same_way(routes: list[Route], stores: Stores) -> None:
    # Given every query parameter the routes declare (the document is generated from them)
    doc = published_document()
    handlers = {(m.lower(), r): h for m, r, h in routes}
    checked = []
    for resource, operations in doc["paths"].items():
        for method, operation in operations.items():
            for param in operation.get("parameters", []):
                if param["in"] != "query":
                    continue
                bad_values = _bad_query_values(param["schema"])
                assert bad_values, (resource, param)
                for bad in bad_values:
                    # When it is malformed
                    status, body = call(
                        handlers[method, resource], method.upper(), resource, query={param["name"]: bad}
                    )
                    # Then 400 InvalidInput names it
                    assert_invalid(status, body, f"query.{param['name']}", (method, resource, bad))
                checked.append((resource, param["name"]))
    assert {
        ("/v1/audit", "limit"),
        ("/v1/datasets/{name}/contract", "version"),
        ("/v1/specs/{name}", "version"),
    } <= set(checked)


def test_openapi_document_describes_every_template_route_with_its_parameters(routes: list[Route]) -> None:
    # When the published document is read
    event = api_event("GET", "/v1/openapi.json")
    reply = api.lambda_handler(event, Context())
    doc = json.loads(reply["body"])
    assert reply["statusCode"] == 200 and doc["openapi"].startswith("3.")
    # Then every route of the template (but the document itself) is there, and nothing else
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    template = {(m, r) for m, r, _ in routes if r != "/v1/openapi.json"}
    assert documented == template, documented ^ template
    for method, resource in template:
        operation = doc["paths"][resource][method.lower()]
        # with each path parameter of the route, required
        path_params = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path" and p["required"]}
        assert path_params == set(re.findall(r"\{(\w+)\}", resource)), (method, resource)
        # a body for every route that takes one, and the one error shape instead of Powertools' 422
        if method == "PUT" or (method, resource) in c.JSON_BODY_ROUTES:
            assert operation["requestBody"]["required"], (method, resource)
        assert "422" not in operation["responses"], (method, resource)
        assert operation["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorReply")
    assert not {"HTTPValidationError", "ValidationError"} & set(doc["components"]["schemas"])
    # and the success status each route answers with
    created = doc["paths"]["/v1/datasets/{name}/contract"]["put"]["responses"]["201"]
    assert created["content"]["application/json"]["schema"]["$ref"].endswith("/ContractRecord")
    assert "202" in doc["paths"]["/v1/models/{name}/train"]["post"]["responses"]


def test_openapi_document_declares_the_inference_routes_as_the_inference_function_serves_them() -> None:
    # Given the inference function's own router and the document's declaration of its routes
    served = json.loads(predict.app.get_openapi_json_schema())
    doc = published_document()
    for resource, operations in served["paths"].items():
        for method, operation in operations.items():
            documented = doc["paths"][resource][method]

            # Then the path parameters agree, with the same constraints
            def params(op: dict[str, Any]) -> dict[str, Any]:
                return {
                    p["name"]: {k: v for k, v in p["schema"].items() if k in ("pattern", "maxLength", "type")}
                    for p in op.get("parameters", [])
                }

            assert params(documented) == params(operation), (method, resource)
            # and a body the function validates itself is described by the same model
            if "requestBody" in operation:
                assert documented["requestBody"] == operation["requestBody"], (method, resource)
