"""Bring your own model: import an ONNX model trained elsewhere (over the HTTPS API).

stepwise import MODEL --onnx FILE --dataset NAME@V --task classification|regression
        [--target COL] [--source-url URL --source-commit SHA] [--description TEXT] [--wait]

Asks for a presigned upload URL, PUTs the file to it, then posts the import naming the upload, its
sha256 and the dataset version to evaluate it on; the import starts its lifecycle run. With
--wait, follows the run until it registers a version (or fails, with the reasons).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import time
from pathlib import Path
from typing import Any

from stepwise.target import ApiReply, Target

DATASET_VERSION = re.compile(r"^(?P<name>[a-z][a-z0-9-]{0,62})@(?P<version>[1-9][0-9]*)$")


def register(sub: Any) -> None:
    imp = sub.add_parser("import", help="import an ONNX model trained elsewhere; it is verified, gated and registered")
    imp.add_argument("model")
    imp.add_argument("--onnx", type=Path, required=True, help="the ONNX file")
    imp.add_argument("--dataset", required=True, help="NAME@VERSION: the dataset version to evaluate it on")
    imp.add_argument("--task", choices=["classification", "regression"], required=True)
    imp.add_argument("--target", help="the target column (default: the contract's target)")
    imp.add_argument("--source-url", help="where the model's code lives (http(s) URL)")
    imp.add_argument("--source-commit", help="the commit it was trained at (hex)")
    imp.add_argument("--description", default="")
    imp.add_argument("--wait", action="store_true", help="follow the lifecycle run until it ends")
    imp.add_argument("--timeout", type=float, default=900.0, help="seconds to wait with --wait")
    imp.set_defaults(func=run_import)


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


def run_import(args: argparse.Namespace, target_factory: Any) -> int:
    from stepwise.client import ImportResult, Stepwise, StepwiseError

    match = DATASET_VERSION.match(args.dataset)
    if match is None:
        print(f"error: --dataset: {args.dataset!r} is not NAME@VERSION (e.g. wine@3)")
        return 2
    try:
        content = args.onnx.read_bytes()
    except OSError as exc:
        print(f"error: --onnx: cannot read {args.onnx}: {exc}")
        return 2
    client = Stepwise(target=target_factory())
    try:
        result: ImportResult = client.import_model(
            args.model,
            content,
            dataset=args.dataset,
            task=args.task,
            target=args.target,
            source_url=args.source_url,
            source_commit=args.source_commit,
            description=args.description,
        )
        print(f"import {result.import_id} of {args.model} accepted; lifecycle run {result.execution_name}")
        if not args.wait:
            return 0
        result = client.wait(result, args.timeout)
    except StepwiseError as exc:
        print(f"error: {exc}")
        return 1
    print(f"run {result.execution_name}: version {result.version} registered, waiting for approval")
    return 0
