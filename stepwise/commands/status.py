"""`stepwise status`: the stack's resources and health (local cloud or a deployed stack)."""

from __future__ import annotations

import argparse
from typing import Any

from stepwise.output import table
from stepwise.target import Target


def register(sub: Any) -> None:
    parser = sub.add_parser("status", help="the stack's resources, outputs and health")
    parser.set_defaults(func=run)


def stack_resources(target: Target) -> list[dict[str, str]]:
    cfn = target.client("cloudformation")
    resources = cfn.describe_stack_resources(StackName=target.stack)["StackResources"]
    return [r for r in resources if "LogicalResourceId" in r]


def render_status(target: Target) -> tuple[str, bool]:
    resources = stack_resources(target)
    lines = [f"stack {target.stack} ({'local cloud' if target.local else target.region})", ""]
    lines.append(
        table(
            [(r["LogicalResourceId"], r["ResourceType"], r["ResourceStatus"]) for r in resources],
            ["resource", "type", "status"],
        )
    )
    lines += ["", table(sorted(target.outputs.items()), ["output", "value"]), ""]
    health = target.api("GET", "/v1/health")
    healthy = health.status == 200
    lines.append(f"health: HTTP {health.status}")
    if isinstance(health.body, dict):
        lines.append(f"  version {health.body.get('version')}, status {health.body.get('status')}")
        for store in health.body.get("stores", []):
            lines.append(
                f"  {store['name']:<10} {store['kind']:<9} {'ok' if store['ok'] else 'FAILING'} ({store['detail']})"
            )
    return "\n".join(lines), healthy


def run(args: argparse.Namespace, target_factory: Any) -> int:
    text, healthy = render_status(target_factory())
    print(text)
    return 0 if healthy else 1
