"""Serve the template's API Gateway routes on localhost as API Gateway (REST, proxy) events.

Routes come from the template's AWS::ApiGateway::Resource / Method resources; each request is
turned into the proxy event API Gateway would send and handed to the integration's Lambda
through moto's Invoke API (which the local runtime routes to the real handler).

Request validation is the template's: a method with a body-validating request validator and a
request model for application/json refuses a body that is not JSON or does not have the model's
top-level JSON type with API Gateway's 400 BAD_REQUEST_BODY, before the Lambda runs (only the
schema's top-level `type` is checked: the stack's one model is "a JSON object").

Differences from AWS, reported by `stepwise local up`: SigV4 signatures are not verified; the
access key a request is signed with names the caller (requestContext.identity), and an unsigned
request acts as "anonymous" unless strict auth is on; with strict auth, a caller given a persona
(`--persona NAME=Persona`) is held to that persona's managed policy from the template, evaluated
against the route ARN (IAM's 403 ACCESS_DENIED otherwise); API keys and Cognito tokens (both off unless
their stack settings are given) are not checked.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import boto3

from layers.assembly import merged_template
from stepwise.local import console, policy

if TYPE_CHECKING:
    from stepwise.local.cloud import LocalCloud

INFO_PATH = "/_local/info"
FIRE_PATH = "/_local/fire"
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


@dataclass(frozen=True)
class Route:
    method: str  # GET, POST, ... or ANY
    resource: str  # /v1/models/{name}/predict
    function_arn: str
    authorization: str  # AWS_IAM, NONE, COGNITO_USER_POOLS, ...
    pattern: re.Pattern[str]
    params: tuple[str, ...]
    body_type: str | None = None  # the JSON type the request model requires of a body, if validated
    api: str = ""  # the REST API's logical id (route ARNs name it)

    def body_error(self, headers: dict[str, str], body: bytes) -> str | None:
        """Why API Gateway's request validator would refuse `body` (None: it passes)."""
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "application/json")
        if self.body_type is None or content_type.split(";")[0].strip().lower() != "application/json":
            return None
        try:
            value = json.loads(body or b"")
        except (ValueError, RecursionError):  # json.loads raises RecursionError on deep nesting
            return "Invalid request body"
        kinds = {"object": dict, "array": list, "string": str, "boolean": bool}
        expected = kinds.get(self.body_type)
        return None if expected is None or isinstance(value, expected) else "Invalid request body"


def _compile(resource: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    params: list[str] = []
    parts = []
    for segment in resource.strip("/").split("/"):
        if segment.startswith("{") and segment.endswith("+}"):
            params.append(segment[1:-2])
            parts.append("(.+)")
        elif segment.startswith("{") and segment.endswith("}"):
            params.append(segment[1:-1])
            parts.append("([^/]+)")
        elif segment:
            parts.append(re.escape(segment))
    return re.compile("^/" + "/".join(parts) + "/?$"), tuple(params)


def api_methods(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(resource path, method properties) of every API Gateway method in a template."""
    resources = {k: v for k, v in template["Resources"].items() if v["Type"] == "AWS::ApiGateway::Resource"}

    def path_of(ref: Any) -> str:
        if isinstance(ref, dict) and "Ref" in ref and ref["Ref"] in resources:
            props = resources[ref["Ref"]]["Properties"]
            return path_of(props["ParentId"]).rstrip("/") + "/" + props["PathPart"]
        return "/"  # the API's root resource (Fn::GetAtt RestApi.RootResourceId)

    return [
        (path_of(r["Properties"]["ResourceId"]), r["Properties"])
        for r in template["Resources"].values()
        if r["Type"] == "AWS::ApiGateway::Method"
    ]


def routes_from_template(cloud: LocalCloud) -> list[Route]:
    """Every method of every REST API in the template, with its resolved Lambda ARN."""
    assert cloud.assembly is not None
    models = cloud.assembly.resources_of_type("AWS::ApiGateway::Model")
    validators = cloud.assembly.resources_of_type("AWS::ApiGateway::RequestValidator")

    def body_type(props: dict[str, Any]) -> str | None:
        validator = validators.get(str((props.get("RequestValidatorId") or {}).get("Ref", "")), {})
        if not validator.get("Properties", {}).get("ValidateRequestBody"):
            return None
        model = (props.get("RequestModels") or {}).get("application/json") or {}
        found = models.get(str(model.get("Ref", "")) if isinstance(model, dict) else "", {})
        schema = found.get("Properties", {}).get("Schema") or {}
        return str(schema["type"]) if "type" in schema else None

    routes = []
    for resource, props in api_methods(cloud.assembly.template):
        integration = props.get("Integration", {})
        if integration.get("Type") not in ("AWS_PROXY", "AWS"):
            continue
        uri = str(cloud.resolve(integration["Uri"]))
        match = re.search(r"functions/(arn:[^/]+)/invocations", uri)
        if not match:
            continue
        pattern, params = _compile(resource)
        routes.append(
            Route(
                method=props["HttpMethod"].upper(),
                resource=resource,
                function_arn=match.group(1),
                authorization=props.get("AuthorizationType", "NONE"),
                pattern=pattern,
                params=params,
                body_type=body_type(props),
                api=str((props.get("RestApiId") or {}).get("Ref", "")),
            )
        )
    return routes


class ApiServer:
    def __init__(
        self,
        cloud: LocalCloud,
        host: str = "127.0.0.1",
        port: int = 8787,
        strict_auth: bool = False,
        personas: dict[str, str] | None = None,
    ):
        self.cloud = cloud
        self.routes = routes_from_template(cloud)
        self.strict_auth = strict_auth
        # local caller name -> persona: with strict auth, the persona's policy decides its calls
        self.personas = dict(personas or {})
        # every stack's template as one, imports resolved: persona policies name the stores' exports
        self.persona_policies = policy.persona_statements(merged_template(cloud.assemblies) if cloud.assemblies else {})
        self.info: dict[str, Any] = {}
        handler = _make_handler(self)
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.host, self.port = str(host), int(self.httpd.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def console_url(self) -> str:
        return f"{self.url}{console.PREFIX}/"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="stepwise-api", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def persona_allows(self, caller: str, route: Route, method: str, path: str) -> bool:
        """Whether the caller's persona policy (if the caller has a persona) allows this call, as
        IAM would evaluate the route ARN (stepwise/local/policy.py); callers without one pass."""
        persona = self.personas.get(caller)
        if persona is None:
            return True
        statements = self.persona_policies.get(persona)
        if statements is None:
            return False  # a persona the template does not define allows nothing
        return policy.allowed(statements, "execute-api:Invoke", policy.invoke_arn(route.api, method, path))

    # -- one request ---------------------------------------------------------------------
    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        split = urlsplit(raw_path)
        path = split.path
        if path == INFO_PATH and method == "GET":
            return _json(200, self.info)
        if method in ("GET", "HEAD") and (
            served := console.serve(path, strict_auth=self.strict_auth, personas=self.personas)
        ):
            return served
        if path == FIRE_PATH and method == "POST":
            rule = parse_qs(split.query).get("rule", [""])[-1]
            return _json(200, {"fired": self.cloud.fire_schedules(rule)})
        matching = [(r, m) for r in self.routes if (m := r.pattern.match(path))]
        if not matching:
            return _json(404, {"error": "NotFound", "message": f"no route {path}"})
        chosen = next(((r, m) for r, m in matching if r.method in (method, "ANY")), None)
        if chosen is None:
            allowed = sorted({r.method for r, _ in matching})
            reply = _json(405, {"error": "MethodNotAllowed", "message": f"{method} not allowed on {path}"})
            reply[1]["Allow"] = ", ".join(allowed)
            return reply
        route, match = chosen
        identity = _identity(headers)
        if route.authorization == "AWS_IAM" and identity is None and self.strict_auth:
            return _json(403, {"error": "MISSING_AUTHENTICATION_TOKEN", "message": "Missing Authentication Token"})
        refused_persona = identity is not None and not self.persona_allows(identity["caller"], route, method, path)
        if self.strict_auth and refused_persona:
            return _json(403, {"error": "ACCESS_DENIED", "message": "the caller is not allowed to call this route"})
        if (refused := route.body_error(headers, body)) is not None:
            return _json(400, {"error": "BAD_REQUEST_BODY", "message": refused})
        event = _proxy_event(
            route, dict(zip(route.params, match.groups(), strict=True)), method, split, headers, body, identity
        )
        reply = boto3.client("lambda", region_name="us-east-1").invoke(
            FunctionName=route.function_arn, Payload=json.dumps(event).encode()
        )
        payload = reply["Payload"].read()
        if reply.get("FunctionError"):
            return _json(502, {"message": "Internal server error"})
        try:
            result = json.loads(payload)
            status = int(result["statusCode"])
        except (ValueError, KeyError, TypeError):
            return _json(502, {"message": "Malformed Lambda proxy response"})
        out_headers = {k: str(v) for k, v in (result.get("headers") or {}).items()}
        for key, values in (result.get("multiValueHeaders") or {}).items():
            out_headers[key] = ", ".join(str(v) for v in values)
        raw = result.get("body") or ""
        data = (
            base64.b64decode(raw)
            if result.get("isBase64Encoded")
            else (raw if isinstance(raw, str) else json.dumps(raw)).encode()
        )
        return status, out_headers, data


def _json(status: int, body: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


def _identity(headers: dict[str, str]) -> dict[str, str] | None:
    auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    match = _CREDENTIAL.search(auth)
    if not match:
        return None
    access_key = match.group(1)
    name = access_key.removeprefix("LOCAL") or access_key
    return {
        "accessKey": access_key,
        "caller": name,
        "user": name,
        "userArn": f"arn:aws:iam::123456789012:user/{name}",
    }


def _proxy_event(
    route: Route,
    path_params: dict[str, str],
    method: str,
    split: Any,
    headers: dict[str, str],
    body: bytes,
    identity: dict[str, str] | None,
) -> dict[str, Any]:
    query = parse_qs(split.query, keep_blank_values=True)
    who = identity or {"caller": "anonymous", "user": "anonymous", "userArn": "", "accessKey": ""}
    text: str | None
    try:
        text, is_b64 = (body.decode("utf-8") if body else None), False
    except UnicodeDecodeError:
        text, is_b64 = base64.b64encode(body).decode(), True
    return {
        "resource": route.resource,
        "path": split.path,
        "httpMethod": method,
        "headers": dict(headers),
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": path_params or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": route.resource,
            "httpMethod": method,
            "path": "/prod" + split.path,
            "stage": "prod",
            "requestId": str(uuid.uuid4()),
            "accountId": "123456789012",
            "apiId": "local",
            "requestTimeEpoch": int(time.time() * 1000),
            "protocol": "HTTP/1.1",
            "identity": {**who, "sourceIp": "127.0.0.1", "userAgent": headers.get("User-Agent", "")},
        },
        "body": text,
        "isBase64Encoded": is_b64,
    }


def _make_handler(server: ApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                status, headers, data = server.handle(self.command, self.path, dict(self.headers.items()), body)
            except Exception:  # the gateway never leaks a stack trace
                status, headers, data = _json(500, {"message": "Internal server error"})
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
