"""The online store's batched read (functions/dal/online_lookup.py) against a stand-in for
DynamoDB's BatchGetItem that answers part of each request and leaves the rest as UnprocessedKeys,
as DynamoDB does under load (moto always answers every key, so it cannot show this)."""

from __future__ import annotations

from typing import Any

import pytest

from functions.dal.online_lookup import MAX_ATTEMPTS, batch_get
from functions.models.errors import Throttled


class PartialDynamoDB:
    """Answers at most `answer` keys per call, the rest unprocessed; `never`: answers none."""

    def __init__(self, answer: int, *, never: bool = False) -> None:
        self.answer = answer
        self.never = never
        self.calls: list[int] = []

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        ((table, wanted),) = RequestItems.items()
        keys = wanted["Keys"]
        assert len(keys) <= 100
        assert wanted["ProjectionExpression"] == "#pk, #v0, #v1"
        assert wanted["ExpressionAttributeNames"] == {"#pk": "pk", "#v0": "view:a", "#v1": "view:b"}
        self.calls.append(len(keys))
        done = [] if self.never else keys[: self.answer]
        rest = keys[len(done) :]
        items = [{"pk": k["pk"], "view:a": {"M": {"event_time_us": {"N": "1"}}}} for k in done]
        return {"Responses": {table: items}, "UnprocessedKeys": {table: {"Keys": rest}} if rest else {}}


def test_online_lookup_chunks_at_100_keys_and_retries_unprocessed_ones() -> None:
    # Given 250 keys and a store that answers 60 keys per call
    store, slept = PartialDynamoDB(60), []
    keys = [f"customer={i}" for i in range(250)]
    # When they are read
    fetched = batch_get("online", keys, ["a", "b"], sleep=slept.append, dynamodb=store)
    # Then every key is found, in chunks of at most 100, unprocessed keys asked again after a pause
    assert set(fetched.items) == set(keys)
    assert store.calls == [100, 40, 100, 40, 50]
    assert fetched.requests == 5 and len(slept) == 2


def test_online_lookup_keys_still_unprocessed_after_the_last_retry_are_throttled() -> None:
    # Given a store that never processes a key
    store, slept = PartialDynamoDB(0, never=True), []
    # When a key is read, Then it is a Throttled (429 with Retry-After) after a bounded number of tries
    with pytest.raises(Throttled, match="unprocessed"):
        batch_get("online", ["customer=a"], ["a", "b"], sleep=slept.append, dynamodb=store)
    assert len(store.calls) == MAX_ATTEMPTS and len(slept) == MAX_ATTEMPTS - 1
    assert sum(slept) < 0.2  # the pauses stay far inside the API's 29 s


def test_online_lookup_no_keys_makes_no_request() -> None:
    store = PartialDynamoDB(100)
    assert batch_get("online", [], ["a", "b"], dynamodb=store).requests == 0 and store.calls == []
