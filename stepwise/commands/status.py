"""`stepwise status`: the stack's resources and health (local cloud or a deployed stack)."""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

from stepwise.output import table
from stepwise.target import Target

IMPORT = re.compile(r'"Fn::ImportValue":\s*"([^"]+)"')


def register(sub: Any) -> None:
    parser = sub.add_parser("status", help="the stack's resources, outputs and health")
    parser.set_defaults(func=run)


def stack_resources(target: Target) -> list[dict[str, str]]:
    """The resources of the stack and then of each stack it imports from (the stores stack)."""
    cfn = target.client("cloudformation")
    resources = []
    for stack in [target.stack, *_exporting_stacks(cfn, target.stack)]:
        found = cfn.describe_stack_resources(StackName=stack)["StackResources"]
        resources += [r for r in found if "LogicalResourceId" in r]
    return resources


def _exporting_stacks(cfn: Any, stack: str) -> list[str]:
    """The stacks (ids) whose exports `stack`'s template imports (Fn::ImportValue), in export order."""
    body = cfn.get_template(StackName=stack)["TemplateBody"]
    names = set(IMPORT.findall(body if isinstance(body, str) else json.dumps(body)))
    exporting: list[str] = []
    for page in cfn.get_paginator("list_exports").paginate():
        for export in page.get("Exports", []):
            if export["Name"] in names and export["ExportingStackId"] not in exporting:
                exporting.append(export["ExportingStackId"])
    return exporting


def render_status(target: Target) -> tuple[str, bool]:
    resources = stack_resources(target)
    lines = [f"stack {target.stack} ({'local cloud' if target.local else target.region})", ""]
    lines.append(
        table(
            [(r["LogicalResourceId"], r["ResourceType"], r["ResourceStatus"], _name(r)) for r in resources],
            ["resource", "type", "status", "stack"],
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


def _name(resource: dict[str, str]) -> str:
    """The stack's name (a resource's StackName, or the name in its StackId ARN)."""
    name = resource.get("StackName") or resource.get("StackId", "")
    return name.split("/")[1] if name.startswith("arn:") and name.count("/") >= 2 else name


def run(args: argparse.Namespace, target_factory: Any) -> int:
    text, healthy = render_status(target_factory())
    print(text)
    return 0 if healthy else 1
