"""Model commands: training specs, the registry, lifecycle runs (all over the HTTPS API).

stepwise spec put FILE [--name NAME]        store FILE (JSON) as the next version of its spec
stepwise spec show NAME [--version N]
stepwise train MODEL --spec NAME --dataset-version N   start the lifecycle workflow
stepwise models                             models with production version and counts
stepwise versions MODEL                     version, status, primary metric, dataset version
stepwise show MODEL VERSION                 everything: metrics, gates, lineage, artifacts
stepwise runs MODEL                         lifecycle runs and their steps
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from functions.models.specs import TrainingSpec
from stepwise.output import table
from stepwise.target import ApiReply, Target, add_page_arguments, get_pages


def register(sub: Any) -> None:
    spec = sub.add_parser("spec", help="training specs: put a new version, show one")
    ssub = spec.add_subparsers(dest="spec_command", required=True, metavar="ACTION")
    put = ssub.add_parser("put", help="store FILE (JSON) as the next version of its spec")
    put.add_argument("file", type=Path)
    put.add_argument("--name", help="the spec's name (default: the file's `name`)")
    put.set_defaults(func=run_spec_put)
    show = ssub.add_parser("show", help="show a spec (latest, or --version N)")
    show.add_argument("name")
    show.add_argument("--version", type=int)
    show.set_defaults(func=run_spec_show)

    train = sub.add_parser("train", help="start the lifecycle workflow for a spec on a dataset version")
    train.add_argument("model")
    train.add_argument("--spec", required=True)
    train.add_argument("--dataset-version", type=int, required=True)
    train.set_defaults(func=run_train)

    models = sub.add_parser("models", help="models with production version and counts")
    models.add_argument("--limit", type=int, default=100, help="models per page (1-1000, default 100)")
    models.add_argument("--all", action="store_true", help="follow the pages to the last model")
    models.set_defaults(func=run_models)
    versions = sub.add_parser("versions", help="a model's versions")
    versions.add_argument("model")
    versions.set_defaults(func=run_versions)
    show_version = sub.add_parser("show", help="one version: metrics, gates, lineage, artifacts")
    show_version.add_argument("model")
    show_version.add_argument("version", type=int)
    show_version.set_defaults(func=run_show)
    runs = sub.add_parser("runs", help="a model's lifecycle runs and their steps")
    runs.add_argument("model")
    add_page_arguments(runs, "runs")
    runs.set_defaults(func=run_runs)


def _failed(reply: ApiReply) -> int:
    body = reply.body if isinstance(reply.body, dict) else {"message": reply.body}
    print(f"error: HTTP {reply.status} {body.get('error', '')}: {body.get('message', '')}")
    return 1


def run_spec_put(args: argparse.Namespace, target_factory: Any) -> int:
    try:
        data = json.loads(args.file.read_text())
    except (OSError, ValueError) as exc:
        print(f"error: cannot read {args.file}: {exc}")
        return 2
    name = args.name or data.get("name")
    if not name:
        print("error: the spec has no name; give --name")
        return 2
    try:
        TrainingSpec.model_validate({**data, "name": name})  # refuse locally first, with the field
    except ValidationError as exc:
        for err in exc.errors():
            print(f"error: {'.'.join(map(str, err['loc'])) or 'spec'}: {err['msg']}")
        return 2
    reply = target_factory().api("PUT", f"/v1/specs/{name}", {**data, "name": name})
    if not reply.ok:
        return _failed(reply)
    print(f"spec {reply.body['name']} version {reply.body['version']} stored (model {reply.body['spec']['model']})")
    return 0


def run_spec_show(args: argparse.Namespace, target_factory: Any) -> int:
    query = f"?version={args.version}" if args.version else ""
    reply = target_factory().api("GET", f"/v1/specs/{args.name}{query}")
    if not reply.ok:
        return _failed(reply)
    print(json.dumps(reply.body, indent=2))
    return 0


def run_train(args: argparse.Namespace, target_factory: Any) -> int:
    reply = target_factory().api(
        "POST", f"/v1/models/{args.model}/train", {"spec": args.spec, "dataset_version": args.dataset_version}
    )
    if not reply.ok:
        return _failed(reply)
    state = "started" if reply.body["started"] else "already exists (not started again)"
    print(f"execution {reply.body['execution_name']} {state}\n  {reply.body['execution_arn']}")
    return 0


def render_models(body: dict[str, Any]) -> str:
    rows = [
        (
            m["name"],
            m.get("production_version") or "-",
            m.get("candidate_version") or "-",
            m["latest_version"],
            ", ".join(f"{k} {v}" for k, v in sorted(m.get("by_status", {}).items())),
        )
        for m in body["models"]
    ]
    return table(rows, ["model", "production", "candidate", "latest", "versions by status"])


def render_versions(body: dict[str, Any]) -> str:
    rows = [
        (
            v["version"],
            v["status"],
            f"{v['primary_metric']} {v['primary_value']:.4f}" if v.get("primary_value") is not None else "-",
            f"{v['dataset']}@{v['dataset_version']}",
            v["spec_version"],
            v["created_at"],
        )
        for v in body["versions"]
    ]
    return table(rows, ["version", "status", "primary metric", "dataset", "spec", "created"])


def render_version(v: dict[str, Any]) -> str:
    lines = [
        f"{v['model']} version {v['version']}: {v['status']}  ({v['task']}, created {v['created_at']})",
        *(f"  reason: {r}" for r in v.get("reasons", [])),
        "",
        "metrics:",
        *(f"  {k:<10} {val:.6g}{'  (primary)' if k == v['primary_metric'] else ''}" for k, val in v["metrics"].items()),
        "",
        "gates:",
        table(
            [
                (g["gate"], "pass" if g["passed"] else "FAIL", g.get("value"), g.get("threshold"), g.get("reason", ""))
                for g in v["gates"]
            ],
            ["gate", "verdict", "value", "threshold", "reason"],
        ),
        "",
        "lineage:",
        f"  dataset   {v['dataset']}@{v['dataset_version']} (contract v{v['contract_version']})",
        f"  object    {v['data_key']} (S3 version {v['data_version_id'] or '-'})",
        f"  sha256    {v['data_sha256']}",
        f"  spec      {v['spec_name']} v{v['spec_version']}, seed {v['seed']}",
        f"  run       {v['run_id']} (started by {v.get('started_by') or '-'})",
        f"  code      {v['code_version']}",
        "",
        "artifacts:",
        *(f"  {k:<8} {a['uri']}  sha256 {a['sha256']}  {a['size_bytes']} bytes" for k, a in v["artifacts"].items()),
        "",
        "parameters: " + ", ".join(f"{k}={val}" for k, val in sorted(v.get("parameters", {}).items())),
        "timings: " + ", ".join(f"{k}={val:.3f}" for k, val in sorted(v.get("timings", {}).items())),
    ]
    return "\n".join(lines)


def render_runs(body: dict[str, Any]) -> str:
    lines: list[str] = []
    for run in body["runs"]:
        version = f" -> version {run['version']}" if run.get("version") else ""
        lines.append(
            f"{run['run_id']}: {run['status']}{version}  (started {run['started_at']} by {run['started_by'] or '-'})"
        )
        if run.get("error"):
            lines.append(f"  error {run['error']}: {run.get('cause', '')[:200]}")
        lines.append(
            table(
                [
                    (s["name"], s["outcome"], s["started_at"], s.get("ended_at") or "-", s.get("error") or "")
                    for s in run["steps"]
                ],
                ["  step", "outcome", "started", "ended", "error"],
            )
        )
        lines.append("")
    return "\n".join(lines) if lines else "no runs"


def _get(target: Target, path: str) -> ApiReply:
    return target.api("GET", path)


def _show(target_factory: Any, path: str, render: Callable[[dict[str, Any]], str]) -> int:
    """GET `path` and print it with `render` (or the error, exiting 1)."""
    reply = _get(target_factory(), path)
    if not reply.ok:
        return _failed(reply)
    print(render(reply.body))
    return 0


def run_models(args: argparse.Namespace, target_factory: Any) -> int:
    """One page of models (--all: every page, following next_token); says when more exist."""
    from stepwise.client import Stepwise, StepwiseError

    client = Stepwise(target=target_factory())
    models: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        try:
            page = client.models_page(limit=args.limit, next_token=token)
        except StepwiseError as exc:
            print(f"error: {str(exc).splitlines()[0]}")
            return 1
        models.extend(m.model_dump(mode="json") for m in page.models)
        token = page.next_token
        if not token or not args.all:
            break
    print(render_models({"models": models}) if models else "no models yet")
    if token:
        print(f"(more models: stepwise models --all, or GET /v1/models?next_token={token})")
    return 0


def run_versions(args: argparse.Namespace, target_factory: Any) -> int:
    """Every version of the model, following the pages (through the client)."""
    from stepwise.client import Stepwise, StepwiseError

    try:
        versions = Stepwise(target=target_factory()).versions(args.model)
    except StepwiseError as exc:
        print(f"error: {str(exc).splitlines()[0]}")
        return 1
    print(render_versions({"versions": [v.model_dump(mode="json") for v in versions]}))
    return 0


def run_show(args: argparse.Namespace, target_factory: Any) -> int:
    return _show(target_factory, f"/v1/models/{args.model}/versions/{args.version}", render_version)


def run_runs(args: argparse.Namespace, target_factory: Any) -> int:
    """Runs newest first, a page (--all: every page); says when more exist."""
    path = f"/v1/models/{args.model}/runs"
    reply, runs, token = get_pages(target_factory(), path, "runs", {}, limit=args.limit, every=args.all)
    if not reply.ok:
        return _failed(reply)
    print(render_runs({**reply.body, "runs": runs}))
    if token:
        print(f"(more runs: stepwise runs {args.model} --all, or GET {path}?next_token={token})")
    return 0
