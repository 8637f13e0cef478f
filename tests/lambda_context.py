"""The test suite's one fake Lambda context: what the runtime hands a handler (function name, ARN,
memory, request id) and the time it has left, from which Powertools idempotency derives the lease
of an in-progress record. Lambda's own context object cannot be made outside the runtime."""

from __future__ import annotations

from aws_lambda_powertools.utilities.typing import LambdaContext

REGION = "us-east-1"
ACCOUNT = "123456789012"


class FakeContext(LambdaContext):
    """A context of the function `function` (a subclass names its own); `remaining_ms` is what
    get_remaining_time_in_millis answers (0, as Powertools' own LambdaContext, unless set)."""

    function = "test"
    remaining_ms = 0

    def __init__(self, function: str = "", *, request_id: str = "req-1", memory_mb: int = 1024) -> None:
        function = function or self.function
        self._function_name = function
        self._memory_limit_in_mb = memory_mb
        self._invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}"
        self._aws_request_id = request_id

    def get_remaining_time_in_millis(self) -> int:  # type: ignore[override]
        return self.remaining_ms
