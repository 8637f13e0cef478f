"""Governance: the audit trail, lineage, model cards, retirement (all over the HTTPS API, signed as
the caller: `--as NAME` locally).

stepwise audit [MODEL] [--target KIND/NAME] [--since ISO] [--json]   events in order, with who
stepwise audit --export [--day YYYY-MM-DD]    export a day (default yesterday) to the Object Lock archive
stepwise lineage MODEL VERSION [--json]       production periods -> version -> run -> dataset object
                                              -> evaluation -> approval
stepwise explain REQUEST_ID --model M [--since ISO] [--json]
                                              the version that answered a prediction, and its lineage
                                              (request ids are the callers': every match is named)
stepwise explain --model M --job JOB --row ID [--column COL] [--json]
                                              a batch job's scored row, named by a pass-through value:
                                              its inputs, prediction, version, artifact and part sha256
stepwise card MODEL VERSION [--html]          the model card (rendered from the records, stored)
stepwise retire MODEL VERSION --reason "..."  take a non-serving version out of service
                  [--withdraw]                 (the production version: the model then serves nothing)
stepwise restore MODEL VERSION [--reason ...] re-verify a retired version's artifacts and register
                                              them again as a new version
stepwise reproduce MODEL VERSION [--json] [--timeout S]
                                              the stack retrains the version from its recorded
                                              dataset version, spec and seed (the reproduce function,
                                              the train step's code); are the holdout predictions
                                              identical? (exit 3 when not, 1 when it could not run)
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any
from urllib.parse import quote, urlencode

from stepwise.output import table
from stepwise.target import ApiReply, Target, add_page_arguments, get_pages


def register(sub: Any) -> None:
    audit = sub.add_parser("audit", help="the audit trail: every state-changing action, in order, with who")
    audit.add_argument("model", nargs="?")
    audit.add_argument("--target", help="another target, e.g. dataset/wine or contract/wine")
    audit.add_argument("--since", help="ISO date or time (UTC)")
    audit.add_argument("--until", help="ISO date or time (UTC), inclusive")
    audit.add_argument("--actor", help="a part of the actor's identity (case-sensitive)")
    audit.add_argument("--action", help="an action or its prefix, e.g. approval.")
    audit.add_argument("--json", action="store_true")
    add_page_arguments(audit, "events")
    audit.add_argument("--export", action="store_true", help="export a day to the Object Lock archive now")
    audit.add_argument("--day", help="with --export: the UTC day, YYYY-MM-DD (default yesterday)")
    audit.set_defaults(func=run_audit)

    lineage = sub.add_parser("lineage", help="how a version was made and who let it in")
    lineage.add_argument("model")
    lineage.add_argument("version", type=int)
    lineage.add_argument("--json", action="store_true")
    lineage.set_defaults(func=run_lineage)

    explain = sub.add_parser(
        "explain", help="the version that answered a prediction (or scored a batch row), and its lineage"
    )
    explain.add_argument("request_id", nargs="?", help="the prediction's request id (not with --job)")
    explain.add_argument("--job", help="a batch job id: explain its row named by --row")
    explain.add_argument("--row", help="with --job: the row's pass-through value (its id)")
    explain.add_argument("--column", help="with --job: the pass-through column holding --row (default: the first)")
    explain.add_argument(
        "--model", required=True, help="the model that answered (request ids are unique only per model)"
    )
    explain.add_argument("--since", help="search captures from this ISO date on")
    explain.add_argument("--json", action="store_true")
    explain.set_defaults(func=run_explain)

    card = sub.add_parser("card", help="a version's model card (Markdown; --html for the HTML's location)")
    card.add_argument("model")
    card.add_argument("version", type=int)
    card.set_defaults(func=run_card)

    retire = sub.add_parser("retire", help="retire a version that no longer serves (records stay)")
    retire.add_argument("model")
    retire.add_argument("version", type=int)
    retire.add_argument("--reason", required=True)
    retire.add_argument(
        "--withdraw", action="store_true", help="retire the production version: the model then serves nothing"
    )
    retire.set_defaults(func=run_retire)

    restore = sub.add_parser("restore", help="re-verify a retired version and register it again")
    restore.add_argument("model")
    restore.add_argument("version", type=int)
    restore.add_argument("--reason", default="")
    restore.set_defaults(func=run_restore)

    reproduce = sub.add_parser("reproduce", help="retrain a version from its records; identical holdout predictions?")
    reproduce.add_argument("model")
    reproduce.add_argument("version", type=int)
    reproduce.add_argument("--json", action="store_true")
    reproduce.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the outcome")
    reproduce.set_defaults(func=run_reproduce)


def _failed(reply: ApiReply) -> int:
    body = reply.body if isinstance(reply.body, dict) else {"message": reply.body}
    print(f"error: HTTP {reply.status} {body.get('error', '')}: {body.get('message', '')}")
    return 1


def _short(value: Any, width: int = 60) -> str:
    text = "" if value is None else (value if isinstance(value, str) else json.dumps(value, sort_keys=True))
    return text if len(text) <= width else text[: width - 3] + "..."


def render_audit(body: dict[str, Any]) -> str:
    rows = [
        (
            e["time"][:23],
            e["who"],
            e["action"],
            e["target"] + (f" v{e['version']}" if e.get("version") else ""),
            _short(e.get("before")) + " -> " + _short(e.get("after")) if e.get("before") else _short(e.get("after")),
            _short(e.get("reason"), 50),
        )
        for e in body["events"]
    ]
    if not rows:
        return "no audit events"
    return table(rows, ["time", "who", "action", "target", "change", "reason"])


def render_lineage(lin: dict[str, Any]) -> str:
    ds, run, ev, ap = lin["dataset"], lin["run"], lin["evaluation"], lin.get("approval")
    lines = [f"{lin['model']} version {lin['version']}: {lin['status']} (registered {lin['created_at']})"]
    periods = lin.get("production_periods") or []
    lines.append("production periods:" if periods else "production periods: never in production")
    lines += [
        f"  {p['started']} -> {p['ended'] or 'now'}  promoted by {p['promoted_by'] or '-'}"
        + (f"; ended as {p['ended_as']} by {p['ended_by']}" if p.get("ended") else "")
        for p in periods
    ]
    params = ", ".join(f"{k}={v}" for k, v in sorted(run.get("parameters", {}).items()))
    lines += [
        "training run:",
        f"  run         {run['run_id']} ({run.get('status') or '?'})",
        f"  execution   {run.get('execution_arn') or '-'}",
        f"  started by  {run.get('started_by') or '-'}",
        f"  spec        {run['spec_name']} v{run['spec_version']}, seed {run['seed']}, code {run['code_version']}",
        f"  parameters  {params or '-'}",
        "dataset version:",
        f"  dataset     {ds['dataset']}@{ds['version']} (contract v{ds['contract_version']})",
        f"  object      s3://{ds.get('bucket') or '?'}/{ds['key']}",
        f"  version id  {ds.get('version_id') or '-'}",
        f"  sha256      {ds['sha256']}",
        f"  report      {ds.get('report_uri') or '-'} ({ds.get('report_verdict') or '?'})",
        f"  uploaded by {ds.get('uploaded_by') or '-'}",
        "evaluation:",
        "  metrics     "
        + ", ".join(
            f"{k} {v:.4f}" + ("*" if k == ev["primary_metric"] else "") for k, v in sorted(ev["metrics"].items())
        ),
        "  gates       "
        + ", ".join(f"{g['gate']} {'pass' if g['passed'] else 'FAIL'}" for g in ev["gates"])
        + ("" if ev["gates"] else "-"),
    ]
    c = ev["comparison"]
    if c.get("production_version") is None and c.get("delta") is None:
        lines.append("  vs prod     no production version at evaluation")
    else:
        delta = "-" if c.get("delta") is None else f"{c['delta']:+.4f}"
        lines.append(f"  vs prod     v{c.get('production_version') or '?'}: {c.get('primary_metric')} {delta}")
    derived = lin.get("derived") or []
    if derived:
        lines.append("derived features (computed inside the ONNX graph):")
        lines += [f"  {d['name']:<11} {d['type']} = {d['expression']}" for d in derived]
    views = lin.get("feature_views") or []
    if views:
        lines.append(f"feature views (joined point in time at {lin.get('event_time') or '-'}):")
        lines += [
            f"  {u['view']} v{u['version']}: {', '.join(f['name'] for f in u['features'])} "
            f"from {u['source']}@{u['source_version']} (ttl {u['ttl_seconds']} s; matched {u['matched']}, "
            f"missing {u['missing']}, expired {u['expired']})"
            for u in views
        ]
    lines.append("approval:")
    if ap:
        lines.append(f"  {ap['status']} by {ap.get('who') or '-'} at {ap.get('at') or '-'}: {ap.get('reason') or '-'}")
    else:
        lines.append("  none")
    jobs, total = lin.get("batch_jobs") or [], lin.get("batch_jobs_total") or 0
    lines.append("batch jobs:" if jobs else "batch jobs: none scored with this version")
    lines += [
        f"  {j['job_id']}  {j['status']:<9} {j['scored']} scored, {j['rejected']} rejected"
        f"  by {j.get('requested_by') or '-'} at {j['requested_at']}  {j.get('output_prefix') or '-'}"
        for j in jobs
    ]
    if total > len(jobs):
        lines.append(f"  ... {total - len(jobs)} older (stepwise jobs {lin['model']} lists them all)")
    for m in lin.get("missing", []):
        lines.append(f"MISSING {m}")
    return "\n".join(lines)


def _json_or(args: argparse.Namespace, body: Any, text: str) -> None:
    print(json.dumps(body, indent=2) if args.json else text)


def run_audit(args: argparse.Namespace, target_factory: Any) -> int:
    if args.export:
        reply = target_factory().api("POST", "/v1/audit/export", {"day": args.day} if args.day else {})
        if not reply.ok:
            return _failed(reply)
        b = reply.body
        print(f"{b['events']} events of {b['day']} exported to {b['key']}")
        print(f"  version {b['version_id'] or '-'}, sha256 {b['sha256']} (Object Lock, governance mode)")
        return 0
    given = {"model": args.model, "target": args.target, "since": args.since, "until": args.until}
    query = {k: v for k, v in {**given, "actor": args.actor, "action": args.action}.items() if v}
    reply, events, token = get_pages(target_factory(), "/v1/audit", "events", query, limit=args.limit, every=args.all)
    if not reply.ok:
        return _failed(reply)
    body = {"events": events, "next_token": token}
    _json_or(args, body, render_audit(body))
    if token and not args.json:
        print(f"(more events: add --all, or GET /v1/audit?{urlencode({**query, 'next_token': token})})")
    return 0


def run_lineage(args: argparse.Namespace, target_factory: Any) -> int:
    reply = target_factory().api("GET", f"/v1/models/{args.model}/versions/{args.version}/lineage")
    if not reply.ok:
        return _failed(reply)
    _json_or(args, reply.body, render_lineage(reply.body))
    return 0


def run_explain(args: argparse.Namespace, target_factory: Any) -> int:
    if args.job or args.row:
        return run_explain_row(args, target_factory)
    if not args.request_id:
        print("error: give a REQUEST_ID, or --job JOB --row ID")
        return 2
    query = {k: v for k, v in (("model", args.model), ("since", args.since)) if v}
    path = f"/v1/explain/{quote(args.request_id, safe='')}" + (f"?{urlencode(query)}" if query else "")
    reply = target_factory().api("GET", path)
    if not reply.ok:
        return _failed(reply)
    b = reply.body
    head = f"request {b['request_id']} was answered by {b['model']} version {b['version']}"
    head += f" ({b['variant']}, {b['time']})"
    _json_or(args, b, head + explain_matches(b) + explain_lookups(b) + "\n" + render_lineage(b["lineage"]))
    return 0


def explain_lookups(body: dict[str, Any]) -> str:
    """Per captured row, per looked-up feature view: its status and where its values came from."""
    rows = body.get("lookups") or []
    text = "\nlooked-up feature views:" if rows else ""
    for i, views in enumerate(rows):
        for view, source in sorted(views.items()):
            where = (
                f"source version {source.get('source_version')}, event time {source.get('event_time')}"
                if source.get("source_version") is not None
                else "no value in the online store"
            )
            text += f"\n  row {i}: {view}: {source.get('status')} ({where})"
    return text


def run_explain_row(args: argparse.Namespace, target_factory: Any) -> int:
    if not (args.job and args.row) or args.request_id:
        print("error: a batch row is named by --job JOB --row ID (and no REQUEST_ID)")
        return 2
    path = f"/v1/models/{args.model}/batch/{quote(args.job, safe='')}/rows/{quote(args.row, safe='')}"
    if args.column:
        path += f"?{urlencode({'column': args.column})}"
    reply = target_factory().api("GET", path)
    if not reply.ok:
        return _failed(reply)
    _json_or(args, reply.body, render_batch_row(reply.body))
    return 0


def render_batch_row(body: dict[str, Any]) -> str:
    """A batch row: what scored it (version, artifact), then each matching row with its part."""
    given = body["input"]
    lines = [
        f"batch job {body['job_id']}: {body['model']} v{body['version']} (artifact sha256 {body['artifact_sha256']})",
        f"  input s3://{given['bucket']}/{given['key']} (version {given['version_id'] or '-'})",
    ]
    for row in body["rows"]:
        lines.append(f"  row {body['column']}={body['row']} (chunk {row['chunk']})")
        lines.append(f"    passthrough   {json.dumps(row['passthrough'], default=str)}")
        lines.append(
            f"    inputs        {json.dumps(row['inputs'], default=str) if row['inputs'] else '(not told apart)'}"
        )
        lines.append(f"    prediction    {row['prediction']!r} (model version {row['model_version']})")
        if row.get("probabilities") is not None:
            lines.append(f"    probabilities {row['probabilities']}")
        lines.append(f"    part          s3://{given['bucket']}/{row['part']}")
        lines.append(f"    part sha256   {row['part_sha256']}")
    return "\n".join(lines)


def explain_matches(body: dict[str, Any]) -> str:
    """A warning when the request id named more than one captured request (ids are the callers')."""
    others = body.get("other_matches") or []
    text = ""
    if body.get("matches", 1) > 1:
        text += (
            f"\nwarning: {body['matches']} captured requests of {body['model']} carry this id (ids are chosen by "
            "callers); the newest is shown. Others:"
        )
        text += "".join(f"\n  version {m['version']} ({m['variant']}, {m['time']})" for m in others)
    if not body.get("searched_all", True):
        text += "\nwarning: only the newest capture objects were searched; narrow with --since to see older matches"
    return text


def run_card(args: argparse.Namespace, target_factory: Any) -> int:
    reply = target_factory().api("GET", f"/v1/models/{args.model}/versions/{args.version}/card")
    if not reply.ok:
        return _failed(reply)
    print(reply.body["markdown"])
    print(f"(stored at {reply.body['markdown_uri']} and {reply.body['html_uri']})")
    return 0


def run_retire(args: argparse.Namespace, target_factory: Any) -> int:
    reason = (args.reason or "").strip()
    if not reason:
        print("error: --reason must not be empty")
        return 2
    body = {"reason": reason, **({"withdraw": True} if args.withdraw else {})}
    reply = target_factory().api("POST", f"/v1/models/{args.model}/versions/{args.version}/retire", body)
    if not reply.ok:
        return _failed(reply)
    b = reply.body
    print(f"{b['model']} version {b['version']}: {b['status']} ({b['reason']}); {len(b['tagged'])} artifacts tagged")
    return 0


def run_restore(args: argparse.Namespace, target_factory: Any) -> int:
    reply = target_factory().api(
        "POST", f"/v1/models/{args.model}/versions/{args.version}/restore", {"reason": args.reason}
    )
    if not reply.ok:
        return _failed(reply)
    b = reply.body
    verified = ", ".join(f"{k} {v[:12]}..." for k, v in sorted(b["verified"].items()))
    print(f"{b['model']} version {b['from_version']} re-verified ({verified}) and registered as version {b['version']}")
    print(f"status {b['status']}")
    return 0


def render_reproduce(r: dict[str, Any]) -> str:
    verdict = "IDENTICAL" if r["identical"] else "DIFFERENT"
    return "\n".join(
        [
            f"{r['model']} version {r['version']}: holdout predictions {verdict} ({r['holdout_rows']} rows, "
            f"{r['label_mismatches']} label mismatches, max abs diff {r['max_abs_diff']:.3g})",
            f"  retrained from {r['dataset']}@{r['dataset_version']} (sha256 {r['data_sha256']}), "
            f"spec {r['spec_name']} v{r['spec_version']}, seed {r['seed']}",
            f"  recorded code version {r['code_version'] or '-'}, reproduced with {r.get('reproduced_with') or '-'}",
            *(
                [
                    f"  point-in-time training set {'IDENTICAL' if r['training_set_identical'] else 'DIFFERENT'} "
                    f"(sha256 {r.get('training_set_sha256') or '-'})"
                ]
                if r.get("training_set_identical") is not None
                else []
            ),
        ]
    )


def reproduction(target: Target, model: str, version: int, *, timeout: float, poll: float = 2.0) -> dict[str, Any]:
    """Ask the stack to reproduce the version (POST), then read its outcome (GET) until it is no
    longer RUNNING. The reply's body: a reproduction (functions/models/reproduction.py), or an
    error body when a call failed or `timeout` seconds passed."""
    path = f"/v1/models/{model}/versions/{version}/reproduce"
    reply = target.api("POST", path, {})
    deadline = time.monotonic() + timeout
    while reply.ok and reply.body.get("status") == "RUNNING" and time.monotonic() < deadline:
        time.sleep(poll)
        reply = target.api("GET", path)
    if not reply.ok:
        body = reply.body if isinstance(reply.body, dict) else {"message": str(reply.body)}
        error = f"HTTP {reply.status} {body.get('error', '')}"
        return {"status": "ERROR", "error": error, "message": str(body.get("message", ""))}
    if reply.body.get("status") == "RUNNING":
        return {**reply.body, "error": "Timeout", "message": f"still running after {timeout:.0f} s; ask again later"}
    return dict(reply.body)


def run_reproduce(args: argparse.Namespace, target_factory: Any) -> int:
    body = reproduction(target_factory(), args.model, args.version, timeout=args.timeout)
    if body.get("status") != "SUCCEEDED":
        if args.json:
            print(json.dumps(body, indent=2))
        else:
            print(f"error: {body.get('error') or body.get('status')}: {body.get('message', '')}")
        return 1
    result = body["result"]
    _json_or(args, body, render_reproduce(result))
    return 0 if result["identical"] else 3
