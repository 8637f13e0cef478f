"""Health of the stack: its version and whether each store answers."""

from __future__ import annotations

from functions.dal import health as probes
from functions.models.health import HealthReply, StoreHealth
from functions.models.settings import Settings


def check_health(settings: Settings) -> HealthReply:
    stores: list[StoreHealth] = []
    for name, bucket in (("data", settings.data_bucket), ("artifacts", settings.artifacts_bucket)):
        ok, detail = probes.bucket_answers(bucket)
        stores.append(StoreHealth(name=name, kind="s3", ok=ok, detail=detail))
    for name, table in (("registry", settings.registry_table), ("metadata", settings.metadata_table)):
        ok, detail = probes.table_answers(table)
        stores.append(StoreHealth(name=name, kind="dynamodb", ok=ok, detail=detail))
    healthy = all(s.ok for s in stores)
    return HealthReply(status="ok" if healthy else "degraded", version=settings.stack_version, stores=stores)
