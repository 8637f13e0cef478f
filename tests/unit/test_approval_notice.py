"""The approval request's notification (functions/logic/approval_notice.py): readable text with a
link to the console's approval page and to the execution in the AWS console of its own region, and
the JSON for machines."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from functions.logic.approval_notice import approval_notice, execution_url
from functions.models.approvals import ApprovalRequest, ProductionComparison
from functions.models.registry import GateVerdict

EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:Lifecycle:churn-run-7"
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def request(execution: str = EXECUTION) -> ApprovalRequest:
    return ApprovalRequest(
        id="churn-12",
        model="churn",
        version=12,
        metrics={"auc": 0.91},
        gates=[GateVerdict(gate="auc_min", passed=True, value=0.91, threshold=0.8)],
        comparison=ProductionComparison(production_version=11, production_metrics={"auc": 0.89}, primary_metric="auc"),
        started_by="cognito:eu-west-1_AbCdEf123/ana",
        execution=execution,
        requested_at=NOW,
        expires_at=NOW + timedelta(days=7),
    )


def test_approval_notice_text_links_the_console_page_and_the_execution() -> None:
    notice = approval_notice(request(), console_url="https://d111.cloudfront.net")
    assert "Decide in the console: https://d111.cloudfront.net/#/approvals/churn-12" in notice.text
    assert (
        "https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1"
        f"#/v2/executions/details/{EXECUTION}" in notice.text
    )
    assert "auc = 0.91 (production v11: 0.89)" in notice.text and "PASS auc_min" in notice.text
    assert 'stepwise approve churn 12 --reason "..."' in notice.text
    assert not notice.text.lstrip().startswith("{")  # people read text, not JSON


def test_approval_notice_keeps_the_json_for_machine_protocols() -> None:
    notice = approval_notice(request(), console_url="https://d111.cloudfront.net/")
    structure = json.loads(notice.message_structure())
    assert structure["default"] == structure["email"] == notice.text
    for protocol in ("sqs", "lambda", "http", "https"):
        data = json.loads(structure[protocol])
        assert (data["model"], data["version"], data["metrics"]) == ("churn", 12, {"auc": 0.91})
        assert data["console_url"] == "https://d111.cloudfront.net/#/approvals/churn-12"
        assert data["execution_url"].startswith("https://eu-west-1.console.aws.amazon.com/")


def test_approval_notice_without_console_has_no_console_link() -> None:
    notice = approval_notice(request())
    assert "console:" not in notice.text and notice.data["console_url"] == ""
    assert notice.data["execution_url"]


def test_approval_notice_execution_url_follows_region_and_partition() -> None:
    assert execution_url(EXECUTION.replace("eu-west-1", "ap-southeast-2")).startswith(
        "https://ap-southeast-2.console.aws.amazon.com/states/home?region=ap-southeast-2#"
    )
    china = "arn:aws-cn:states:cn-north-1:123456789012:execution:Lifecycle:x"
    assert execution_url(china).startswith("https://cn-north-1.console.amazonaws.cn/states/home?region=cn-north-1#")
    gov = "arn:aws-us-gov:states:us-gov-west-1:123456789012:execution:Lifecycle:x"
    assert execution_url(gov).startswith("https://console.amazonaws-us-gov.com/states/home?region=us-gov-west-1#")
    assert execution_url("e") == "" and execution_url("arn:aws:states:eu-west-1:1:stateMachine:Lifecycle") == ""
