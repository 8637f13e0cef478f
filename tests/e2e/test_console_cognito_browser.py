"""The console's AWS sign-in (config `auth: cognito`) in a real headless browser: the managed-login
authorization-code + PKCE flow, then every API call carrying the user's access token.

AWS does not let us run Cognito's managed login or CloudFront here, so one local HTTP server stands
in for both, and says so: it serves the console's assets at the root with the deployment's
`config.json` and the Content-Security-Policy the distribution sends (infra/constructs/console.py),
a stand-in user pool under /pool (`/oauth2/authorize` redirects back with a code; `/oauth2/token`
checks the PKCE verifier against the challenge, as Cognito does), and a stand-in API under /v1 that
records the Authorization header of each call. The console's own code is what runs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import pytest

from infra.constructs.console import content_security_policy
from stepwise.local.console import ASSETS
from tests.e2e.test_console_browser import Console, browser  # noqa: F401  (the module's browser fixture)

pytestmark = pytest.mark.slow

CLIENT_ID = "console-client"
USER = "carol"


def _jwt(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.signature"


ACCESS_TOKEN = _jwt({"username": USER, "scope": "openid stepwise/Approver", "token_use": "access"})
ID_TOKEN = _jwt({"cognito:username": USER, "token_use": "id"})


class _State:
    def __init__(self) -> None:
        self.challenges: dict[str, str] = {}  # code -> PKCE challenge
        self.authorize: dict[str, list[str]] = {}
        self.token_requests: list[dict[str, list[str]]] = []
        self.api_headers: list[str] = []


def _server(state: _State) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def reply(self, status: int, body: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            origin = f"http://127.0.0.1:{self.server.server_address[1]}"
            if url.path == "/pool/oauth2/authorize":
                query = parse_qs(url.query)
                state.authorize = query
                code = "code-1"
                state.challenges[code] = query["code_challenge"][0]
                back = f"{query['redirect_uri'][0]}?{urlencode({'code': code, 'state': query['state'][0]})}"
                self.reply(302, b"", "text/plain", {"Location": back})
            elif url.path.startswith("/v1/"):
                state.api_headers.append(self.headers.get("Authorization", ""))
                self.reply(200, json.dumps({"models": [], "next_token": None}).encode(), "application/json")
            elif url.path == "/config.json":
                config = {
                    "api": origin,
                    "auth": "cognito",
                    "userPoolDomain": f"{origin}/pool",
                    "clientId": CLIENT_ID,
                    "userPoolId": "us-east-1_local",
                    "region": "us-east-1",
                }
                self.reply(200, json.dumps(config).encode(), "application/json")
            else:
                file = (ASSETS / (url.path.lstrip("/") or "index.html")).resolve()
                if not file.is_relative_to(ASSETS) or not file.is_file():
                    self.reply(404, b"not found", "text/plain")
                    return
                kinds = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}
                kind = kinds.get(file.suffix, "text/plain")
                csp = content_security_policy(api_url=origin, region="us-east-1", pool_domain=f"{origin}/pool")
                self.reply(200, file.read_bytes(), kind, {"Content-Security-Policy": csp})

        def do_POST(self) -> None:
            if urlparse(self.path).path != "/pool/oauth2/token":
                self.reply(404, b"not found", "text/plain")
                return
            form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode())
            state.token_requests.append(form)
            verifier = form.get("code_verifier", [""])[0]
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            code = form.get("code", [""])[0]
            if form.get("grant_type") != ["authorization_code"] or state.challenges.get(code) != digest:
                self.reply(400, b'{"error": "invalid_grant"}', "application/json")
                return
            tokens = {"access_token": ACCESS_TOKEN, "id_token": ID_TOKEN, "expires_in": 3600, "token_type": "Bearer"}
            self.reply(200, json.dumps(tokens).encode(), "application/json")

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@pytest.fixture
def site() -> Iterator[tuple[str, _State]]:
    state = _State()
    server = _server(state)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", state
    server.shutdown()


def test_cognito_sign_in_uses_pkce_and_signs_api_calls_with_the_access_token(
    browser: Any,  # noqa: F811
    site: tuple[str, _State],
) -> None:
    base, state = site
    console = Console(browser, base)
    browser.delete_all_cookies()
    # Given the console of an AWS deployment, opened on a page without a session
    browser.get(f"{base}#/approvals")
    # Then it asks the user to sign in, and signing in goes through the pool's managed login
    console.wait(lambda: browser.find_element("id", "cognito-signin")).click()
    console.wait(lambda: state.token_requests)
    # The authorization request is a PKCE code request of the console's client, back to the console
    assert state.authorize["response_type"] == ["code"]
    assert state.authorize["client_id"] == [CLIENT_ID]
    assert state.authorize["code_challenge_method"] == ["S256"]
    assert state.authorize["redirect_uri"] == [base]
    # The code was exchanged with the verifier (the stand-in pool refuses any other) and no secret
    exchange = state.token_requests[0]
    assert exchange["client_id"] == [CLIENT_ID] and "client_secret" not in exchange
    # And the API calls carry the access token; the user is named; the code left the address bar
    console.wait(lambda: ACCESS_TOKEN in state.api_headers)
    assert set(state.api_headers) == {ACCESS_TOKEN}
    console.wait(lambda: USER in browser.find_element("tag name", "header").text)
    assert "code=" not in browser.current_url
    assert browser.current_url.endswith("#/approvals")
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and "Content Security" in e["message"]]
