"""Materialization commands (over the HTTPS API).

stepwise materialize VIEW [--version N] [--client-token T] [--wait] [--timeout S] [--json]
    materialize the latest version of view VIEW from version N of its source dataset (default: its
    latest validated version) into the online store; with --wait follow the run (chunks done /
    total) until it ends. Exit 0 when accepted (with --wait: succeeded), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from stepwise.commands.features import _failed
from stepwise.output import follow_until_done
from stepwise.target import Target


def register(sub: Any) -> None:
    run = sub.add_parser("materialize", help="write a feature view's latest rows into the online store")
    run.add_argument("view", help="the feature view")
    run.add_argument("--version", type=int, help="the source dataset version (default: its latest validated)")
    run.add_argument("--client-token", help="a repeated request with the same token is the same run")
    run.add_argument("--wait", action="store_true", help="follow the run until it ends")
    run.add_argument("--timeout", type=float, default=3600.0, help="with --wait: seconds to wait")
    run.add_argument("--json", action="store_true", help="print the run record as JSON")
    run.set_defaults(func=run_materialize)


def progress(run: dict[str, Any]) -> str:
    return (
        f"{run['status']}: chunks {run['chunks_done']}/{run['chunks_total'] or '?'}, rows read {run['rows_read']}, "
        f"entities written {run['entities_written']}, skipped as older {run['skipped_older']}"
    )


def render_run(run: dict[str, Any]) -> str:
    lines = [
        f"materialization {run['materialization_id']} of {run['view']} v{run['view_version']} "
        f"from {run['source']}@{run['source_version']}"
        + (" (joined: the first request's run)" if run["joined"] else ""),
        f"  {progress(run)}",
    ]
    if run.get("newest_event_time"):
        lines.append(f"  newest event time {run['newest_event_time']}")
    if run.get("error"):
        lines.append(f"  error   {run['error']}: {run['message']}")
    return "\n".join(lines)


def follow(target: Target, run: dict[str, Any], *, timeout: float, poll: float = 2.0) -> dict[str, Any]:
    """Read the run until it ends (or `timeout` seconds pass), printing its progress when it changes."""
    path = f"/v1/feature-views/{run['view']}/materializations/{run['materialization_id']}"
    return follow_until_done(target, path, run, progress=progress, timeout=timeout, poll=poll, keep=("joined",))


def run_materialize(args: argparse.Namespace, target_factory: Any) -> int:
    if args.version is not None and args.version < 1:
        print("error: --version must be 1 or more")
        return 2
    body: dict[str, Any] = {}
    if args.version is not None:
        body["version"] = args.version
    if args.client_token:
        body["client_token"] = args.client_token
    target = target_factory()
    reply = target.api("POST", f"/v1/feature-views/{args.view}/materialize", body)
    if not reply.ok:
        return _failed(reply)
    run = dict(reply.body)
    if args.wait:
        run = follow(target, run, timeout=args.timeout)
    print(json.dumps(run, indent=2) if args.json else render_run(run))
    if args.wait:
        return 0 if run["status"] == "SUCCEEDED" else 1
    return 0 if run["status"] != "FAILED" else 1
