"""Batch scoring from the command line:

    stepwise score MODEL --dataset NAME@V | --input s3://... [--version N] [--passthrough COL ...]
                   [--client-token T] [--capture] [--wait]
    stepwise jobs MODEL

`score` asks the stack for a batch job (POST /v1/models/{name}/batch) and prints its id, the version
and artifact it scores with and where its output goes; with --wait it follows the job (chunks done /
total, rows/s) until it ends and prints the manifest's location. Exit 0 when the job was accepted
(with --wait: succeeded), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from stepwise.output import follow_until_done, table
from stepwise.target import ApiReply, Target


def register(sub: Any) -> None:
    score = sub.add_parser("score", help="score a dataset version or an S3 object with a model (a batch job)")
    score.add_argument("model")
    given = score.add_mutually_exclusive_group(required=True)
    given.add_argument("--dataset", help="a validated dataset version, NAME@VERSION")
    given.add_argument("--input", help="an object in the data bucket, s3://BUCKET/KEY (Parquet, CSV, JSON Lines)")
    score.add_argument("--version", type=int, help="the model version (default: production)")
    score.add_argument("--passthrough", nargs="*", default=[], help="input columns copied to the output")
    score.add_argument("--reject-threshold", type=float, help="the share of rejected rows that fails the job")
    score.add_argument("--client-token", help="a repeated request with the same token is the same job")
    score.add_argument("--capture", action="store_true", help="send a sample of the scored rows to monitoring")
    score.add_argument("--wait", action="store_true", help="follow the job until it ends")
    score.add_argument("--timeout", type=float, default=3600.0, help="with --wait: seconds to wait")
    score.add_argument("--json", action="store_true")
    score.set_defaults(func=run_score)

    jobs = sub.add_parser("jobs", help="a model's batch jobs, newest first")
    jobs.add_argument("model")
    jobs.add_argument("--json", action="store_true")
    jobs.set_defaults(func=run_jobs)


def request_body(args: argparse.Namespace) -> dict[str, Any]:
    if args.dataset:
        name, sep, version = args.dataset.rpartition("@")
        if not sep or not name or not version.isdigit():
            raise ValueError(f"--dataset takes NAME@VERSION, not {args.dataset!r}")
        source: dict[str, Any] = {"dataset": name, "version": int(version)}
    else:
        source = {"uri": args.input}
    body: dict[str, Any] = {"input": source, "passthrough": list(args.passthrough)}
    if args.version is not None:
        body["model_version"] = args.version
    if args.reject_threshold is not None:
        body["reject_threshold"] = args.reject_threshold
    if args.client_token:
        body["client_token"] = args.client_token
    if args.capture:
        body["capture"] = True
    return body


def _failed(reply: ApiReply) -> int:
    body = reply.body if isinstance(reply.body, dict) else {"message": reply.body}
    print(f"error: HTTP {reply.status} {body.get('error', '')}: {body.get('message', '')}")
    return 1


def _seconds(job: dict[str, Any]) -> float | None:
    if not job.get("started_at"):
        return None
    start = datetime.fromisoformat(job["started_at"])
    end = datetime.fromisoformat(job["finished_at"]) if job.get("finished_at") else None
    return ((end or datetime.now(start.tzinfo)) - start).total_seconds()


def progress(job: dict[str, Any]) -> str:
    """One line: status, chunks done / total, rows and rows/s."""
    seconds = _seconds(job)
    rate = f", {job['rows'] / seconds:,.0f} rows/s" if seconds and job.get("rows") else ""
    return (
        f"{job['status']}: chunks {job['chunks_done']}/{job['chunks_total'] or '?'}, "
        f"{job['rows']:,} rows ({job['rejected']:,} rejected){rate}"
    )


def render_job(job: dict[str, Any]) -> str:
    lines = [
        f"job {job['job_id']}{' (joined)' if job.get('joined') else ''}: {job['model']} v{job['version']} "
        f"(artifact sha256 {job['artifact_sha256'][:12]}...)",
        f"  input   s3://{job['input']['bucket']}/{job['input']['key']} (version {job['input']['version_id']})",
        f"  output  {job['output_prefix']}",
        f"  {progress(job)}",
    ]
    if job["status"] == "SUCCEEDED":
        lines.append(f"  manifest {job['output_prefix']}_manifest.json")
    if job.get("error"):
        lines.append(f"  error   {job['error']}: {job['message']}")
    return "\n".join(lines)


def follow(target: Target, job: dict[str, Any], *, timeout: float, poll: float = 2.0) -> dict[str, Any]:
    """Read the job until it ends (or `timeout` seconds pass), printing its progress when it changes."""
    path = f"/v1/models/{job['model']}/batch/{job['job_id']}"
    return follow_until_done(target, path, job, progress=progress, timeout=timeout, poll=poll)


def run_score(args: argparse.Namespace, target_factory: Any) -> int:
    try:
        body = request_body(args)
    except ValueError as exc:
        print(f"error: {exc}")
        return 2
    target = target_factory()
    reply = target.api("POST", f"/v1/models/{args.model}/batch", body)
    if not reply.ok:
        return _failed(reply)
    job = dict(reply.body)
    if args.wait:
        job = follow(target, job, timeout=args.timeout)
    print(json.dumps(job, indent=2) if args.json else render_job(job))
    if args.wait:
        return 0 if job["status"] == "SUCCEEDED" else 1
    return 0 if job["status"] != "FAILED" else 1


def run_jobs(args: argparse.Namespace, target_factory: Any) -> int:
    reply = target_factory().api("GET", f"/v1/models/{args.model}/batch")
    if not reply.ok:
        return _failed(reply)
    jobs = reply.body["jobs"]
    if args.json:
        print(json.dumps(jobs, indent=2))
        return 0
    rows = [
        (
            j["job_id"],
            j["version"],
            j["status"],
            f"{j['chunks_done']}/{j['chunks_total']}",
            j["rows"],
            j["rejected"],
            j["requested_at"][:19],
            j["requested_by"].rsplit("/", 1)[-1],
        )
        for j in jobs
    ]
    headers = ["job", "version", "status", "chunks", "rows", "rejected", "requested", "by"]
    print(table(rows, headers) if rows else "no jobs")
    return 0
