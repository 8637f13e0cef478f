"""A running local cloud: the deployed template, its API on localhost and, for other
processes (the CLI), moto's own HTTP endpoint for the stores."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

from stepwise.local.cloud import REGION, LocalCloud
from stepwise.local.server import ApiServer
from stepwise.target import Target

DIFFERENCES = [
    "SigV4 signatures are not verified: the access key a request is signed with names the caller "
    "(the CLI's --as NAME), and the uploader S3 notifications name (userIdentity.principalId 'AWS:NAME'); "
    "unsigned requests act as 'anonymous' unless --strict-auth",
    "Lambda code runs in this process from each function's asset, with its own environment; "
    "memory and timeout limits are not enforced",
    "layers are published as a list of their files: handlers import this environment's packages "
    "(tests/infra/test_packaging.py imports each function from its real layers instead)",
    "EventBridge schedules do not fire by themselves: `stepwise local fire RULE` (or the demo) fires them",
    "metrics and alarms are not evaluated (CloudWatch is not emulated)",
]


@dataclass
class LocalSession:
    port: int = 8787
    aws_port: int | None = None  # serve moto over HTTP for other processes (local up)
    context: dict[str, Any] = field(default_factory=dict)
    strict_auth: bool = False
    personas: dict[str, str] = field(default_factory=dict)  # caller name -> persona (with strict_auth)
    log_level: str = "WARNING"
    app_module: str = "infra.app"

    def __post_init__(self) -> None:
        self.cloud = LocalCloud(context=self.context, log_level=self.log_level, app_module=self.app_module)
        self.api: ApiServer | None = None
        self._moto_server: Any = None
        self.target: Target | None = None

    def start(self) -> Target:
        logging.getLogger("moto").setLevel(logging.ERROR)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", module=r"moto\..*")
        self.cloud.start()
        self.api = ApiServer(self.cloud, port=self.port, strict_auth=self.strict_auth, personas=self.personas)
        aws_endpoint = None
        if self.aws_port is not None:
            from moto.server import ThreadedMotoServer

            self._moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.aws_port, verbose=False)
            self._moto_server.start()
            aws_endpoint = f"http://127.0.0.1:{self.aws_port}"
        self.api.info = {
            "api_url": self.api.url,
            "aws_endpoint": aws_endpoint,
            "region": REGION,
            "outputs": self.cloud.outputs,
            "stack": self.cloud.deployment.stack_id if self.cloud.deployment else "",
        }
        self.api.start()
        self.target = Target(
            api_url=self.api.url,
            outputs=self.cloud.outputs,
            region=REGION,
            aws_endpoint=None,  # this process talks to moto directly
            local=True,
            in_process=True,
            stack=self.api.info["stack"],
        )
        return self.target

    def stop(self) -> None:
        if self.api:
            self.api.stop()
        if self._moto_server is not None:
            self._moto_server.stop()
        self.cloud.stop()

    def __enter__(self) -> Target:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fire_schedules(self, name_contains: str = "") -> list[str]:
        """Deliver each scheduled EventBridge rule's event to its targets (moto does not)."""
        return self.cloud.fire_schedules(name_contains)
