"""`stepwise demo`: the whole lifecycle, locally, from nothing.

Each stage is a list of steps; a step gets the demo context, does one thing through the same
paths a user has (HTTP API, S3 uploads, CLI commands), prints what it saw, and raises
DemoFailure (or any error) to stop the demo with a non-zero exit.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stepwise.demo_data import data_steps
from stepwise.demo_drift import drift_steps
from stepwise.demo_features import feature_steps
from stepwise.demo_governance import governance_steps
from stepwise.demo_import import import_steps
from stepwise.demo_lifecycle import lifecycle_steps, spec_steps
from stepwise.demo_release import DEMO_CONTEXT, release_steps
from stepwise.demo_shared import SPEC_NAME, DemoFailure
from stepwise.local.session import LocalSession
from stepwise.target import Target


@dataclass
class DemoContext:
    session: LocalSession
    target: Target
    state: dict[str, Any] = field(default_factory=dict)

    def say(self, text: str) -> None:
        for line in text.splitlines():
            print(f"      {line}", flush=True)


Step = tuple[str, Callable[[DemoContext], None]]


def step_health(ctx: DemoContext) -> None:
    reply = ctx.target.api("GET", "/v1/health")
    if reply.status != 200 or not isinstance(reply.body, dict):
        raise DemoFailure(f"health answered HTTP {reply.status}: {reply.body}")
    stores = ", ".join(f"{s['name']} {'ok' if s['ok'] else 'FAILING'}" for s in reply.body["stores"])
    ctx.say(f"GET {ctx.target.api_url}/v1/health -> 200, version {reply.body['version']}: {stores}")


def foundation_steps() -> list[Step]:
    return [("check health over HTTP", step_health)]


def all_steps(workdir: Path) -> list[Step]:
    return [
        *foundation_steps(),
        *spec_steps(),  # before the data: the contract names the spec, so a good upload trains
        *data_steps(workdir / "data", training_spec=SPEC_NAME),
        *lifecycle_steps(),
        *import_steps(),  # a model trained in a notebook, waiting for approval beside the trained one
        *release_steps(),
        *drift_steps(),
        *governance_steps(),
        *feature_steps(workdir / "features"),  # a second example: an entity, a feature view, a PIT join
    ]


def run_demo(port: int = 0, serve: bool = False, steps: list[Step] | None = None) -> int:
    timings: list[tuple[str, float]] = []
    workdir = Path(tempfile.mkdtemp(prefix="stepwise-demo-"))
    plan = steps if steps is not None else all_steps(workdir)
    total = len(plan) + 1
    started = time.perf_counter()
    print(f"[1/{total}] synthesize the CDK app and deploy its template into a local cloud (moto)", flush=True)
    t0 = time.perf_counter()
    session = LocalSession(port=port, aws_port=(port + 1) if serve and port else None, context=dict(DEMO_CONTEXT))
    try:
        target = session.start()
    except Exception as exc:
        print(f"      FAILED: {exc}")
        return 1
    timings.append(("deploy the local cloud", time.perf_counter() - t0))
    deployment = session.cloud.deployment
    assert deployment is not None
    print(
        f"      {len(deployment.resources)} resources deployed, {len(session.cloud.router.functions)} functions "
        f"routed to their handlers, API at {target.api_url} ({timings[-1][1]:.1f} s)",
        flush=True,
    )
    ctx = DemoContext(session=session, target=target, state={"workdir": workdir})
    code = 0
    try:
        for index, (name, step) in enumerate(plan, start=2):
            print(f"[{index}/{total}] {name}", flush=True)
            t0 = time.perf_counter()
            try:
                step(ctx)
            except Exception as exc:
                print(f"      FAILED: {type(exc).__name__}: {exc}", flush=True)
                code = 1
                break
            timings.append((name, time.perf_counter() - t0))
            print(f"      ok ({timings[-1][1]:.1f} s)", flush=True)
        elapsed = time.perf_counter() - started
        slowest = ", ".join(f"{n} {d:.1f} s" for n, d in sorted(timings, key=lambda t: -t[1])[:3])
        print(f"\ndemo {'passed' if code == 0 else 'FAILED'} in {elapsed:.1f} s; slowest steps: {slowest}", flush=True)
        if serve and code == 0:
            print(f"API: {target.api_url}", flush=True)
            if session.api is not None:
                print(f"Console: {session.api.console_url}", flush=True)
            if session.api and session.api.info.get("aws_endpoint"):
                print(f"AWS endpoint (moto): {session.api.info['aws_endpoint']}", flush=True)
            print(f"explore with: stepwise --endpoint {target.api_url} status   (Ctrl-C stops)", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        print("\nstopping the local cloud")
    finally:
        session.stop()
    return code
