"""Canary and shadow routing: which version answers a request, and which one scores in the shadow.

- No candidate (or weight 0): production answers.
- Candidate with weight w, shadow off: the candidate answers a fraction w of requests. With a
  request id the choice is a stable hash of (model, request id), so a retried request gets the
  same version; without one it is a random draw.
- Shadow on: production answers every request and the candidate also scores it (captured with
  variant "shadow", never returned).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass

from functions.models.registry import ModelRecord
from functions.models.serving import ModelUnavailable, Variant

_SCALE = float(2**64)


@dataclass(frozen=True, slots=True)
class Route:
    version: int
    variant: Variant
    shadow_version: int | None = None


def bucket(model: str, request_id: str) -> float:
    """A stable number in [0, 1) for (model, request id): the same on every execution environment."""
    digest = hashlib.blake2b(f"{model}\x00{request_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def choose(record: ModelRecord, request_id: str | None, draw: Callable[[], float] = random.random) -> Route:
    production = record.production_version
    if production is None:
        raise ModelUnavailable(f"model {record.name!r} has no production version yet")
    candidate = record.candidate_version
    if candidate is None or candidate == production:
        return Route(production, "production")
    if record.shadow:
        return Route(production, "production", shadow_version=candidate)
    weight = record.candidate_weight
    if weight <= 0.0:
        return Route(production, "production")
    point = bucket(record.name, request_id) if request_id is not None else draw()
    if point < weight:
        return Route(candidate, "candidate")
    return Route(production, "production")
