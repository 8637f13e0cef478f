"""Prediction drift and live data quality in the synthesized template: their alarms notify the
monitoring topic, and the dashboard shows their metrics."""

from __future__ import annotations

import json
from typing import Any

from infra import constants as c


def test_monitoring_output_drift_and_data_quality_alarms_notify_the_topic(resources: dict[str, Any]) -> None:
    alarms = {
        a["Properties"]["MetricName"]: a
        for k, a in resources.items()
        if a["Type"] == "AWS::CloudWatch::Alarm" and k.startswith(c.MONITORING_ID) and "MetricName" in a["Properties"]
    }
    for name in ("OutputDriftedModels", "DataQualityFailures"):
        props = alarms[name]["Properties"]
        assert (props["Namespace"], props["Dimensions"]) == ("Stepwise", [{"Name": "service", "Value": "stepwise"}])
        assert props["Threshold"] == 1 and props["TreatMissingData"] == "notBreaching"
        (action,) = props["AlarmActions"]
        assert action["Ref"].startswith(f"{c.MONITORING_ID}AlarmTopic")


def test_monitoring_dashboard_shows_output_drift_and_data_quality(resources: dict[str, Any]) -> None:
    (dashboard,) = [r for r in resources.values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    assert "OutputDriftedModels" in body and "DataQualityFailures" in body and "DataQualityViolationRate" in body
