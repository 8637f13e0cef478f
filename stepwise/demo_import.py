"""Demo step for bringing your own model: a data scientist trains a small pipeline in-process, as a
notebook would, and imports it through the Python client (stepwise/client.py: converted with
skl2onnx and checked for parity on a sample on this machine, then uploaded, verified, evaluated with
the same gates as a trained model and registered with "imported" lineage). It waits for approval
next to the platform-trained version.

    steps = [..., *lifecycle_steps(), *import_steps(), *release_steps(), ...]
"""

from __future__ import annotations

import dataclasses
from typing import Any

from stepwise.commands.release import render_approvals
from stepwise.demo_shared import MODEL, DemoFailure

IMPORTED_MODEL = "wine-notebook"
SCIENTIST = "demo-scientist"  # the identity whose notebook imports the model
WAIT_SECONDS = 300.0


def step_import(ctx: Any) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from stepwise.client import Stepwise
    from stepwise.demo_data import wine_table

    # the notebook: the 13 measurements, a scaler and a logistic regression, fitted in this process
    table = wine_table()
    features = [n for n in table.column_names if n not in ("id", "region", "label")]
    frame = table.select(features).to_pandas()
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(
        frame, table.column("label").to_numpy()
    )
    client = Stepwise(target=dataclasses.replace(ctx.target, identity=SCIENTIST))
    dataset = f"wine@{ctx.state['wine_version']}"
    result = client.import_sklearn(
        pipeline,
        model=IMPORTED_MODEL,
        dataset=dataset,
        sample=frame.sample(40, random_state=0),
        source_url="https://example.com/notebooks/wine-logistic.ipynb",
        description="logistic regression on the 13 measurements, trained in a notebook",
        wait=True,
        timeout=WAIT_SECONDS,
    )
    ctx.say(
        f"client.import_sklearn(pipeline, model={IMPORTED_MODEL!r}, dataset={dataset!r}, sample=40 rows) as "
        f"{SCIENTIST}: converted with skl2onnx, parity checked on the sample, import {result.import_id}"
    )
    (version,) = [v for v in client.versions(IMPORTED_MODEL) if v.version == result.version]
    if version.status != "PENDING_APPROVAL":
        raise DemoFailure(f"{IMPORTED_MODEL} v{version.version} is {version.status}, not PENDING_APPROVAL")
    run = client.lineage(IMPORTED_MODEL, version.version).run
    if run.source != "imported" or run.imported is None:
        raise DemoFailure(f"{IMPORTED_MODEL} v{version.version} lineage says {run.source}, not imported")
    ctx.say(
        f"{IMPORTED_MODEL} v{version.version} is {version.status} ({version.primary_metric} "
        f"{version.primary_value if version.primary_value is not None else float('nan'):.4f}): lineage "
        f"{run.source} by {run.imported.requested_by}, sha256 {run.imported.sha256[:12]}..."
    )
    pending = ctx.target.api("GET", "/v1/approvals")
    models = {a["model"] for a in pending.body.get("approvals", [])} if pending.ok else set()
    if not {MODEL, IMPORTED_MODEL} <= models:
        raise DemoFailure(f"both {MODEL} and {IMPORTED_MODEL} should wait for approval; waiting: {sorted(models)}")
    ctx.say("waiting for approval, the platform-trained version next to the imported one:")
    ctx.say(render_approvals(pending.body))


def import_steps() -> list[tuple[str, Any]]:
    name = f"a notebook trains a pipeline in-process and imports it as {IMPORTED_MODEL!r} through the client"
    return [(name, step_import)]
