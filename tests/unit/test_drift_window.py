from __future__ import annotations

from datetime import UTC, datetime

import pytest

from functions.logic.drift_check import window_hours


@pytest.mark.parametrize(
    ("end", "hours", "first", "count"),
    [
        (datetime(2026, 11, 26, 12, 0, tzinfo=UTC), 1, datetime(2026, 11, 26, 11, tzinfo=UTC), 1),
        (datetime(2026, 11, 26, 12, 30, tzinfo=UTC), 1, datetime(2026, 11, 26, 11, tzinfo=UTC), 2),
        (datetime(2026, 11, 26, 12, 30, tzinfo=UTC), 24, datetime(2026, 11, 25, 12, tzinfo=UTC), 25),
        (datetime(2026, 11, 26, 0, 10, tzinfo=UTC), 0.5, datetime(2026, 11, 25, 23, tzinfo=UTC), 2),
    ],
)
def test_drift_window_covers_every_overlapping_hour(end: datetime, hours: float, first: datetime, count: int) -> None:
    partitions = window_hours(end, hours)
    assert partitions[0] == first and len(partitions) == count
    assert all(p.minute == 0 and p.second == 0 for p in partitions)
