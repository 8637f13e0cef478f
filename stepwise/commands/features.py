"""Feature view commands (over the HTTPS API).

stepwise feature-view put FILE [--name NAME]     store FILE (JSON) as the next version of its view
stepwise feature-view show NAME [--version N]    one version (the latest by default), as JSON
stepwise feature-views                           the latest version of every view, with its online
                                                 freshness (newest event time materialized, its age,
                                                 the last materialization: status, when, rows/entities)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from functions.models.features import FeatureView
from functions.models.materialize import Materialization, OnlineFreshness
from stepwise.output import table
from stepwise.target import ApiReply, add_page_arguments, get_pages


def register(sub: Any) -> None:
    view = sub.add_parser("feature-view", help="feature views: put a new version, show one")
    vsub = view.add_subparsers(dest="feature_view_command", required=True, metavar="ACTION")
    put = vsub.add_parser("put", help="store FILE (JSON) as the next version of its feature view")
    put.add_argument("file", type=Path)
    put.add_argument("--name", help="the view's name (default: the file's `name`)")
    put.set_defaults(func=run_put)
    show = vsub.add_parser("show", help="show a feature view (latest, or --version N)")
    show.add_argument("name")
    show.add_argument("--version", type=int)
    show.set_defaults(func=run_show)
    views = sub.add_parser("feature-views", help="the latest version of every feature view")
    add_page_arguments(views, "views")
    views.set_defaults(func=run_list)


def _failed(reply: ApiReply) -> int:
    body = reply.body if isinstance(reply.body, dict) else {"message": reply.body}
    print(f"error: HTTP {reply.status} {body.get('error', '')}: {body.get('message', '')}")
    for detail in body.get("details") or []:
        if isinstance(detail, dict):
            print(f"  {detail.get('field')}: {detail.get('reason')}")
    return 1


def run_put(args: argparse.Namespace, target_factory: Any) -> int:
    try:
        data = json.loads(args.file.read_text())
    except (OSError, ValueError, RecursionError) as exc:
        print(f"error: cannot read {args.file}: {exc}")
        return 2
    if not isinstance(data, dict):
        print(f"error: {args.file} does not hold a JSON object")
        return 2
    name = args.name or data.get("name")
    if not name:
        print("error: the feature view has no name; give --name")
        return 2
    try:
        FeatureView.model_validate({**data, "name": name})  # refuse locally first, with the field
    except ValidationError as exc:
        for err in exc.errors():
            print(f"error: {'.'.join(map(str, err['loc'])) or 'feature view'}: {err['msg']}")
        return 2
    reply = target_factory().api("PUT", f"/v1/feature-views/{name}", {**data, "name": name})
    if not reply.ok:
        return _failed(reply)
    body = reply.body
    print(f"feature view {body['name']} version {body['version']} stored (source {body['view']['source']})")
    return 0


def run_show(args: argparse.Namespace, target_factory: Any) -> int:
    query = f"?version={args.version}" if args.version else ""
    reply = target_factory().api("GET", f"/v1/feature-views/{args.name}{query}")
    if not reply.ok:
        return _failed(reply)
    print(json.dumps(reply.body, indent=2))
    return 0


def _age(seconds: float | None) -> str:
    if seconds is None:
        return ""
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def render_views(body: dict[str, Any], online: dict[str, OnlineFreshness] | None = None) -> str:
    online = online or {}
    rows = []
    for v in body["views"]:
        fresh = online.get(v["name"])
        last = ""
        if fresh is not None and fresh.last_status is not None:
            when = fresh.last_finished_at.isoformat(timespec="seconds") if fresh.last_finished_at else "running"
            last = f"{fresh.last_status.value} {when} ({fresh.rows_read} rows/{fresh.entities_written} entities)"
        rows.append(
            (
                v["name"],
                v["version"],
                v["view"]["source"],
                ", ".join(v["view"]["entity_keys"]),
                v["view"]["timestamp_column"],
                v["view"]["ttl_seconds"],
                len(v["view"]["features"]),
                fresh.newest_event_time.isoformat(timespec="seconds") if fresh and fresh.newest_event_time else "",
                _age(fresh.age_seconds if fresh else None),
                last or "never materialized",
            )
        )
    headers = ["view", "version", "source", "entity keys", "timestamp", "ttl (s)", "features"]
    return table(rows, [*headers, "online newest", "age", "last materialization"])


def online_freshness(target: Any, names: list[str]) -> dict[str, OnlineFreshness]:
    """Each view's freshness from its materializations (a view whose runs cannot be read is left out)."""
    out = {}
    for name in names:
        reply = target.api("GET", f"/v1/feature-views/{name}/materializations")
        if reply.ok:
            runs = [Materialization.model_validate(r) for r in reply.body["materializations"]]
            out[name] = OnlineFreshness.of(name, runs)
    return out


def run_list(args: argparse.Namespace, target_factory: Any) -> int:
    target = target_factory()
    reply, views, token = get_pages(target, "/v1/feature-views", "views", {}, limit=args.limit, every=args.all)
    if not reply.ok:
        return _failed(reply)
    online = online_freshness(target, [v["name"] for v in views])
    print(render_views({"views": views}, online) if views else "no feature views")
    if token:
        print(f"(more views: stepwise feature-views --all, or GET /v1/feature-views?next_token={token})")
    return 0
