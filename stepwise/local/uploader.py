"""Who uploaded: S3 event notifications name the uploading principal (`userIdentity.principalId`,
`AWS:<unique id>`); moto's carry none, so four-eyes would have no starter for an upload-started
run. While installed, each S3 request's credentials (the SigV4 `Credential=` of its Authorization
header, or a presigned URL's `X-Amz-Credential`) are remembered for the thread that handles it, and
the notifications that request causes carry them as S3's would, with the local cloud's naming of an
access key (`LOCAL<name>` is the local user `<name>`, as the local API names its callers).
"""

from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import parse_qs, urlsplit

from moto.s3 import notifications
from moto.s3.responses import S3Response

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
_current = threading.local()
_originals: dict[str, Any] = {}


def local_principal(access_key: str) -> str:
    """The local user an access key names: `LOCALana` is `ana` (stepwise.target.local_credentials)."""
    return access_key.removeprefix("LOCAL") or access_key


def _access_key(request: Any, full_url: str | None) -> str:
    headers = getattr(request, "headers", None) or {}
    if match := _CREDENTIAL.search(headers.get("Authorization", "") or ""):
        return match.group(1)
    url = full_url or getattr(request, "url", "") or ""
    credential = (parse_qs(urlsplit(url).query).get("X-Amz-Credential") or [""])[0]
    return credential.split("/", 1)[0]


def install() -> None:
    if _originals:
        return
    setup_class = S3Response.setup_class
    get_s3_event = notifications._get_s3_event

    def remembering_setup(self: S3Response, request: Any, full_url: str | None = None, headers: Any = None) -> None:
        _current.access_key = _access_key(request, full_url)
        setup_class(self, request, full_url, headers)

    def event_with_principal(*args: Any, **kwargs: Any) -> dict[str, Any]:
        event = get_s3_event(*args, **kwargs)
        access_key = getattr(_current, "access_key", "")
        if access_key:
            for record in event.get("Records", []):
                record.setdefault("userIdentity", {"principalId": f"AWS:{local_principal(access_key)}"})
                record.setdefault("requestParameters", {"sourceIPAddress": "127.0.0.1"})
        return event

    _originals.update(setup_class=setup_class, get_s3_event=get_s3_event)
    S3Response.setup_class = remembering_setup  # type: ignore[method-assign]
    notifications._get_s3_event = event_with_principal


def uninstall() -> None:
    if not _originals:
        return
    S3Response.setup_class = _originals.pop("setup_class")  # type: ignore[method-assign]
    notifications._get_s3_event = _originals.pop("get_s3_event")
