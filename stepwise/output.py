"""Plain-text tables and lines for the CLI, and following a run to its end."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any


def table(rows: Iterable[Sequence[Any]], headers: Sequence[str]) -> str:
    text_rows = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text_rows:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=False)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)) for row in text_rows]
    return "\n".join(lines)


def follow_until_done(
    target: Any,
    path: str,
    record: dict[str, Any],
    *,
    progress: Callable[[dict[str, Any]], str],
    timeout: float,
    poll: float = 2.0,
    keep: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Read `path` (a run or job record) until its status is SUCCEEDED or FAILED, or `timeout`
    seconds pass, printing `progress(record)` when it changes. A failed read is transient: the run
    goes on, so it is read again. `keep` names fields of the first record the reads do not carry."""
    deadline = time.monotonic() + timeout
    shown = ""
    while record["status"] not in ("SUCCEEDED", "FAILED") and time.monotonic() < deadline:
        time.sleep(poll)
        reply = target.api("GET", path)
        if not reply.ok:
            continue
        record = {**reply.body, **{k: record[k] for k in keep if k in record}}
        line = progress(record)
        if line != shown:
            print(f"  {line}", flush=True)
            shown = line
    return record
