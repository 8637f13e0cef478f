"""The HTTP steps of importing a model, shared by the Python client (stepwise/client.py) and the
CLI's `stepwise import` (which goes through the client): ask for a presigned upload URL, PUT the
file, post the import, follow its run."""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any

from stepwise.target import ApiReply, Target

DATASET_VERSION = re.compile(r"^(?P<name>[a-z][a-z0-9-]{0,62})@(?P<version>[1-9][0-9]*)$")


class ImportFailed(Exception):
    """An import the API refused, an upload that failed, or a run that did not register a version;
    `lines` is the reason and its details, one a line."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def refused(reply: ApiReply) -> ImportFailed:
    body = reply.body if isinstance(reply.body, dict) else {"message": reply.body}
    lines = [f"HTTP {reply.status} {body.get('error', '')}: {body.get('message', '')}"]
    lines += [f"  {d.get('field', '')}: {d.get('reason', '')}" for d in body.get("details") or []]
    return ImportFailed(lines)


def put_presigned(url: str, data: bytes, headers: dict[str, str]) -> int:
    """PUT `data` to a presigned URL; the HTTP status."""
    import requests  # type: ignore[import-untyped]

    return int(requests.put(url, data=data, headers=headers, timeout=300).status_code)


def upload_and_request(target: Target, model: str, content: bytes, request: dict[str, Any]) -> dict[str, Any]:
    """Uploads `content` through a presigned URL and posts the import (`request` names the dataset
    version, task and optional fields; the upload id and sha256 are added here); the stored import
    record (`import_id`, `execution_name`, ...). Raises ImportFailed with the API's reasons."""
    reply = target.api("POST", f"/v1/models/{model}/imports/upload", {"size_bytes": len(content)})
    if not reply.ok:
        raise refused(reply)
    ticket = reply.body
    status = put_presigned(ticket["url"], content, ticket["headers"])
    if not 200 <= status < 300:
        raise ImportFailed([f"the upload to the presigned URL answered HTTP {status}"])
    body = {"upload_id": ticket["upload_id"], "sha256": hashlib.sha256(content).hexdigest(), **request}
    reply = target.api("POST", f"/v1/models/{model}/imports", body)
    if not reply.ok:
        raise refused(reply)
    return dict(reply.body)


def wait_for_run(target: Target, model: str, run_id: str, timeout: float) -> dict[str, Any]:
    """Follows the lifecycle run until it ends; the run record once it registered a version.
    Raises ImportFailed when the run failed (with its error and cause) or did not end in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = target.api("GET", f"/v1/models/{model}/runs")
        if not reply.ok:
            raise refused(reply)
        run = next((r for r in reply.body["runs"] if r["run_id"] == run_id), None)
        if run is not None and run["status"] != "RUNNING":
            if run["status"] == "REGISTERED":
                return dict(run)
            raise ImportFailed([f"run {run_id}: {run['status']} ({run.get('error') or '-'}): {run.get('cause') or ''}"])
        time.sleep(2.0)
    raise ImportFailed([f"run {run_id} did not end within {timeout:.0f} s (stepwise runs {model})"])
