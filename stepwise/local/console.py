"""The web console's static assets (stepwise/console/), served by the local cloud's HTTP server at
/console/, with the runtime config the pages read (`config.json`: the API base URL and the sign-in
mode) and the security headers the AWS deployment sends too (a strict Content-Security-Policy: no
inline scripts or styles, no eval, nothing from another origin).

Locally the sign-in is an identity picker: the console signs each API call with the picked name as
its access key (`Credential=LOCAL<name>/...`), which is how the local gateway names callers
(stepwise/local/server.py), so four-eyes and `--strict-auth` personas apply to the person picked.
"""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path
from typing import Any

ASSETS = Path(__file__).resolve().parent.parent / "console"
PREFIX = "/console"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-src blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".json": "application/json"}
# names offered by the picker besides the strict-auth personas (the demo's identities among them)
DEFAULT_IDENTITIES = ("demo-producer", "demo-operator", "demo-scientist", "alice", "bob")


def config(*, strict_auth: bool, personas: dict[str, str]) -> dict[str, Any]:
    """The console's runtime config: same-origin API, local sign-in, the identities to offer."""
    names = list(dict.fromkeys([*personas, *DEFAULT_IDENTITIES]))
    return {
        "api": "",
        "auth": "local",
        "identities": [{"name": n, "persona": personas.get(n, "")} for n in names],
        "strict_auth": strict_auth,
    }


def serve(path: str, *, strict_auth: bool, personas: dict[str, str]) -> tuple[int, dict[str, str], bytes] | None:
    """The reply for a GET of `path` under /console (None: not a console path)."""
    if path == PREFIX:
        return 301, {"Location": PREFIX + "/"}, b""
    if not path.startswith(PREFIX + "/"):
        return None
    relative = path[len(PREFIX) + 1 :] or "index.html"
    if relative == "config.json":
        body = json.dumps(config(strict_auth=strict_auth, personas=personas)).encode()
        return 200, {"Content-Type": "application/json", **SECURITY_HEADERS}, body
    file = (ASSETS / relative).resolve()
    if not file.is_relative_to(ASSETS) or not file.is_file():
        return 404, {"Content-Type": "text/plain", **SECURITY_HEADERS}, b"not found"
    kind = TYPES.get(file.suffix) or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    content_type = f"{kind}; charset=utf-8" if kind.startswith("text") else kind
    return 200, {"Content-Type": content_type, **SECURITY_HEADERS}, file.read_bytes()
