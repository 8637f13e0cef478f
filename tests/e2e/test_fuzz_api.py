"""Fuzzing the HTTP API of the local cloud (the real template, the real handlers).

Every route of the template (AWS::ApiGateway::Method resources, read by the local server's own
routes_from_template) gets hypothesis-generated path parameters (often the names of a seeded
dataset, spec and production model, so requests reach the handlers' logic), query strings and
bodies (JSON
objects with known and unknown fields, wrong JSON types, malformed JSON, oversized values),
signed with SigV4 as an operator. The contract: no reply is 5xx, and every 4xx carries a JSON
object with an error message. Bounded: EXAMPLES_PER_ROUTE requests per route (derandomized, so a
CI run is repeatable); the totals are printed at the end of the module (pytest -s shows them).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stepwise.commands.data import upload
from stepwise.local.server import Route, api_methods, routes_from_template
from stepwise.local.session import LocalSession
from stepwise.target import Target, local_credentials
from tests.e2e.conftest import collection_assembly
from tests.e2e.test_lifecycle_e2e import CONTRACT, SPEC, wait_for
from tests.unit.lifecycle_data import classification_table

pytestmark = pytest.mark.slow

EXAMPLES_PER_ROUTE = int(os.environ.get("STEPWISE_FUZZ_EXAMPLES", "12"))  # a deeper run: STEPWISE_FUZZ_EXAMPLES=200
SENT: Counter[str] = Counter()  # "METHOD resource" -> requests sent
STATUSES: Counter[int] = Counter()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One fuzz case per method of the synthesized template's API ("POST /v1/models/{name}/predict")."""
    if "route_key" not in metafunc.fixturenames:
        return
    keys = (
        sorted(f"{props['HttpMethod'].upper()} {path}" for path, props in api_methods(collection_assembly().template))
        if metafunc.config.getoption("--slow")
        else ["(collected with --slow)"]
    )
    metafunc.parametrize("route_key", keys)


# -- strategies ---------------------------------------------------------------------------------
# what the `seeded` fixture creates: dataset and spec "toy", model "toy-model" version 1 in production
SEEDED = ["toy", "toy-model", "1", "2", "toy-model-1"]
_names = st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True)
_hostile = st.sampled_from(
    ["..", ".", "%00", "a" * 300, "-1", "0", "1e9", "99999999999999999999", "<script>", "' OR 1=1 --", "名前", " "]
)
_segment = st.one_of(
    st.sampled_from(SEEDED), _names, st.integers(-5, 10**12).map(str), _hostile, st.text(min_size=1, max_size=40)
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=50),
)
_json_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12,
)
# field names the control and inference APIs use, so generated objects get past "unknown field"
_known_fields = st.sampled_from(
    [
        "rows",
        "instances",
        "reason",
        "version",
        "dataset",
        "columns",
        "schema",
        "target",
        "features",
        "algorithm",
        "gates",
        "labels",
        "request_id",
        "label",
        "window_hours",
        "thresholds",
        "release",
        "strategy",
        "name",
        "description",
    ]
)
_objects = st.dictionaries(st.one_of(_known_fields, st.text(max_size=12)), _json_values, max_size=6)
_raw_bodies = st.sampled_from(
    [b"{", b"not json", b"[1, 2", b'{"rows": [[NaN]]}', b'{"a": Infinity}', b"\xff\xfe", b"null", b'"x"', b"[]"]
)
_bodies = st.one_of(
    st.none(),
    _objects.map(lambda v: ("json", v)),
    _json_values.map(lambda v: ("json", v)),
    _raw_bodies.map(lambda v: ("raw", v)),
)
_queries = st.dictionaries(
    st.sampled_from(["limit", "next", "status", "since", "until", "model", "version", "x"]),
    st.one_of(st.integers(-10, 10**9).map(str), st.text(max_size=30)),
    max_size=3,
)


# -- sending -------------------------------------------------------------------------------------
def send(target: Target, method: str, path: str, body: bytes | None) -> tuple[int, Any, bytes]:
    """SigV4-signed request with raw bytes (Target.api only sends valid JSON)."""
    url = target.api_url.rstrip("/") + path
    headers = {"content-type": "application/json", "accept": "application/json"}
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    SigV4Auth(local_credentials("operator"), "execute-api", target.region).add_auth(request)
    prepared = urllib.request.Request(url, data=body, method=method, headers=dict(request.headers.items()))
    try:
        with urllib.request.urlopen(prepared, timeout=120) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    try:
        parsed: Any = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    return status, parsed, raw


def path_for(route: Route, values: dict[str, str]) -> str:
    path = route.resource
    for name in route.params:
        path = path.replace("{" + name + "}", urllib.parse.quote(values[name], safe=""))
    return path


def check_reply(route: Route, path: str, status: int, parsed: Any, raw: bytes) -> None:
    where = f"{route.method} {path} -> {status}: {raw[:300]!r}"
    assert status < 500, where
    if 400 <= status < 500:
        assert isinstance(parsed, dict), where
        message = parsed.get("message")
        assert isinstance(message, str) and message.strip(), where
        assert "Traceback" not in raw.decode(errors="replace"), where
        assert "arn:aws" not in raw.decode(errors="replace"), where


@pytest.fixture(scope="module")
def routes(local_session: LocalSession) -> Iterator[list[Route]]:
    found = sorted(routes_from_template(local_session.cloud), key=lambda r: (r.resource, r.method))
    yield found
    total = sum(SENT.values())
    print(f"\nfuzz: {len(SENT)} routes fuzzed, {total} requests sent, statuses {dict(sorted(STATUSES.items()))}")


@pytest.fixture(scope="module")
def seeded(local: Target, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A dataset, a spec and a model version in production, so generated requests that name them
    reach the handlers' logic (not only their not-found paths)."""
    import io

    import pyarrow.parquet as pq

    assert local.api("PUT", "/v1/specs/toy", SPEC).status == 201
    assert local.api("PUT", "/v1/datasets/toy/contract", CONTRACT).ok
    path = tmp_path_factory.mktemp("fuzz") / "toy.parquet"
    buf = io.BytesIO()
    pq.write_table(classification_table(600), buf)
    path.write_bytes(buf.getvalue())
    assert upload(local, path, "toy", timeout=120).passed
    wait_for(lambda: local.api("GET", "/v1/approvals").body.get("approvals"))
    reply = local.api("POST", "/v1/approvals/toy-model-1/approve", {"reason": "fuzz seed"}, identity="alice")
    assert reply.ok, reply.body
    wait_for(lambda: local.api("GET", "/v1/models/toy-model/versions/1").body.get("status") == "PRODUCTION")


# -- tests ---------------------------------------------------------------------------------------
def test_fuzz_api_covers_every_route_of_the_template(routes: list[Route], local_session: LocalSession) -> None:
    # Given the template's API methods
    methods = local_session.cloud.assembly.resources_of_type("AWS::ApiGateway::Method")  # type: ignore[union-attr]
    # Then the fuzzer knows a route for each one, and the fuzz test below has a case for each
    assert len(routes) == len(methods) > 0
    generated = {f"{m} {p}" for p, props in api_methods(collection_assembly().template) for m in [props["HttpMethod"]]}
    assert generated == {f"{r.method} {r.resource}" for r in routes}
    assert ("GET", "/v1/openapi.json") in {(r.method, r.resource) for r in routes}


def test_openapi_document_describes_the_control_routes(local: Target, routes: list[Route]) -> None:
    # When the published OpenAPI document is read over HTTP
    reply = local.api("GET", "/v1/openapi.json")
    # Then it is an OpenAPI 3 document whose paths are all routes of the template
    assert reply.status == 200, reply.body
    assert reply.body["openapi"].startswith("3.")
    template_routes = {(r.method.lower(), r.resource) for r in routes}
    documented = {(m, p) for p, ops in reply.body["paths"].items() for m in ops}
    assert documented and documented <= template_routes, documented - template_routes
    assert reply.body["security"] == [{"sigv4": []}]


def test_fuzz_api_route_answers_without_5xx_and_with_json_errors(
    route_key: str, routes: list[Route], local: Target, seeded: None
) -> None:
    route = next(r for r in routes if f"{r.method} {r.resource}" == route_key)

    @settings(
        max_examples=EXAMPLES_PER_ROUTE,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        values=st.fixed_dictionaries({name: _segment for name in route.params}),
        query=_queries,
        body=_bodies,
    )
    def run(values: dict[str, str], query: dict[str, str], body: tuple[str, Any] | None) -> None:
        # Given a generated request for the route
        path = path_for(route, values)
        if query:
            path += "?" + urllib.parse.urlencode(query)
        data = None
        if body is not None and route.method in ("POST", "PUT", "PATCH"):
            kind, value = body
            data = value if kind == "raw" else json.dumps(value).encode()
        # When it is sent, signed, over HTTP
        status, parsed, raw = send(local, route.method, path, data)
        SENT[f"{route.method} {route.resource}"] += 1
        STATUSES[status] += 1
        # Then the API answered without a server error, and a client error explains itself
        check_reply(route, path, status, parsed, raw)

    run()
