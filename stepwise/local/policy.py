"""A small IAM policy evaluator for the persona policies (infra/constructs/personas.py): the local
cloud's `--strict-auth` refuses a persona's call its policy does not allow (stepwise/local/server.py),
and tests/infra/test_personas.py evaluates every persona against every route with it.

It models Allow and Deny statements (an explicit Deny wins, nothing allowed is an implicit deny),
Action/NotAction and Resource/NotResource with IAM's `*` and `?` wildcards (actions
case-insensitive, resources case-sensitive; `*` crosses `/` as IAM's does). It does not model
conditions (it refuses a statement that has one, so a condition cannot pass unevaluated), policy
variables, permission boundaries, SCPs, session policies, resource policies or the other policies a
role may carry. Template values resolve to this account's pseudo parameters, a Ref to `<LogicalId>`
and a GetAtt X.Arn to `arn-of:<X>`, the way requests are named here.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from infra import constants as c

ACCOUNT, REGION = "123456789012", "us-east-1"


class NotModeled(Exception):
    """The policy uses something this evaluator does not evaluate."""


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def resolve(value: Any) -> str:
    """A template value as a string: pseudo parameters as this test's account, a Ref as `<LogicalId>`,
    a GetAtt X.Arn as `arn-of:<X>` (what the request side builds the same way)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return str(sep).join(resolve(p) for p in parts)
    if isinstance(value, dict) and "Ref" in value:
        return {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT}.get(
            value["Ref"], f"<{value['Ref']}>"
        )
    if isinstance(value, dict) and "Fn::GetAtt" in value and value["Fn::GetAtt"][1] == "Arn":
        return f"arn-of:<{value['Fn::GetAtt'][0]}>"
    raise NotModeled(f"cannot resolve {value}")


@cache
def _pattern(glob: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in glob)
    return re.compile(f"^{body}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _matches(patterns: list[Any], value: str, *, ignore_case: bool) -> bool:
    return any(_pattern(resolve(p), ignore_case).match(value) for p in patterns)


def _applies(statement: dict[str, Any], action: str, resource: str) -> bool:
    if "Condition" in statement:
        raise NotModeled(f"conditions are not evaluated: {statement['Condition']}")
    if "Action" in statement:
        action_ok = _matches(as_list(statement["Action"]), action, ignore_case=True)
    else:
        action_ok = not _matches(as_list(statement["NotAction"]), action, ignore_case=True)
    if "Resource" in statement:
        resource_ok = _matches(as_list(statement["Resource"]), resource, ignore_case=False)
    else:
        resource_ok = not _matches(as_list(statement["NotResource"]), resource, ignore_case=False)
    return action_ok and resource_ok


def allowed(statements: list[dict[str, Any]], action: str, resource: str) -> bool:
    """IAM's identity-policy decision: an explicit Deny wins, else any Allow, else deny."""
    applying = [s for s in statements if _applies(s, action, resource)]
    if any(s["Effect"] == "Deny" for s in applying):
        return False
    return any(s["Effect"] == "Allow" for s in applying)


def persona_statements(template: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Persona name -> its managed policy's statements (found through the stack's outputs)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, output in template.get("Outputs", {}).items():
        if name.startswith(c.OUT_PERSONA_POLICY_PREFIX):
            policy = template["Resources"][output["Value"]["Ref"]]
            out[name.removeprefix(c.OUT_PERSONA_POLICY_PREFIX)] = as_list(
                policy["Properties"]["PolicyDocument"]["Statement"]
            )
    return out


def invoke_arn(api_logical_id: str, method: str, path: str) -> str:
    """The execute-api ARN of a request (`path` with its values, not its parameters)."""
    return f"arn:aws:execute-api:{REGION}:{ACCOUNT}:<{api_logical_id}>/{c.API_STAGE}/{method}{path}"
