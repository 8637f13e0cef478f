"""Opaque continuation tokens of paginated reads.

A token is the last item's position, base64url-encoded with the kind of listing it continues
("models", "versions:<model>", "runs:<model>", ...), so a token of one listing is refused by another. A token that does
not decode to a position of that listing is InvalidInput naming `query.next_token`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from functions.dal.clients import query_items
from functions.models.errors import InvalidInput

FIELD = "query.next_token"
MAX_TOKEN = 1_024
_POSITION = re.compile(r"^[A-Za-z0-9#._:-]{1,256}$")


def encode(kind: str, position: str) -> str:
    raw = json.dumps({"k": kind, "p": position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(kind: str, token: str, pattern: str | None = None) -> str:
    """The position a token of `kind` names (matching `pattern` when given); InvalidInput for any
    other string."""
    problem = "not a continuation token of this listing (pass the next_token of its previous page)"
    if len(token) > MAX_TOKEN:
        raise InvalidInput(f"{FIELD}: {problem}", [{"field": FIELD, "reason": problem}])
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        doc = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        doc = None
    position = doc.get("p") if isinstance(doc, dict) and doc.get("k") == kind else None
    if (
        not isinstance(position, str)
        or not _POSITION.match(position)
        or (pattern is not None and not re.match(pattern, position))
    ):
        raise InvalidInput(f"{FIELD}: {problem}", [{"field": FIELD, "reason": problem}])
    return position


def query_page(params: dict[str, Any], limit: int, what: str) -> tuple[list[dict[str, Any]], bool]:
    """Up to `limit` items of a Query in its key order, and whether more follow (one more item
    than asked is read to know it, so a last page never hands out a token to an empty page)."""
    items = query_items(params, limit + 1, what)
    return items[:limit], len(items) > limit
