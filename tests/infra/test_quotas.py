"""Deploy-readiness: every stack of the synthesized app stays under 80% of the CloudFormation,
IAM and Lambda quotas that would refuse a deploy, so growth shows up here before AWS refuses it.

Quotas (AWS documentation, fixed, not adjustable): 500 resources, 200 outputs and 200 parameters per
stack; a template of at most 1 MB (uploaded through S3); inline policies of one role at most 10,240
characters together (whitespace excluded); a function's environment variables at most 4 KB.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stepwise.local.assembly import Assembly

MARGIN = 0.8
MAX_RESOURCES = 500
MAX_OUTPUTS = 200
MAX_PARAMETERS = 200
MAX_TEMPLATE_BYTES = 1_000_000
MAX_ROLE_INLINE_POLICY_CHARS = 10_240
MAX_FUNCTION_ENV_BYTES = 4 * 1024


def stack_templates(outdir: Path) -> dict[str, dict[str, Any]]:
    """Every CloudFormation stack of the cloud assembly -> its template (nested assemblies included)."""
    manifest = json.loads((outdir / "manifest.json").read_text())
    stacks: dict[str, dict[str, Any]] = {}
    for name, artifact in manifest["artifacts"].items():
        if artifact["type"] == "aws:cloudformation:stack":
            stacks[name] = json.loads((outdir / artifact["properties"]["templateFile"]).read_text())
        elif artifact["type"] == "cdk:cloud-assembly":
            stacks.update(stack_templates(outdir / artifact["properties"]["directoryName"]))
    return stacks


@pytest.fixture(scope="module")
def stacks(assembly: Assembly) -> dict[str, dict[str, Any]]:
    found = stack_templates(assembly.outdir)
    assert assembly.stack_name in found, f"the app's stack is not in the assembly's manifest: {sorted(found)}"
    return found


def _under(value: int, quota: int, what: str) -> None:
    assert value <= quota * MARGIN, f"{what}: {value} of AWS's {quota} (over {MARGIN:.0%}: split the stack)"


def test_quotas_every_stack_counts_under_80_percent(stacks: dict[str, dict[str, Any]]) -> None:
    for name, template in stacks.items():
        _under(len(template.get("Resources", {})), MAX_RESOURCES, f"{name} resources")
        _under(len(template.get("Outputs", {})), MAX_OUTPUTS, f"{name} outputs")
        _under(len(template.get("Parameters", {})), MAX_PARAMETERS, f"{name} parameters")


def test_quotas_every_template_under_80_percent_of_1_mb(stacks: dict[str, dict[str, Any]]) -> None:
    for name, template in stacks.items():
        _under(len(json.dumps(template, separators=(",", ":")).encode()), MAX_TEMPLATE_BYTES, f"{name} template bytes")


def _role_ids(ref: Any) -> list[str]:
    return [r["Ref"] for r in ref if isinstance(r, dict) and "Ref" in r] if isinstance(ref, list) else []


def test_quotas_every_roles_inline_policies_under_80_percent(stacks: dict[str, dict[str, Any]]) -> None:
    roles = 0
    for name, template in stacks.items():
        resources = template.get("Resources", {})
        per_role: dict[str, int] = {}
        for lid, resource in resources.items():
            props = resource.get("Properties", {})
            if resource["Type"] == "AWS::IAM::Role":
                for policy in props.get("Policies", []):
                    size = len(json.dumps(policy["PolicyDocument"], separators=(",", ":")))
                    per_role[lid] = per_role.get(lid, 0) + size
            elif resource["Type"] == "AWS::IAM::Policy":
                size = len(json.dumps(props["PolicyDocument"], separators=(",", ":")))
                for role in _role_ids(props.get("Roles")):
                    per_role[role] = per_role.get(role, 0) + size
        roles += len(per_role)
        for role, size in per_role.items():
            # Unresolved intrinsics (Fn::Join, Fn::GetAtt) are counted as their JSON: longer than the
            # ARNs they resolve to for these templates, so the check errs on the safe side.
            _under(size, MAX_ROLE_INLINE_POLICY_CHARS, f"{name} role {role} inline policy characters")
    assert roles, "no inline role policy found (the reader is broken)"


def test_quotas_every_functions_environment_under_80_percent_of_4_kb(stacks: dict[str, dict[str, Any]]) -> None:
    functions = 0
    for name, template in stacks.items():
        for lid, resource in template.get("Resources", {}).items():
            if resource["Type"] != "AWS::Lambda::Function":
                continue
            functions += 1
            variables = resource["Properties"].get("Environment", {}).get("Variables", {})
            # Lambda counts keys and values; intrinsic values are counted as their JSON (an upper bound
            # for Refs and GetAtts of names within this stack).
            size = sum(len(k) + len(v if isinstance(v, str) else json.dumps(v)) for k, v in variables.items())
            _under(size, MAX_FUNCTION_ENV_BYTES, f"{name} function {lid} environment bytes")
    assert functions, "no Lambda function found (the reader is broken)"
