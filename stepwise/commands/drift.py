"""Drift checks on demand.

stepwise drift MODEL [--window 24h] [--no-retrain] [--wait 300] [--open]
    start a check of MODEL's captured traffic over the window (POST /v1/models/{name}/drift), wait
    for its JSON report in the artifacts bucket, print the overall verdict and each section's
    (inputs: the drifted features; outputs: the drifted outputs; data quality: each broken contract
    rule with its rate and example request ids);
    --open writes the self-contained HTML report to the current directory.
stepwise drift MODEL --settings [--cadence HOURS] [--window 6h]
    show MODEL's drift settings; with --cadence (1, 2, 3, 4, 6, 8, 12 or 24 hours) or --window,
    change its schedule (PUT /v1/models/{name}/drift/settings, audited)
stepwise drift --fleet [--rounds N]
    the latest scheduled rounds (GET /v1/drift/rounds): models checked, skipped and failed (with why)
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from functions.models.drift import DriftCheckAccepted, DriftReport, FeatureDrift
from stepwise.target import Target

_UNITS = {"m": 1 / 60, "h": 1.0, "d": 24.0}


def parse_window(text: str) -> float:
    """ "24h" / "90m" / "2d" / "6" (hours) -> hours."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([mhd]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a window: {text!r} (e.g. 24h, 90m, 2d)")
    hours = float(match.group(1)) * _UNITS[match.group(2) or "h"]
    if not 0 < hours <= 24 * 31:
        raise argparse.ArgumentTypeError("the window must be between 1 minute and 31 days")
    return hours


def register(sub: Any) -> None:
    drift = sub.add_parser("drift", help="check a model's captured traffic for drift against its training reference")
    drift.add_argument("model", nargs="?")
    drift.add_argument("--window", type=parse_window, default=None, help="e.g. 24h (default), 90m, 7d")
    drift.add_argument("--fleet", action="store_true", help="show the latest scheduled rounds of every model")
    drift.add_argument("--rounds", type=int, default=1, help="with --fleet: how many rounds (default 1)")
    drift.add_argument("--settings", action="store_true", help="show (or with --cadence/--window change) settings")
    drift.add_argument("--cadence", type=int, default=None, help="with --settings: check every N hours (1-24)")
    drift.add_argument("--no-retrain", action="store_true", help="report only; never start retraining")
    drift.add_argument("--wait", type=float, default=300.0, help="seconds to wait for the report (0: do not wait)")
    drift.add_argument("--open", action="store_true", help="write the HTML report to the current directory")
    drift.set_defaults(func=run_drift)


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _fetch(target: Target, uri: str) -> bytes | None:
    bucket, key = _split(uri)
    try:
        return target.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise


def _print_features(features: list[FeatureDrift]) -> None:
    """Each feature (or output) whose verdict is not no_drift, with its effect sizes and why."""
    for f in features:
        if f.verdict.value != "no_drift":
            effect = (
                f"KS D {f.numeric.ks_d:.3f} PSI {f.numeric.psi:.3f}"
                if f.numeric
                else f"JS {f.categorical.js_distance:.3f} PSI {f.categorical.psi:.3f}"
                if f.categorical
                else ""
            )
            print(f"  {f.name:<32} {f.verdict.value:<18} {effect}  {f.reason}")


def _error(reply: Any) -> int:
    body = reply.body if isinstance(reply.body, dict) else {"message": reply.body}
    print(f"error: HTTP {reply.status} {body.get('error', '')}: {body.get('message', '')}")
    return 1


def render_rounds(rounds: list[dict[str, Any]]) -> str:
    if not rounds:
        return "no scheduled rounds yet"
    lines = []
    for r in rounds:
        state = "complete" if r["complete"] else "in progress"
        lines.append(
            f"round {r['round_id']} ({state}, {r['pages']} page(s)): {len(r['checked'])} checked, "
            f"{len(r['skipped'])} skipped, {len(r['failed'])} failed"
        )
        if r.get("error"):
            lines.append(f"  round failed: {r['error']}")
        lines += [f"  failed   {f['model']}: {f['reason']}" for f in r["failed"]]
        lines += [f"  skipped  {s}" for s in r["skipped"]]
    return "\n".join(lines)


def run_fleet(args: argparse.Namespace, target: Target) -> int:
    reply = target.api("GET", f"/v1/drift/rounds?limit={args.rounds}")
    if not reply.ok:
        return _error(reply)
    print(render_rounds(reply.body["rounds"]))
    return 0


def run_settings(args: argparse.Namespace, target: Target) -> int:
    path = f"/v1/models/{args.model}/drift/settings"
    reply = target.api("GET", path)
    if not reply.ok:
        return _error(reply)
    body = dict(reply.body)
    if args.cadence is not None or args.window is not None:
        body = {k: v for k, v in body.items() if k in ("config", "policy", "cadence_hours", "window_hours")}
        if args.cadence is not None:
            body["cadence_hours"] = args.cadence
        if args.window is not None:
            body["window_hours"] = args.window
        reply = target.api("PUT", path, body)
        if not reply.ok:
            return _error(reply)
        body = reply.body
    window = body.get("window_hours")
    print(
        f"{args.model}: checked every {body['cadence_hours']} h over "
        f"{f'{window:g} h' if window else 'the cadence (or the schedule window)'}; "
        f"critical features: {', '.join(body['config']['critical_features']) or '-'}; "
        f"retraining {'on' if body['policy']['enabled'] else 'off'}"
        + (f"; updated by {body['updated_by']} at {body['updated_at']}" if body.get("updated_by") else "")
    )
    return 0


def run_drift(args: argparse.Namespace, target_factory: Any) -> int:
    target: Target = target_factory()
    if args.fleet:
        return run_fleet(args, target)
    if not args.model:
        print("error: name a model (stepwise drift MODEL), or pass --fleet")
        return 2
    if args.settings:
        return run_settings(args, target)
    window = 24.0 if args.window is None else args.window
    reply = target.api(
        "POST", f"/v1/models/{args.model}/drift", {"window_hours": window, "retrain": not args.no_retrain}
    )
    if not reply.ok:
        return _error(reply)
    accepted = DriftCheckAccepted.model_validate(reply.body)
    print(f"drift check {accepted.check_id} of {accepted.model}: {accepted.window_start} -> {accepted.window_end}")
    if args.wait <= 0:
        print(f"report (when done): {accepted.report_json}")
        return 0
    deadline = time.monotonic() + args.wait
    data = _fetch(target, accepted.report_json)
    while data is None and time.monotonic() < deadline:
        time.sleep(2.0)
        data = _fetch(target, accepted.report_json)
    if data is None:
        print(f"no report after {args.wait:.0f} s; it will appear at {accepted.report_json}")
        return 1
    report = DriftReport.model_validate_json(data)
    if report.overall is not None:
        print(f"overall: {report.overall.verdict} - {report.overall.reason}")
    print(f"inputs: {report.verdict.value} - {report.reason}")
    print(
        f"rows: {report.row_count} (kept aside by compaction: {report.rejected_rows}); versions seen: "
        f"{', '.join(map(str, report.versions_seen)) or '-'}"
    )
    _print_features(report.features)
    if report.outputs is not None:
        print(f"outputs: {report.outputs.verdict} - {report.outputs.reason}")
        _print_features(report.outputs.outputs)
    dq = report.data_quality
    if dq is not None:
        print(f"data quality: {dq.verdict} - {dq.reason}")
        for rule in dq.rules:
            ids = ", ".join(rule.request_ids[:5]) + (" ..." if len(rule.request_ids) > 5 else "")
            state = "FAIL" if rule.failed else "ok"
            print(f"  {rule.rule:<32} {state:<4} {rule.violations} rows ({rule.rate:.2%})  requests: {ids or '-'}")
    for problem in report.problems:
        print(f"  problem: {problem}")
    print(f"report: {accepted.report_json}\n        {accepted.report_html}")
    if args.open:
        html = _fetch(target, accepted.report_html)
        if html is None:
            print("the HTML report is not there yet")
            return 1
        path = Path(f"drift-{report.model}-{report.check_id}.html").resolve()
        path.write_bytes(html)
        print(f"wrote {path}")
    return 0
