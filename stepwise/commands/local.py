"""`stepwise local up`: deploy the synthesized template into moto and serve it until Ctrl-C.
`stepwise local fire [RULE]`: fire scheduled rules (moto's EventBridge does not)."""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
from typing import Any

from stepwise.commands.status import render_status
from stepwise.local.session import DIFFERENCES, LocalSession


def register(sub: Any) -> None:
    local = sub.add_parser("local", help="the local cloud, deployed from the synthesized template")
    local_sub = local.add_subparsers(dest="local_command", required=True, metavar="ACTION")
    up = local_sub.add_parser("up", help="deploy locally and serve the API until Ctrl-C")
    up.add_argument("--port", type=int, default=8787, help="API port; moto's endpoint listens on port+1")
    up.add_argument("--strict-auth", action="store_true", help="refuse unsigned requests, as AWS does")
    up.add_argument(
        "--persona",
        action="append",
        default=[],
        metavar="NAME=PERSONA",
        help="with --strict-auth, hold the caller NAME (--as NAME) to a persona's policy, e.g. bob=Approver",
    )
    up.set_defaults(func=run_up)
    fire = local_sub.add_parser("fire", help="fire scheduled EventBridge rules now")
    fire.add_argument("rule", nargs="?", default="", help="part of the rule's logical id (default: all)")
    fire.set_defaults(func=run_fire)


def describe_session(session: LocalSession) -> str:
    deployment = session.cloud.deployment
    assert deployment is not None and session.api is not None
    lines = [f"API: {session.api.url}", f"Console: {session.api.console_url}"]
    if session.api.info.get("aws_endpoint"):
        lines.append(f"AWS endpoint (moto): {session.api.info['aws_endpoint']}")
    lines.append(f"functions routed to their handlers: {len(session.cloud.router.functions)}")
    if deployment.emulated:
        lines.append("emulated from the template's own properties:")
        lines += [f"  {e.logical_id} ({e.resource_type}): {e.how}" for e in deployment.emulated]
    if deployment.skipped:
        lines.append("skipped (moto's CloudFormation does not create them):")
        lines += [f"  {e.logical_id} ({e.resource_type})" for e in deployment.skipped]
    lines.append("differences from AWS:")
    lines += [f"  - {d}" for d in DIFFERENCES]
    return "\n".join(lines)


def serve_forever(session: LocalSession) -> int:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("\nstopping the local cloud")
    finally:
        session.stop()
    return 0


def run_up(args: argparse.Namespace, target_factory: Any) -> int:
    print("synthesizing the CDK app and deploying its template into moto ...", flush=True)
    personas = dict(p.split("=", 1) for p in args.persona if "=" in p)
    if len(personas) != len(args.persona):
        raise SystemExit(f"--persona takes NAME=PERSONA, got {args.persona}")
    session = LocalSession(port=args.port, aws_port=args.port + 1, strict_auth=args.strict_auth, personas=personas)
    target = session.start()
    text, _ = render_status(target)
    print(text)
    print()
    print(describe_session(session))
    print(
        f"\nother commands find this cloud with --endpoint {session.api.url if session.api else ''} "
        "or STEPWISE_ENDPOINT; Ctrl-C stops it.",
        flush=True,
    )
    return serve_forever(session)


def run_fire(args: argparse.Namespace, target_factory: Any) -> int:
    target = target_factory()
    request = urllib.request.Request(
        target.api_url.rstrip("/") + f"/_local/fire?rule={args.rule}", method="POST", data=b""
    )
    with urllib.request.urlopen(request, timeout=300) as resp:
        fired = json.loads(resp.read())["fired"]
    print("\n".join(fired) if fired else "no scheduled rule matched")
    return 0
