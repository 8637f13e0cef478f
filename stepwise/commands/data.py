"""Data commands: contracts, uploads, dataset versions.

    stepwise contract put NAME FILE          store FILE (JSON) as the next contract version of NAME
    stepwise contract show NAME [--version N]
    stepwise upload FILE --dataset NAME      put FILE under raw/NAME/ and wait for the verdict
    stepwise datasets [NAME]                 datasets; or NAME's versions and quarantined uploads

The upload goes straight to the data bucket (any S3 client could do it); the validation Lambda
writes its report to the artifacts bucket at reports/validation/NAME/<S3 version id>.json, which
this command polls.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from pydantic import ValidationError

from functions.models.contracts import DataContract, contract_errors
from functions.models.datasets import report_key
from stepwise.output import table
from stepwise.target import Target

RAW = "raw/"
POLL_SECONDS = 0.5


def register(sub: Any) -> None:
    contract = sub.add_parser("contract", help="data contracts: put a new version, show one")
    csub = contract.add_subparsers(dest="contract_command", required=True, metavar="ACTION")
    put = csub.add_parser("put", help="store FILE (JSON) as the next contract version of NAME")
    put.add_argument("name")
    put.add_argument("file", type=Path)
    put.set_defaults(func=run_contract_put)
    show = csub.add_parser("show", help="show NAME's contract (latest, or --version N)")
    show.add_argument("name")
    show.add_argument("--version", type=int)
    show.set_defaults(func=run_contract_show)

    upload = sub.add_parser("upload", help="upload FILE under raw/<dataset>/ and wait for the verdict")
    upload.add_argument("file", type=Path)
    upload.add_argument("--dataset", required=True)
    upload.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the verdict")
    upload.set_defaults(func=run_upload)

    datasets = sub.add_parser("datasets", help="datasets, or one dataset's versions and quarantined uploads")
    datasets.add_argument("name", nargs="?")
    datasets.set_defaults(func=run_datasets)


# -- contracts ---------------------------------------------------------------------------------------


def read_contract(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"cannot read contract {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise SystemExit(f"contract {path} must be a JSON object")
    return doc


def contract_problems(doc: dict[str, Any]) -> list[str]:
    """What is wrong with a contract, checked here before it is sent (the API checks it again)."""
    try:
        DataContract.model_validate(doc)
    except ValidationError as exc:
        return [f"{e['field']}: {e['reason']}" for e in contract_errors(exc)]
    return []


def put_contract(target: Target, name: str, doc: dict[str, Any]) -> dict[str, Any]:
    """Store the contract; its record (with the version). SystemExit with the reasons on refusal."""
    problems = contract_problems(doc)
    if problems:
        raise SystemExit("contract refused:\n  " + "\n  ".join(problems))
    reply = target.api("PUT", f"/v1/datasets/{name}/contract", doc)
    if reply.status != 201:
        raise SystemExit(f"contract refused (HTTP {reply.status}): {_error_text(reply.body)}")
    return dict(reply.body)


def run_contract_put(args: argparse.Namespace, target_factory: Any) -> int:
    record = put_contract(target_factory(), args.name, read_contract(args.file))
    print(f"contract {args.name} version {record['version']} stored")
    return 0


def run_contract_show(args: argparse.Namespace, target_factory: Any) -> int:
    path = f"/v1/datasets/{args.name}/contract" + (f"?version={args.version}" if args.version else "")
    reply = target_factory().api("GET", path)
    if reply.status != 200:
        print(f"HTTP {reply.status}: {_error_text(reply.body)}")
        return 1
    body = reply.body
    print(f"contract {args.name} version {body['version']} (by {body['created_by']}, {body['created_at']})")
    print(json.dumps(body["contract"], indent=2))
    return 0


# -- uploads -----------------------------------------------------------------------------------------


@dataclass
class UploadResult:
    key: str
    version_id: str
    report: dict[str, Any]
    version: dict[str, Any] | None  # the dataset version, when the upload passed

    @property
    def passed(self) -> bool:
        return self.report.get("verdict") == "passed"


def upload(target: Target, path: Path, dataset: str, timeout: float = 300.0) -> UploadResult:
    """Put the file under raw/<dataset>/ and wait for its report (and its version, if it passed)."""
    s3 = target.client("s3")
    key = f"{RAW}{dataset}/{path.name}"
    with path.open("rb") as body:  # streamed; one PUT takes up to 5 GB
        reply = s3.put_object(Bucket=target.data_bucket, Key=key, Body=body)
    object_version = reply.get("VersionId") or f"etag-{reply['ETag'].strip(chr(34))}"
    deadline = time.monotonic() + timeout
    report = None
    while report is None:
        try:
            body = s3.get_object(Bucket=target.artifacts_bucket, Key=report_key(dataset, object_version))["Body"]
            report = json.loads(body.read())
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("NoSuchKey", "404"):
                raise
            if time.monotonic() > deadline:
                raise SystemExit(f"no verdict for {key} after {timeout:.0f} s; is validation running?") from None
            time.sleep(POLL_SECONDS)
    version = None
    if report.get("verdict") == "passed":
        while version is None and time.monotonic() <= deadline:
            listing = target.api("GET", f"/v1/datasets/{dataset}/versions")
            if listing.ok:
                matches = [v for v in listing.body["versions"] if v["source_version_id"] == reply.get("VersionId", "")]
                version = matches[0] if matches else None
            if version is None:
                time.sleep(POLL_SECONDS)
    return UploadResult(key=key, version_id=reply.get("VersionId", ""), report=report, version=version)


def render_report(report: dict[str, Any], max_rules: int = 10) -> str:
    lines = [
        f"verdict: {report['verdict']}"
        + (f" ({report['reason']})" if report.get("reason") else "")
        + f"; {report.get('rows', 0)} rows, {report.get('columns', 0)} columns, {report.get('chunks', 0)} chunk(s)"
    ]
    failed = [r for r in report.get("rules", []) if not r["passed"]]
    passed = len(report.get("rules", [])) - len(failed)
    lines.append(f"rules: {passed} passed, {len(failed)} failed")
    for rule in failed[:max_rules]:
        examples = ", ".join(f"row {e['row']}: {e['value']!r}" for e in rule.get("examples", [])[:3])
        detail = rule.get("message") or ""
        lines.append(
            f"  FAIL {rule['rule']}: {rule.get('offending', 0)} offending"
            + (f"; e.g. {examples}" if examples else "")
            + (f" ({detail})" if detail else "")
        )
    if len(failed) > max_rules:
        lines.append(f"  ... and {len(failed) - max_rules} more")
    return "\n".join(lines)


def run_upload(args: argparse.Namespace, target_factory: Any) -> int:
    if not args.file.is_file():
        raise SystemExit(f"no such file: {args.file}")
    result = upload(target_factory(), args.file, args.dataset, args.timeout)
    print(f"uploaded {args.file} -> {result.key} (S3 version {result.version_id or '-'})")
    print(render_report(result.report))
    if result.version is not None:
        v = result.version
        print(f"registered {args.dataset}@{v['version']}: {v['rows']} rows, sha256 {v['sha256'][:16]}")
        if v.get("training_status") not in (None, "none"):
            print(f"training ({v.get('training_spec')}): {v['training_status']} {v.get('training_reason', '')}")
    elif not result.passed:
        print(f"quarantined under quarantine/{args.dataset}/ with the report beside it")
    return 0 if result.passed else 1


# -- listing -----------------------------------------------------------------------------------------


def run_datasets(args: argparse.Namespace, target_factory: Any) -> int:
    target = target_factory()
    if not args.name:
        found: list[dict[str, Any]] = []
        token = None
        while True:  # every page
            reply = target.api("GET", "/v1/datasets" + (f"?next_token={token}" if token else ""))
            if not reply.ok:
                print(f"HTTP {reply.status}: {_error_text(reply.body)}")
                return 1
            found += reply.body["datasets"]
            token = reply.body.get("next_token")
            if not token:
                break
        summary = [(d["dataset"], d["latest_contract_version"], d["latest_version"], d["updated_at"]) for d in found]
        print(table(summary, ["dataset", "contract", "versions", "updated"]) if summary else "no datasets")
        return 0
    reply = target.api("GET", f"/v1/datasets/{args.name}/versions")
    if not reply.ok:
        print(f"HTTP {reply.status}: {_error_text(reply.body)}")
        return 1
    rows: list[tuple[Any, ...]] = [
        (
            f"{args.name}@{v['version']}",
            "passed",
            v["rows"],
            v["contract_version"],
            v["created_at"],
            v["sha256"][:12],
            v["training_status"],
            v["source_key"],
        )
        for v in reply.body["versions"]
    ]
    rows += [("-", "quarantined", "", "", when, "", "", key) for key, when in quarantined(target, args.name)]
    headers = ["version", "verdict", "rows", "contract", "created", "sha256", "training", "upload"]
    print(table(rows, headers) if rows else f"{args.name}: no versions and no quarantined uploads")
    return 0


def quarantined(target: Target, dataset: str, limit: int = 50) -> list[tuple[str, str]]:
    """(quarantined key, time) of the dataset's quarantined uploads, newest first."""
    s3 = target.client("s3")
    found: list[tuple[str, str]] = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=target.data_bucket, Prefix=f"quarantine/{dataset}/"):
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith(".report.json"):
                found.append((obj["Key"], obj["LastModified"].isoformat()))
    return sorted(found, key=lambda kv: kv[1], reverse=True)[:limit]


def _error_text(body: Any) -> str:
    if isinstance(body, dict):
        details = body.get("details")
        text = f"{body.get('error', '')}: {body.get('message', '')}"
        if isinstance(details, list):
            text += "".join(f"\n  {d.get('field')}: {d.get('reason')}" for d in details if isinstance(d, dict))
        return text
    return str(body)
