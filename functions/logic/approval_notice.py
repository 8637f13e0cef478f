"""The approval request's notification: readable text for people (e-mail, SMS, the default) with a
link to the request's page in the console and to the waiting Step Functions execution in the AWS
console (the execution's own region and partition), and the request as JSON for machines (SQS,
Lambda, HTTP(S) and Firehose subscribers receive the JSON form; SNS's per-protocol
MessageStructure `json`).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict

from functions.models.approvals import ApprovalRequest

CONSOLE_APPROVAL_ROUTE = "/#/approvals/"  # the console's approval page (infra/constants.py, same value)
_MACHINE_PROTOCOLS = ("sqs", "lambda", "http", "https", "firehose", "application")
# the AWS console's host per partition (the execution ARN names its partition and region)
_CONSOLE_HOSTS = {
    "aws": "https://{region}.console.aws.amazon.com",
    "aws-cn": "https://{region}.console.amazonaws.cn",
    "aws-us-gov": "https://console.amazonaws-us-gov.com",
}


class ApprovalNotice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    subject: str
    text: str  # for people
    data: dict[str, Any]  # for machines

    def message_structure(self) -> str:
        """SNS's `MessageStructure=json` body: the text by default, the JSON for machine protocols."""
        machine = json.dumps(self.data, default=str, indent=2)
        return json.dumps({"default": self.text, "email": self.text, **dict.fromkeys(_MACHINE_PROTOCOLS, machine)})


def execution_url(execution_arn: str) -> str:
    """The AWS console page of a Step Functions execution, in its region ("" for anything else)."""
    parts = execution_arn.split(":")
    if len(parts) < 8 or parts[0] != "arn" or parts[2] != "states" or parts[5] != "execution":
        return ""
    partition, region = parts[1], parts[3]
    host = _CONSOLE_HOSTS.get(partition)
    if not host or not region:
        return ""
    return (
        f"{host.format(region=region)}/states/home?region={region}"
        f"#/v2/executions/details/{quote(execution_arn, safe=':')}"
    )


def approval_url(console_url: str, approval_id: str) -> str:
    """The request's page in the console ("" when the console is not deployed)."""
    return f"{console_url.rstrip('/')}{CONSOLE_APPROVAL_ROUTE}{quote(approval_id, safe='')}" if console_url else ""


def _metrics(request: ApprovalRequest) -> list[str]:
    comparison = request.comparison
    lines = []
    for name, value in sorted(request.metrics.items()):
        line = f"  {name} = {value:.6g}"
        if name in comparison.production_metrics and comparison.production_version is not None:
            line += f" (production v{comparison.production_version}: {comparison.production_metrics[name]:.6g})"
        lines.append(line)
    return lines or ["  (none recorded)"]


def _gates(request: ApprovalRequest) -> list[str]:
    lines = []
    for gate in request.gates:
        detail = f" {gate.value:.6g} vs {gate.threshold:.6g}" if gate.value is not None and gate.threshold else ""
        lines.append(
            f"  {'PASS' if gate.passed else 'FAIL'} {gate.gate}{detail}{f': {gate.reason}' if gate.reason else ''}"
        )
    return lines or ["  (no gates)"]


def approval_notice(request: ApprovalRequest, *, console_url: str = "") -> ApprovalNotice:
    page, execution = approval_url(console_url, request.id), execution_url(request.execution)
    links = [f"Decide in the console: {page}"] if page else []
    links += [f"Workflow execution:    {execution}"] if execution else []
    text = "\n".join(
        [
            f"{request.model} version {request.version} waits for an approval.",
            "",
            f"Model:       {request.model}",
            f"Version:     {request.version}",
            f"Started by:  {request.started_by or 'unknown'}",
            f"Requested:   {request.requested_at.isoformat()}",
            f"Expires:     {request.expires_at.isoformat()}",
            "Metrics:",
            *_metrics(request),
            "Gates:",
            *_gates(request),
            "",
            *links,
            *([""] if links else []),
            "Or with the CLI:",
            f'  stepwise approve {request.model} {request.version} --reason "..."',
            f'  stepwise reject {request.model} {request.version} --reason "..."',
        ]
    )
    data = {
        **request.model_dump(mode="json"),
        "approve": f"stepwise approve {request.model} {request.version} --reason ...",
        "reject": f"stepwise reject {request.model} {request.version} --reason ...",
        "console_url": page,
        "execution_url": execution,
    }
    return ApprovalNotice(subject=f"Stepwise: approve {request.model} version {request.version}?", text=text, data=data)
