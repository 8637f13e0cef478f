"""Feature view commands (over the HTTPS API).

stepwise feature-view put FILE [--name NAME]     store FILE (JSON) as the next version of its view
stepwise feature-view show NAME [--version N]    one version (the latest by default), as JSON
stepwise feature-views                           the latest version of every view
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from functions.models.features import FeatureView
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


def render_views(body: dict[str, Any]) -> str:
    rows = [
        (
            v["name"],
            v["version"],
            v["view"]["source"],
            ", ".join(v["view"]["entity_keys"]),
            v["view"]["timestamp_column"],
            v["view"]["ttl_seconds"],
            len(v["view"]["features"]),
        )
        for v in body["views"]
    ]
    return table(rows, ["view", "version", "source", "entity keys", "timestamp", "ttl (s)", "features"])


def run_list(args: argparse.Namespace, target_factory: Any) -> int:
    reply, views, token = get_pages(
        target_factory(), "/v1/feature-views", "views", {}, limit=args.limit, every=args.all
    )
    if not reply.ok:
        return _failed(reply)
    print(render_views({"views": views}) if views else "no feature views")
    if token:
        print(f"(more views: stepwise feature-views --all, or GET /v1/feature-views?next_token={token})")
    return 0
