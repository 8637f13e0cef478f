"""`stepwise demo` runs the whole lifecycle locally and exits 0 (the README's demo command)."""

from __future__ import annotations

import pytest

from stepwise.demo import run_demo


def test_demo_runs_the_whole_lifecycle_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    # When the demo runs from nothing
    code = run_demo(port=0)
    out = capsys.readouterr().out
    # Then every step passed, in order, through every stage of the lifecycle
    assert code == 0, out[-4000:]
    for expected in (
        "check health over HTTP",
        "registered wine@1",
        "quarantined under quarantine/wine/",
        "v2 is PENDING_APPROVAL",
        "parity checked on the sample",
        "wine-notebook v1 is PENDING_APPROVAL",
        "lineage imported by",
        "the platform-trained version next to the imported one",
        "as demo-producer (whose upload started the run) -> 403: four-eyes",
        "APPROVED",
        "answered by versions {1: 300}",
        "stepwise score wine-model --dataset wine@",
        '"rejected": 0',
        "drifted: alcohol, color_intensity, proline, region",
        "decision: skip - cooldown",
        "version id",
        "-> 409",
        "-> RETIRED",
        "holdout predictions IDENTICAL",
        "views pinned {'customer': 1}",
        "customer v1: spend_30d, orders_30d from customer-stats@1",
        "features: approve, then predict over HTTP",
        "customers online",
        "view customer: fresh, source version 1",
        "materialized on validation",
        "after: {'amount': 260.0, 'channel': 'web', 'customer': 17}",
        "(customer from customer-stats@2",
        "demo passed",
    ):
        assert expected in out, expected
