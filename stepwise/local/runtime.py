"""Runs each Lambda's real handler in-process, from its own asset, with its own environment.

Every function gets its own copy of the code asset's modules (as every Lambda has its own
execution environment), so settings read once per process stay per function. Invocations are
serialized by one re-entrant lock because environment variables are process-wide; a handler
that invokes another function synchronously runs it nested on the same thread.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import io
import json
import os
import sys
import threading
import time
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from moto.awslambda.models import LambdaBackend, LambdaFunction
from moto.awslambda_simple.models import LambdaSimpleBackend

from stepwise.local import emf

_LOCK = threading.RLock()
_CURRENT = threading.local()  # the log sink of the function running on this thread, if any


class _RoutedStream(io.TextIOBase):
    """stdout/stderr as the process sees them: a handler's prints and logs (Powertools writes
    JSON logs and EMF metrics to stdout) go to that function's log, like CloudWatch Logs;
    everything else goes where it always went."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def write(self, text: str) -> int:
        sink = getattr(_CURRENT, "sink", None)
        return (sink or self.real).write(text)  # type: ignore[no-any-return]

    def flush(self) -> None:
        sink = getattr(_CURRENT, "sink", None)
        (sink or self.real).flush()

    def isatty(self) -> bool:
        return False


# Variables every Lambda runtime sets; the function's own variables are laid over them.
_RUNTIME_ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
    "POWERTOOLS_TRACE_DISABLED": "1",  # no X-Ray daemon locally
    "POWERTOOLS_METRICS_DISABLED": "0",
}


@dataclass
class LambdaContext:
    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    timeout_seconds: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"
    _started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))


@dataclass
class FunctionRuntime:
    """One Lambda function: where its code is, which handler, which environment."""

    name: str
    arn: str
    code_dir: Path
    handler: str
    environment: dict[str, str]
    memory_mb: int = 128
    timeout_seconds: int = 30
    log_level: str = "WARNING"
    log_file: Path | None = None
    invocations: int = 0
    errors: int = 0
    _modules: dict[str, ModuleType] = field(default_factory=dict)
    shutdown_hooks: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)
    metrics_put: emf.Put | None = None  # where the EMF lines it writes become metrics (CloudWatch Logs' part)
    _packages: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self._packages = tuple(
            p.name
            for p in self.code_dir.iterdir()
            if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"
        )
        self._packages = tuple(p.removesuffix(".py") for p in self._packages)

    def _owned(self, module_name: str) -> bool:
        return module_name.split(".", 1)[0] in self._packages

    @contextlib.contextmanager
    def _execution_environment(self) -> Iterator[None]:
        saved_modules = {n: sys.modules.pop(n) for n in list(sys.modules) if self._owned(n)}
        sys.modules.update(self._modules)
        saved_path = list(sys.path)
        sys.path.insert(0, str(self.code_dir))
        saved_env = dict(os.environ)
        os.environ.update(_RUNTIME_ENV)
        os.environ.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": self.name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
                "POWERTOOLS_LOG_LEVEL": self.log_level,
            }
        )
        os.environ.update(self.environment)
        importlib.invalidate_caches()
        sink: Any = open(self.log_file, "a", encoding="utf-8") if self.log_file else io.StringIO()  # noqa: SIM115
        if self.metrics_put is not None:
            sink = emf.EmfSink(sink, self.metrics_put)
        _CURRENT.sink = sink
        streams = _route_streams()
        warnings_context = warnings.catch_warnings()
        warnings_context.__enter__()
        warnings.simplefilter("default")

        def to_log(msg: Any, cat: type[Warning], *rest: Any, **kw: Any) -> None:
            sink.write(f"{cat.__name__}: {msg}\n")

        warnings.showwarning = to_log  # type: ignore[assignment]
        # Exit hooks a handler registers run at this environment's SHUTDOWN (see shutdown()),
        # while the local cloud still answers, not when this whole process exits.
        real_register = atexit.register

        def register_shutdown(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]:
            self.shutdown_hooks.append((func, args, kwargs))
            return func

        atexit.register = register_shutdown  # type: ignore[assignment]
        try:
            yield
        finally:
            atexit.register = real_register
            warnings_context.__exit__(None, None, None)
            _CURRENT.sink = None
            _unroute_streams(streams)
            sink.close()
            self._modules = {n: sys.modules.pop(n) for n in list(sys.modules) if self._owned(n)}
            sys.modules.update(saved_modules)
            sys.path[:] = saved_path
            _restore_environment(saved_env)

    def _handler(self) -> Callable[[Any, Any], Any]:
        module_name, _, attr = self.handler.rpartition(".")
        module = importlib.import_module(module_name)
        return getattr(module, attr)  # type: ignore[no-any-return]

    def shutdown(self) -> None:
        """Lambda's SHUTDOWN phase for this execution environment: run its exit hooks (e.g. the
        inference function's capture flush). The next invocation starts a fresh environment."""
        with _LOCK, self._execution_environment():
            hooks, self.shutdown_hooks = list(self.shutdown_hooks), []
            for func, args, kwargs in hooks:
                with contextlib.suppress(Exception):
                    func(*args, **kwargs)
        self._modules = {}

    def invoke(self, event: Any) -> tuple[Any, str | None]:
        """Run the handler: (result, None) or (error payload, "Unhandled") as Lambda reports it."""
        with _LOCK, self._execution_environment():
            self.invocations += 1
            context = LambdaContext(
                function_name=self.name,
                memory_limit_in_mb=self.memory_mb,
                invoked_function_arn=self.arn,
                timeout_seconds=self.timeout_seconds,
            )
            try:
                return self._handler()(event, context), None
            except Exception as exc:  # a handler error comes back as a Lambda error, as on AWS
                self.errors += 1
                return {
                    "errorType": type(exc).__name__,
                    "errorMessage": str(exc),
                    "stackTrace": traceback.format_tb(exc.__traceback__),
                }, "Unhandled"


def _route_streams() -> tuple[Any, Any]:
    """Make sure the process's stdout/stderr route to the running function's log, even if
    something (pytest's capture, between test phases) replaced the streams `install` routed; its
    EMF lines must reach the EmfSink. Returns the streams to put back afterwards."""
    saved = (sys.stdout, sys.stderr)
    if not isinstance(sys.stdout, _RoutedStream):
        sys.stdout = _RoutedStream(sys.stdout)  # type: ignore[assignment]
    if not isinstance(sys.stderr, _RoutedStream):
        sys.stderr = _RoutedStream(sys.stderr)  # type: ignore[assignment]
    return saved


def _unroute_streams(saved: tuple[Any, Any]) -> None:
    """Put back what `_route_streams` replaced, unless someone replaced it again meanwhile."""
    for name, before in zip(("stdout", "stderr"), saved, strict=True):
        current = getattr(sys, name)
        if current is not before and isinstance(current, _RoutedStream) and current.real is before:
            setattr(sys, name, before)


def _restore_environment(saved: dict[str, str]) -> None:
    """Back to `saved` without removing a variable: other threads read os.environ while a handler
    runs (moto's Step Functions interpreter makes a boto3 client per task on its own thread, and
    botocore copies os.environ), and a variable removed between their listing it and reading it is
    a KeyError there. A function's own variable the invocation added is emptied instead (the
    functions' settings treat an empty variable as unset: functions/models/settings.py); the local
    runtime's fixed ones (_RUNTIME_ENV: region, local credentials, tracing off) stay as they are."""
    for key in list(os.environ):
        if key not in saved and key not in _RUNTIME_ENV and os.environ.get(key):
            os.environ[key] = ""
    for key, value in saved.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


class LambdaRouter:
    """Routes moto's Lambda invocations (Invoke API, Step Functions, S3 notifications) to
    FunctionRuntime instances. Functions it does not know (CDK's own custom-resource
    handlers) answer with an error that names them, and are reported as emulated."""

    def __init__(self) -> None:
        self.functions: dict[str, FunctionRuntime] = {}
        self.unrouted: list[str] = []
        self.custom_resources: list[dict[str, Any]] = []
        self._originals: list[tuple[type, str, Any]] = []

    def add(self, runtime: FunctionRuntime) -> None:
        self.functions[runtime.name] = runtime

    def route(self, function_name: str, body: Any, request_headers: Any, response_headers: Any) -> str | bytes:
        event = json.loads(body) if isinstance(body, (str, bytes)) and body else (body or {})
        runtime = self.functions.get(
            function_name.rsplit(":", 1)[-1] if ":function:" in function_name else function_name
        )
        if runtime is None and isinstance(event, dict) and {"RequestType", "ResponseURL", "StackId"} <= set(event):
            # A CDK custom-resource provider (inline code, not ours): its effect is applied from
            # the resource's own properties by the local cloud, which answers CloudFormation
            # SUCCESS once the stack's own resources are created (answer_custom_resources).
            self.custom_resources.append(event)
            result: Any = {}
            error: str | None = None
        elif runtime is None:
            self.unrouted.append(function_name)
            result = {
                "errorType": "NotRoutedLocally",
                "errorMessage": f"{function_name} has no handler in the local cloud",
            }
            error = "Unhandled"
        else:
            result, error = runtime.invoke(event)
        if error:
            response_headers["x-amz-function-error"] = error
        payload = json.dumps(result, default=str)
        invocation_type = (request_headers or {}).get("x-amz-invocation-type") or (request_headers or {}).get(
            "X-Amz-Invocation-Type"
        )
        return payload if invocation_type == "Event" else payload.encode()

    def install(self) -> None:
        """Patch both doors through which moto reaches Lambda code: the backends' `invoke` (Invoke
        API, Step Functions) and `LambdaFunction.invoke` (S3 notifications, event sources)."""
        if self._originals:
            return
        router = self

        def function_invoke(fn: LambdaFunction, body: Any, request_headers: Any, response_headers: Any) -> Any:
            return router.route(fn.function_name, body, request_headers, response_headers)

        def backend_invoke(
            backend: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: Any
        ) -> Any:
            fn = backend.get_function(function_name, qualifier)
            payload = router.route(fn.function_name, body, headers, response_headers)
            response_headers["Content-Length"] = str(len(payload))
            return payload

        self._streams = (sys.stdout, sys.stderr)
        sys.stdout = _RoutedStream(sys.stdout)  # type: ignore[assignment]
        sys.stderr = _RoutedStream(sys.stderr)  # type: ignore[assignment]
        for owner, attr, replacement in (
            (LambdaFunction, "invoke", function_invoke),
            (LambdaBackend, "invoke", backend_invoke),
            (LambdaSimpleBackend, "invoke", backend_invoke),
        ):
            self._originals.append((owner, attr, owner.__dict__[attr]))
            setattr(owner, attr, replacement)

    def uninstall(self) -> None:
        for owner, attr, original in reversed(self._originals):
            setattr(owner, attr, original)
        if self._originals:
            sys.stdout, sys.stderr = self._streams
        self._originals.clear()


def answer_custom_resources(events: list[dict[str, Any]]) -> None:
    """What each provider's cfn-response PUT does: mark the custom resource created."""
    from moto.cloudformation.models import cloudformation_backends

    for event in events:
        stack_id = str(event["StackId"])
        account, region = stack_id.split(":")[4], stack_id.split(":")[3]
        stack = cloudformation_backends[account][region].get_stack(stack_id)
        stack.get_custom_resource(event["LogicalResourceId"]).set_data({})
        stack.verify_readiness()
