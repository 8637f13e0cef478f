"""`stepwise predict MODEL --json '{...}' | --file rows.csv`: predictions over the HTTPS API.

--json takes one row (`{"age": 41, ...}`), a list of rows, or a whole body (`{"instances": [...]}`).
--file takes a CSV with a header row (`-` reads stdin); cells are numbers when they parse as
numbers, true/false as booleans, empty as null, anything else a string (--strings COL,... keeps
columns as text). Rows are sent in batches of --batch-size; the output is a table (default), CSV
(the input columns plus version, prediction and one probability column per class) or JSON.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from stepwise.output import table
from stepwise.target import ApiReply, Target

DEFAULT_BATCH = 100


def register(sub: Any) -> None:
    parser = sub.add_parser("predict", help="predictions from a model's serving endpoint")
    parser.add_argument("model", help="the model's name")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--json", dest="json_text", help='a row, a list of rows, or {"instances": [...]}')
    source.add_argument("--file", type=str, help="a CSV file of rows with a header ('-' for stdin)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help=f"rows per request ({DEFAULT_BATCH})")
    parser.add_argument("--request-id", help="request id (batches get -<n> appended); routes canaries stably")
    parser.add_argument("--strings", default="", help="CSV columns to keep as text, comma-separated")
    parser.add_argument("--format", choices=["table", "csv", "json"], default="table")
    parser.set_defaults(func=run)


# -- input ----------------------------------------------------------------------------------------
def rows_from_json(text: str) -> tuple[list[dict[str, Any]], str | None]:
    """(rows, request id) from --json."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise SystemExit(f"--json is not valid JSON: {exc}") from None
    if isinstance(value, dict) and "instances" in value:
        return list(value["instances"]), value.get("request_id")
    if isinstance(value, dict):
        return [value], None
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return value, None
    raise SystemExit('--json must be a row object, a list of row objects, or {"instances": [...]}')


def cell(text: str, keep_text: bool) -> Any:
    if keep_text:
        return text
    if text == "":
        return None
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    if number != number or number in (float("inf"), float("-inf")):
        return text  # never send NaN/Infinity: the server refuses them anyway
    return number


def rows_from_csv(handle: io.TextIOBase | Any, strings: set[str]) -> tuple[list[str], list[dict[str, Any]]]:
    reader = csv.DictReader(handle)
    columns = list(reader.fieldnames or [])
    rows = [{k: cell(v or "", k in strings) for k, v in row.items() if k is not None} for row in reader]
    return columns, rows


def batches(rows: Sequence[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield list(rows[start : start + size])


# -- calls and output -----------------------------------------------------------------------------
def predict_all(
    target: Target, model: str, rows: Sequence[dict[str, Any]], batch_size: int, request_id: str | None
) -> tuple[list[dict[str, Any]], ApiReply | None]:
    """One result per row ({"version", "prediction", "probabilities", "request_id"}, and "lookups"
    for a version trained through feature views), or the first failed reply."""
    results: list[dict[str, Any]] = []
    for n, batch in enumerate(batches(rows, batch_size)):
        body: dict[str, Any] = {"instances": batch}
        if request_id:
            body["request_id"] = request_id if len(rows) <= batch_size else f"{request_id}-{n}"
        reply = target.api("POST", f"/v1/models/{model}/predict", body)
        if not reply.ok or not isinstance(reply.body, dict):
            return results, reply
        probabilities = reply.body.get("probabilities") or [None] * len(batch)
        lookups = reply.body.get("lookups")  # versions trained through feature views
        for i, (prediction, probs) in enumerate(zip(reply.body["predictions"], probabilities, strict=True)):
            results.append(
                {
                    "version": reply.body["version"],
                    "prediction": prediction,
                    "probabilities": probs,
                    "request_id": reply.body["request_id"],
                    **({"lookups": lookups[i]} if lookups else {}),
                }
            )
    return results, None


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def render_table(results: list[dict[str, Any]]) -> str:
    rows = [
        (
            i,
            r["version"],
            _fmt(r["prediction"]),
            " ".join(_fmt(p) for p in r["probabilities"]) if r["probabilities"] else "",
            r["request_id"],
        )
        for i, r in enumerate(results)
    ]
    return table(rows, ["row", "version", "prediction", "probabilities", "request_id"])


def render_csv(columns: list[str], rows: Sequence[dict[str, Any]], results: list[dict[str, Any]]) -> str:
    width = max((len(r["probabilities"] or []) for r in results), default=0)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*columns, "version", "prediction", *(f"probability_{k}" for k in range(width))])
    for row, result in zip(rows, results, strict=False):
        probs = result["probabilities"] or []
        writer.writerow(
            [
                *("" if row.get(c) is None else row.get(c) for c in columns),
                result["version"],
                result["prediction"],
                *probs,
            ]
        )
    return out.getvalue()


def error_text(reply: ApiReply) -> str:
    body = reply.body if isinstance(reply.body, dict) else {"message": reply.body}
    lines = [f"HTTP {reply.status}: {body.get('error', 'error')}: {body.get('message', '')}"]
    for detail in body.get("details", []) or []:
        lines.append(f"  {detail.get('field')}: {detail.get('reason')}")
    return "\n".join(lines)


def run(args: argparse.Namespace, target_factory: Any) -> int:
    if args.batch_size < 1:
        raise SystemExit("--batch-size must be at least 1")
    request_id = args.request_id
    if args.json_text is not None:
        rows, given_id = rows_from_json(args.json_text)
        request_id = request_id or given_id
        columns = list(dict.fromkeys(k for row in rows for k in row))
    else:
        strings = {s.strip() for s in args.strings.split(",") if s.strip()}
        if args.file == "-":
            columns, rows = rows_from_csv(sys.stdin, strings)
        else:
            with Path(args.file).open(newline="") as handle:
                columns, rows = rows_from_csv(handle, strings)
    if not rows:
        raise SystemExit("no rows to send")
    results, failed = predict_all(target_factory(), args.model, rows, args.batch_size, request_id)
    if args.format == "json":
        print(json.dumps(results, indent=2))
    elif args.format == "csv":
        sys.stdout.write(render_csv(columns, rows, results))
    elif results:
        print(render_table(results))
    if failed is not None:
        print(error_text(failed), file=sys.stderr)
        return 1
    return 0
