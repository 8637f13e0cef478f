"""CloudWatch Logs' part in metrics: a Lambda's stdout lines in the Embedded Metric Format become
CloudWatch metrics. The local cloud routes each function's output through `EmfSink`, so what a
handler publishes with Powertools (e.g. the serving metrics the canary check reads) lands in
moto's CloudWatch as it would on AWS. Alarms on those metrics are stored, not evaluated.

https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

_BATCH = 20  # PutMetricData's MetricData limit in moto's (and older AWS) API

Put = Callable[[str, list[dict[str, Any]]], None]


def metric_data(record: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(namespace, MetricData entry) for every value of every metric in one EMF record; a record
    that is not EMF gives nothing."""
    meta = record.get("_aws")
    if not isinstance(meta, dict) or not isinstance(meta.get("CloudWatchMetrics"), list):
        return []
    stamp = datetime.fromtimestamp(int(meta.get("Timestamp", 0)) / 1000, tz=UTC)
    out: list[tuple[str, dict[str, Any]]] = []
    for directive in meta["CloudWatchMetrics"]:
        namespace = directive.get("Namespace", "")
        for dimension_set in directive.get("Dimensions", []) or [[]]:
            dims = [{"Name": d, "Value": str(record[d])} for d in dimension_set if d in record]
            for metric in directive.get("Metrics", []):
                name = metric.get("Name", "")
                values = record.get(name)
                for value in values if isinstance(values, list) else [values]:
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        datum: dict[str, Any] = {
                            "MetricName": name,
                            "Dimensions": dims,
                            "Value": float(value),
                            "Timestamp": stamp,
                        }
                        if metric.get("Unit"):
                            datum["Unit"] = metric["Unit"]
                        out.append((namespace, datum))
    return out


def deliver(lines: Iterable[str], put: Put) -> int:
    """Put the metrics of every EMF line in `lines`; returns how many data points."""
    by_namespace: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        line = line.strip()
        if not (line.startswith("{") and '"_aws"' in line):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            for namespace, datum in metric_data(record):
                by_namespace.setdefault(namespace, []).append(datum)
    count = 0
    for namespace, data in by_namespace.items():
        for i in range(0, len(data), _BATCH):
            put(namespace, data[i : i + _BATCH])
        count += len(data)
    return count


def cloudwatch_put(client: Any) -> Put:
    """`put` for `deliver`: PutMetricData with a boto3 CloudWatch client."""
    return lambda namespace, data: client.put_metric_data(Namespace=namespace, MetricData=data)


class EmfSink:
    """A function's log stream: every write goes to `sink`; complete lines that are EMF records
    are delivered as metrics (`flush_metrics` delivers what a handler wrote without a newline)."""

    def __init__(self, sink: Any, put: Put) -> None:
        self.sink = sink
        self.put = put
        self.failures = 0  # deliveries that failed: as on AWS, never the function's failure
        self._pending = ""

    def _deliver(self, lines: list[str]) -> None:
        try:
            deliver(lines, self.put)
        except Exception as exc:  # moto's CloudWatch refused: the log line stays, the function goes on
            self.failures += 1
            self.sink.write(f"(local cloud) EMF metrics not delivered: {exc!r}\n")

    def write(self, text: str) -> int:
        written = self.sink.write(text)
        self._pending += text
        if "\n" in text:
            complete, _, self._pending = self._pending.rpartition("\n")
            self._deliver(complete.splitlines())
        return int(written)

    def flush(self) -> None:
        self.sink.flush()

    def close(self) -> None:
        if self._pending:
            self._deliver([self._pending])
            self._pending = ""
        self.sink.close()
