"""Canary and shadow routing."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.logic.routing import Route, bucket, choose
from functions.models.registry import ModelRecord
from functions.models.serving import ModelUnavailable

NOW = datetime(2026, 11, 26, tzinfo=UTC)


def record(
    production: int | None = 1, candidate: int | None = None, weight: float = 0.0, shadow: bool = False
) -> ModelRecord:
    return ModelRecord(
        name="churn",
        latest_version=2,
        revision=0,
        production_version=production,
        candidate_version=candidate,
        candidate_weight=weight,
        shadow=shadow,
        created_at=NOW,
        updated_at=NOW,
    )


def test_routing_without_candidate_sends_everything_to_production() -> None:
    assert choose(record(), "a") == Route(1, "production")
    assert choose(record(candidate=2, weight=0.0), "a") == Route(1, "production")


def test_routing_without_production_is_unavailable() -> None:
    with pytest.raises(ModelUnavailable):
        choose(record(production=None, candidate=2, weight=1.0), "a")


def test_routing_canary_weight_is_honoured_by_hash() -> None:
    # Given a 10% canary; When 10,000 request ids are routed
    chosen = [choose(record(candidate=2, weight=0.1), f"id-{i}").version for i in range(10_000)]
    # Then about 1,000 go to the candidate (Binomial sd 30; 5 sd bounds)
    assert 850 <= chosen.count(2) <= 1150


@given(rid=st.text(min_size=1, max_size=64), weight=st.floats(0, 1))
def test_routing_same_request_id_always_gets_the_same_version(rid: str, weight: float) -> None:
    first = choose(record(candidate=2, weight=weight), rid)
    assert all(choose(record(candidate=2, weight=weight), rid) == first for _ in range(3))


def test_routing_buckets_are_stable_across_processes() -> None:
    # blake2b of (model, request id): no per-process hash seed, the same on every environment
    assert bucket("churn", "req-1") == 0.07882744557356394
    assert 0.0 <= bucket("churn", "x") < 1.0


def test_routing_full_weight_sends_everything_to_candidate() -> None:
    assert {choose(record(candidate=2, weight=1.0), f"{i}").version for i in range(200)} == {2}


def test_routing_without_request_id_draws() -> None:
    rng = random.Random(7)
    chosen = [choose(record(candidate=2, weight=0.3), None, rng.random).version for _ in range(2000)]
    assert 500 <= chosen.count(2) <= 700


def test_routing_shadow_mode_answers_with_production_and_shadows_candidate() -> None:
    assert choose(record(candidate=2, weight=0.5, shadow=True), "a") == Route(1, "production", shadow_version=2)
