"""How long a delivery that died mid-run keeps its idempotency record "in progress".

Powertools sets the in-progress expiry to now + the invocation's remaining time, so a delivery
killed early (out of memory, a crashed host) would block every redelivery until the function's
whole timeout had passed: Lambda's two asynchronous retries (about 1 and 3 minutes later) would both
be refused and the event would go to the dead-letter queue. The lease is capped at
IN_PROGRESS_LEASE_MS instead. A delivery still running past it can race a redelivery; the units
are safe under that race by their own keys (one dataset version per uploaded object version, drift
writes keyed on the check id, an audit export per day kept whole under Object Lock).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

IN_PROGRESS_LEASE_MS = 60_000


class _LeasedContext:
    def __init__(self, context: Any, lease_ms: int) -> None:
        self._context, self._lease_ms = context, lease_ms

    def get_remaining_time_in_millis(self) -> int:
        return min(int(self._context.get_remaining_time_in_millis()), self._lease_ms)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def register(config: IdempotencyConfig, context: Any, lease_ms: int = IN_PROGRESS_LEASE_MS) -> None:
    """`config.register_lambda_context`, with the in-progress lease capped at `lease_ms`."""
    config.register_lambda_context(_LeasedContext(context, lease_ms))  # type: ignore[arg-type]
