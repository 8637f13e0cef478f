"""Per-view CloudWatch alarms, made when a feature view's materialization succeeds.

A view that has been materialized has two alarms, named `<STEPWISE_VIEW_ALARM_PREFIX><view>-<kind>`
(the prefix is the stack's; the materialization function's grant allows no other alarm names), each
notifying the alarm topic:

freshness  OnlineFeatureAgeSeconds (Stepwise/Features, dimensions service and view: seconds since the
           newest event time materialized, emitted when a run of the view succeeds) with a Maximum
           above STEPWISE_ONLINE_FRESHNESS_ALARM_SECONDS (the stack's online_freshness_alarm_seconds)
           in every hour of a window as long as that threshold (whole hours, at most 7 days,
           CloudWatch's longest evaluation range). Missing data is breaching: a view whose
           materializations stop (no new source version is validated) reports nothing, and once a
           whole window has passed without a run, its values are at least that old and the alarm
           fires instead of staying silent. A run that reports a fresh age within the window keeps
           it quiet; the stack's one alarm on the oldest view's age (infra/constructs/materialize.py)
           fires on the first stale report.
lookups    LookupMissShare (Stepwise, dimensions service and view: % of the view's lookups in a
           prediction request that were missing or expired, emitted by the inference function) on
           average above STEPWISE_LOOKUP_MISS_ALARM_PERCENT (the stack's lookup_miss_alarm_percent)
           for 3 of 3 five-minute periods; quiet without data (no model looking the view up).

`ensure` puts both definitions after every successful run (PutMetricAlarm creates or replaces, and
leaves an existing alarm's state as it is, so a repeat changes nothing and a changed stack setting
reaches the alarms on the view's next run). Creating them appends an audit event
(`feature_view.alarms`); a run that finds them already there writes none.

A failed put never fails the materialization it follows (its record has committed): it is logged,
counted (`ViewAlarmSyncErrors`, service dimension) and returned as outcome "failed"; the view's
next successful run puts them again.
"""

from __future__ import annotations

import math
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from functions.dal import alarms as alarms_dal
from functions.dal import audit as audit_dal
from functions.logic.materialize_jobs import target
from functions.models.alarms import ViewAlarms
from functions.models.audit import Actor, AuditEvent
from functions.models.errors import StepwiseError
from functions.models.materialize import FRESHNESS_METRIC, METRIC_NAMESPACE
from functions.models.settings import Settings
from functions.observability import NAMESPACE, SERVICE, logger

ACTION = "feature_view.alarms"
KINDS = ("freshness", "lookups")
LOOKUP_MISS_METRIC = "LookupMissShare"  # functions/handlers/predict.py, per model and per view
HOUR = 3600
MAX_WINDOW_HOURS = 7 * 24  # CloudWatch: Period x EvaluationPeriods at most 7 days (hourly periods)


def alarm_names(settings: Settings, view: str) -> list[str]:
    return [f"{settings.view_alarm_prefix}{view}-{kind}" for kind in KINDS]


def freshness_window_hours(threshold_seconds: int) -> int:
    """Hours of silence (or of ages above the threshold) before the freshness alarm fires: the
    threshold in whole hours, between 1 and 7 days' worth."""
    return min(MAX_WINDOW_HOURS, max(1, math.ceil(threshold_seconds / HOUR)))


def alarm_definitions(settings: Settings, view: str) -> list[dict[str, Any]]:
    """The PutMetricAlarm requests of the view's alarms (pure)."""
    freshness, lookups = alarm_names(settings, view)
    threshold = settings.online_freshness_alarm_seconds
    hours = freshness_window_hours(threshold)
    common = {
        "ActionsEnabled": True,
        "AlarmActions": [settings.alarm_topic_arn] if settings.alarm_topic_arn else [],
        "Dimensions": [{"Name": "service", "Value": SERVICE}, {"Name": "view", "Value": view}],
        "ComparisonOperator": "GreaterThanThreshold",
    }
    return [
        {
            "AlarmName": freshness,
            "AlarmDescription": (
                f"feature view {view}: online values older than {threshold}s, or no materialization "
                f"reported for {hours} hour(s)"
            ),
            "Namespace": METRIC_NAMESPACE,
            "MetricName": FRESHNESS_METRIC,
            "Statistic": "Maximum",
            "Period": HOUR,
            "EvaluationPeriods": hours,
            "DatapointsToAlarm": hours,
            "Threshold": float(threshold),
            "TreatMissingData": "breaching",
            **common,
        },
        {
            "AlarmName": lookups,
            "AlarmDescription": (
                f"feature view {view}: over {settings.lookup_miss_alarm_percent:g}% of lookups missing or "
                "expired for 15 minutes"
            ),
            "Namespace": NAMESPACE,
            "MetricName": LOOKUP_MISS_METRIC,
            "Statistic": "Average",
            "Period": 300,
            "EvaluationPeriods": 3,
            "Threshold": settings.lookup_miss_alarm_percent,
            "TreatMissingData": "notBreaching",
            **common,
        },
    ]


def _count_failure() -> None:
    with single_metric(name="ViewAlarmSyncErrors", unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as metric:
        metric.add_dimension("service", SERVICE)


def _apply(settings: Settings, view: str, actor: Actor) -> ViewAlarms:
    names = alarm_names(settings, view)
    found = alarms_dal.existing(names)
    for definition in alarm_definitions(settings, view):
        alarms_dal.put(definition)
    if found == set(names):
        return ViewAlarms(view=view, outcome="updated", alarms=names)
    event = AuditEvent.of(
        actor,
        ACTION,
        target(view),
        before={"alarms": sorted(found)},
        after={"alarms": names},
        reason="the view's materialization succeeded",
    )
    audit_dal.record(settings.metadata_table, event)
    logger.info("feature view alarms created", extra={"view": view, "alarms": names})
    return ViewAlarms(view=view, outcome="created", alarms=names)


def ensure(settings: Settings, view: str, actor: Actor) -> ViewAlarms:
    """Make the view's alarms exist as defined (see the module doc); never raises a store error: a
    failure is logged, counted and returned."""
    if not settings.view_alarm_prefix:
        return ViewAlarms(view=view, outcome="off")
    try:
        return _apply(settings, view, actor)
    except StepwiseError as exc:
        logger.exception("feature view alarms of %s not put", view)
        _count_failure()
        return ViewAlarms(view=view, outcome="failed", alarms=alarm_names(settings, view), error=exc.message)
