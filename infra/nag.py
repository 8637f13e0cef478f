"""cdk-nag acknowledgments: every one names the rule and a reason."""

from __future__ import annotations

import aws_cdk as cdk
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    if not reason.strip():
        raise ValueError(f"acknowledging {rule} needs a reason")
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=rule, reason=reason))
