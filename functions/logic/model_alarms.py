"""Per-model CloudWatch alarms, kept in step with the registry.

A model that has a production or canary version has five alarms, named
`<STEPWISE_MODEL_ALARM_PREFIX><model>-<kind>` (the prefix is the stack's; the functions' grant allows
no other alarm names), each notifying the alarm topic and quiet without data:

drift       DriftShare (the drift check's share of drifted features, %) of the model at least
            DRIFT_SHARE_PERCENT in an hourly check
errors      ModelServerErrors (inference 5xx of the model) 5 or more in 5 minutes
latency     ModelLatency (inference, ms) p99 above 1 s for 3 of 3 five-minute periods
performance ModelPerformanceDrops (the drift check's labelled performance fell past its gate)
lookups     LookupMissShare (inference: % of a request's feature-view lookups missing or expired) on
            average above STEPWISE_LOOKUP_MISS_ALARM_PERCENT (the stack's lookup_miss_alarm_percent,
            20) for 3 of 3 five-minute periods; quiet for models that look nothing up (no data)

The fleet-wide alarms (infra/constructs/monitoring.py) stay as they are.

`sync` reads the model record and makes CloudWatch agree: serving -> every alarm is put (PutMetricAlarm
creates or replaces, so a repeat changes nothing); not serving -> the model's alarms are deleted. A
model loses its alarms when a release step leaves it with neither a production nor a canary version
(a first canary rolled back), and every retirement re-syncs, so a retired model's alarms never outlive
its last serving version. Creating and deleting each appends an audit event (`model.alarms`); a sync
that finds CloudWatch already right writes none.

A failed sync never undoes or blocks the release it follows (that transaction has committed): it is
logged, counted (`ModelAlarmSyncErrors`, service dimension) and returned as outcome "failed"; the
next release step, rollback or retirement of the model syncs again from the registry's state.
"""

from __future__ import annotations

from typing import Any, Literal

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from functions.dal import alarms as alarms_dal
from functions.dal import audit as audit_dal
from functions.dal import registry as registry_dal
from functions.models.alarms import ModelAlarms
from functions.models.audit import Actor, AuditEvent, model_target
from functions.models.errors import StepwiseError
from functions.models.settings import Settings
from functions.observability import NAMESPACE, SERVICE, logger

DRIFT_SHARE_PERCENT = 50.0
KINDS = ("drift", "errors", "latency", "lookups", "performance")


def alarm_names(settings: Settings, model: str) -> list[str]:
    return [f"{settings.model_alarm_prefix}{model}-{kind}" for kind in KINDS]


def alarm_definitions(settings: Settings, model: str) -> list[dict[str, Any]]:
    """The PutMetricAlarm requests of the model's alarms (pure)."""
    drift, errors, latency, lookups, performance = alarm_names(settings, model)

    def alarm(name: str, description: str, metric: str, dimension: str, **spec: Any) -> dict[str, Any]:
        return {
            "AlarmName": name,
            "AlarmDescription": f"{model}: {description}",
            "Namespace": NAMESPACE,
            "MetricName": metric,
            "Dimensions": [{"Name": "service", "Value": SERVICE}, {"Name": dimension, "Value": model}],
            "TreatMissingData": "notBreaching",
            "ActionsEnabled": True,
            "AlarmActions": [settings.alarm_topic_arn] if settings.alarm_topic_arn else [],
            **spec,
        }

    at_least = "GreaterThanOrEqualToThreshold"
    return [
        alarm(
            drift,
            f"drift check: {DRIFT_SHARE_PERCENT:g}% or more of the features drifted",
            "DriftShare",
            "Model",
            Statistic="Maximum",
            Period=3600,
            EvaluationPeriods=1,
            Threshold=DRIFT_SHARE_PERCENT,
            ComparisonOperator=at_least,
        ),
        alarm(
            errors,
            "inference server errors (5 or more in 5 minutes)",
            "ModelServerErrors",
            "model",
            Statistic="Sum",
            Period=300,
            EvaluationPeriods=1,
            Threshold=5.0,
            ComparisonOperator=at_least,
        ),
        alarm(
            latency,
            "inference p99 latency above 1 s for 3 of 3 five-minute periods",
            "ModelLatency",
            "model",
            ExtendedStatistic="p99",
            Period=300,
            EvaluationPeriods=3,
            Threshold=1000.0,
            ComparisonOperator="GreaterThanThreshold",
        ),
        alarm(
            performance,
            "labelled performance dropped past its gate in a drift check",
            "ModelPerformanceDrops",
            "Model",
            Statistic="Maximum",
            Period=3600,
            EvaluationPeriods=1,
            Threshold=1.0,
            ComparisonOperator=at_least,
        ),
        alarm(
            lookups,
            f"feature lookups: over {settings.lookup_miss_alarm_percent:g}% missing or expired for 15 minutes",
            "LookupMissShare",
            "model",
            Statistic="Average",
            Period=300,
            EvaluationPeriods=3,
            Threshold=settings.lookup_miss_alarm_percent,
            ComparisonOperator="GreaterThanThreshold",
        ),
    ]


def _count_failure() -> None:
    with single_metric(name="ModelAlarmSyncErrors", unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as metric:
        metric.add_dimension("service", SERVICE)


def _apply(settings: Settings, model: str, actor: Actor, reason: str) -> ModelAlarms:
    names = alarm_names(settings, model)
    record = registry_dal.get_model(settings.registry_table, model)
    serving = record is not None and (record.production_version is not None or record.candidate_version is not None)
    found = alarms_dal.existing(names)
    outcome: Literal["created", "updated", "deleted"]
    if serving:
        for definition in alarm_definitions(settings, model):
            alarms_dal.put(definition)
        outcome = "updated" if found == set(names) else "created"
    elif found:
        alarms_dal.delete(sorted(found))
        outcome = "deleted"
    else:
        return ModelAlarms(model=model, serving=False, outcome="none", alarms=names)
    if outcome != "updated":
        event = AuditEvent.of(
            actor,
            "model.alarms",
            model_target(model),
            before={"alarms": sorted(found)},
            after={"alarms": names if serving else []},
            reason=reason,
        )
        audit_dal.record(settings.metadata_table, event)
    logger.info("model alarms synced", extra={"model": model, "outcome": outcome})
    return ModelAlarms(model=model, serving=serving, outcome=outcome, alarms=names)


def sync(settings: Settings, model: str, actor: Actor, reason: str) -> ModelAlarms:
    """Make the model's alarms agree with the registry (see the module doc); never raises a store
    error: a failure is logged, counted and returned."""
    if not settings.model_alarm_prefix:
        return ModelAlarms(model=model, serving=False, outcome="off")
    try:
        return _apply(settings, model, actor, reason)
    except StepwiseError as exc:
        logger.exception("model alarms of %s not synced", model)
        _count_failure()
        return ModelAlarms(model=model, serving=False, outcome="failed", error=exc.message)
