"""Governance on the local cloud (the real template): after spec, contract, the demo's wine upload,
approval and a prediction, the audit trail lists the actions in order with identities, lineage
resolves down to the uploaded object's version id and sha256, explain works from the prediction's
request id, retiring production is a 409, retiring a rejected version works and it reproduces; the
model gets its own alarms when promoted and loses them when its production version is withdrawn."""

from __future__ import annotations

import hashlib
import io
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from infra import constants as c
from stepwise.cli import main
from stepwise.commands.data import put_contract, upload
from stepwise.demo_data import write_demo_files
from stepwise.demo_lifecycle import wine_spec
from stepwise.demo_shared import MODEL, SPEC_NAME
from stepwise.local.session import LocalSession
from stepwise.target import Target
from tests.e2e.test_lifecycle_e2e import wait_for

pytestmark = pytest.mark.slow


def _status(local: Target, version: int) -> str:
    reply = local.api("GET", f"/v1/models/{MODEL}/versions/{version}")
    return str(reply.body.get("status", "")) if reply.ok else ""


def _pending(local: Target, version: int) -> bool:
    return any(a["version"] == version for a in local.api("GET", "/v1/approvals").body.get("approvals", []))


def _flush_captures(session: LocalSession) -> None:
    """The inference function's buffer, flushed as its runtime's shutdown would."""
    (runtime,) = [
        fn
        for fn in session.cloud.router.functions.values()  # type: ignore[attr-defined]
        if fn.handler == "functions.handlers.predict.lambda_handler"
    ]
    with runtime._execution_environment():
        sys.modules["functions.handlers.predict"]._flush_on_exit()


def test_governance_audit_lineage_explain_retire(
    local: Target,
    local_session: LocalSession,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    endpoint = ["--endpoint", local_session.api.url] if local_session.api else []
    # Given the spec, the wine contract naming it, and the demo's good wine file uploaded
    assert local.api("PUT", f"/v1/specs/{SPEC_NAME}", wine_spec()).status == 201
    files = write_demo_files(tmp_path, training_spec=SPEC_NAME)
    put_contract(local, files.dataset, files.contract)
    uploaded = upload(local, files.good, files.dataset, timeout=120)
    assert uploaded.passed and uploaded.version is not None, uploaded.report
    # When version 1 waits for approval and alice approves it
    wait_for(lambda: _pending(local, 1))
    reply = local.api("POST", f"/v1/approvals/{MODEL}-1/approve", {"reason": "gates pass"}, identity="alice")
    assert reply.status == 200, reply.body
    wait_for(lambda: _status(local, 1) == "PRODUCTION")
    # Then the model got its own alarms in the local cloud's CloudWatch, to the alarm topic
    wait_for(lambda: len(_model_alarms(local)) == len(MODEL_ALARM_KINDS))
    assert set(_model_alarms(local)) == {f"{MODEL_ALARM_PREFIX}{k}" for k in MODEL_ALARM_KINDS}
    assert all(a["AlarmActions"] == [local.output(c.OUT_ALARM_TOPIC_ARN)] for a in _model_alarms(local).values())
    # And a prediction is served
    row = {k: v for k, v in _first_row(files.good).items() if k not in ("id", "label")}
    predicted = local.api("POST", f"/v1/models/{MODEL}/predict", {"instances": [row], "request_id": "gov-req-1"})
    assert predicted.status == 200 and predicted.body["version"] == 1, predicted.body
    _flush_captures(local_session)

    # Then the audit trail lists the actions in order, each with an identity
    reply = local.api("GET", f"/v1/audit?model={MODEL}")
    assert reply.ok, reply.body
    events = reply.body["events"]
    actions = [e["action"] for e in events]
    assert all(e["who"] for e in events)
    order = ["version.register", "approval.request", "version.approve", "approval.decide", "version.promote"]
    assert [a for a in actions if a in order] == order, actions
    decided = next(e for e in events if e["action"] == "approval.decide")
    assert decided["who"].endswith("user/alice") and decided["reason"] == "gates pass"
    assert next(e for e in events if e["action"] == "version.register")["who"].startswith("workflow:")
    assert main([*endpoint, "audit", MODEL]) == 0
    assert "approval.decide" in capsys.readouterr().out
    datasets = local.api("GET", "/v1/audit?target=dataset/wine").body["events"]
    assert [e["action"] for e in datasets] == ["dataset.version.create"]

    # And lineage resolves every link down to the uploaded object's version id and sha256
    lineage = local.api("GET", f"/v1/models/{MODEL}/versions/1/lineage").body
    assert lineage["missing"] == [], lineage["missing"]
    ds = lineage["dataset"]
    assert ds["source_version_id"] == uploaded.version_id and ds["source_version_id"]
    assert ds["sha256"] == hashlib.sha256(files.good.read_bytes()).hexdigest()
    assert ds["version_id"] and ds["report_verdict"] == "passed"
    assert lineage["run"]["execution_arn"] and lineage["run"]["seed"] == 7
    assert lineage["approval"]["who"].endswith("user/alice")
    assert lineage["production_periods"][0]["promoted_by"]
    assert main([*endpoint, "lineage", MODEL, "1"]) == 0
    assert ds["sha256"] in capsys.readouterr().out

    # And explain finds the version from the prediction's request id
    explained = local.api("GET", f"/v1/explain/{predicted.body['request_id']}?model={MODEL}").body
    assert (explained["model"], explained["version"], explained["matches"]) == (MODEL, 1, 1), explained
    assert main([*endpoint, "explain", predicted.body["request_id"], "--model", MODEL]) == 0
    assert f"answered by {MODEL} version 1" in capsys.readouterr().out

    # When production is retired: 409 and nothing changes
    before = local.api("GET", "/v1/models").body
    reply = local.api("POST", f"/v1/models/{MODEL}/versions/1/retire", {"reason": "old"}, identity="bob")
    assert reply.status == 409, reply.body
    assert local.api("GET", "/v1/models").body == before and _status(local, 1) == "PRODUCTION"

    # When a second upload trains version 2 and bob rejects it, then it is retired: RETIRED
    second = tmp_path / "wine-again.parquet"
    second.write_bytes(files.good.read_bytes())
    assert upload(local, second, files.dataset, timeout=120).passed
    wait_for(lambda: _pending(local, 2))
    assert local.api("POST", f"/v1/approvals/{MODEL}-2/reject", {"reason": "no"}, identity="bob").ok
    assert main([*endpoint, "--as", "bob", "retire", MODEL, "2", "--reason", "rejected, never served"]) == 0
    assert "RETIRED" in capsys.readouterr().out and _status(local, 2) == "RETIRED"
    assert local.api("GET", "/v1/models").body["models"][0]["production_version"] == 1
    card = local.api("GET", f"/v1/models/{MODEL}/versions/2/card").body
    assert "RETIRED" in card["markdown"]

    # And the audit trail is exported: the daily schedule (yesterday), and today's events on demand
    assert local_session.fire_schedules("DailyExport")
    today = datetime.now(UTC).date().isoformat()
    assert main([*endpoint, "audit", "--export", "--day", today]) == 0
    assert f"events of {today} exported to audit/dt={today}/" in capsys.readouterr().out
    archive = local.output(c.OUT_AUDIT_ARCHIVE_BUCKET)
    s3 = local.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=archive, Prefix=f"audit/dt={today}/").get("Contents", [])]
    table = pq.read_table(io.BytesIO(s3.get_object(Bucket=archive, Key=keys[-1])["Body"].read()))
    assert "approval.decide" in table.column("action").to_pylist()
    # (the archive's Object Lock is not checked here: moto's CloudFormation ignores the bucket's
    # ObjectLockConfiguration and the local cloud does not emulate it yet; tests/infra/test_governance.py
    # checks the template and tests/integration/test_audit_export.py the locked writes)

    # And the retired version reproduces inside the stack: identical holdout predictions from its
    # records, reported by the reproduce function's outcome, the request and result audited
    assert main([*endpoint, "--as", "carol", "reproduce", MODEL, "2"]) == 0
    assert "holdout predictions IDENTICAL" in capsys.readouterr().out
    done = local.api("GET", f"/v1/models/{MODEL}/versions/2/reproduce").body
    assert done["status"] == "SUCCEEDED" and done["requested_by"].endswith("user/carol"), done
    assert done["result"]["identical"] and done["result"]["holdout_rows"] > 0 and done["result"]["seed"] == 7
    audited = [e for e in local.api("GET", f"/v1/audit?model={MODEL}").body["events"] if e.get("version") == 2]
    assert [e["action"] for e in audited][-2:] == ["version.reproduce.request", "version.reproduce.result"]
    # And a version that was never reproduced has no outcome to read
    assert local.api("GET", f"/v1/models/{MODEL}/versions/1/reproduce").status == 404

    # When the production version is retired with withdraw, the model serves nothing and loses its alarms
    assert len(_model_alarms(local)) == len(MODEL_ALARM_KINDS)  # the 409 above changed nothing
    body = {"reason": "model withdrawn", "withdraw": True}
    reply = local.api("POST", f"/v1/models/{MODEL}/versions/1/retire", body, identity="bob")
    assert reply.status == 200 and reply.body["status"] == "RETIRED", reply.body
    assert local.api("GET", "/v1/models").body["models"][0]["production_version"] is None
    assert _model_alarms(local) == {}
    audited = [e for e in local.api("GET", f"/v1/audit?model={MODEL}").body["events"] if e["action"] == "model.alarms"]
    assert [bool(e["after"]["alarms"]) for e in audited] == [True, False]


MODEL_ALARM_PREFIX = f"{c.STACK_NAME}-model-{MODEL}-"
MODEL_ALARM_KINDS = ("drift", "errors", "latency", "performance", "lookups")


def _model_alarms(local: Target) -> dict[str, dict[str, Any]]:
    found = local.client("cloudwatch").describe_alarms(AlarmNamePrefix=MODEL_ALARM_PREFIX)["MetricAlarms"]
    return {a["AlarmName"]: a for a in found}


def _first_row(path: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    return pq.read_table(path).slice(0, 1).to_pylist()[0]  # type: ignore[no-any-return]


IMPORTED_MODEL = "wine-imported"
HAND_BUILT_MODEL = "wine-centroids"


def _wine_version(local: Target, tmp_path: Path) -> None:
    """The wine dataset version 1 (uploaded here when the test runs on its own)."""
    if not (local.api("GET", "/v1/datasets/wine/versions").body or {}).get("versions"):
        files = write_demo_files(tmp_path)
        put_contract(local, files.dataset, files.contract)
        assert upload(local, files.good, files.dataset, timeout=120).passed


def _approve_and_serve(local: Target, model: str) -> None:
    """The imported version 1 waits for approval with every gate passed; bob approves it and it
    goes to production."""
    assert _status_of(local, model, 1) == "PENDING_APPROVAL"
    version = local.api("GET", f"/v1/models/{model}/versions/1").body
    assert all(g["passed"] for g in version["gates"]), version["gates"]
    wait_for(lambda: any(a["model"] == model for a in local.api("GET", "/v1/approvals").body["approvals"]))
    reply = local.api("POST", f"/v1/approvals/{model}-1/approve", {"reason": "e2e"}, identity="bob")
    assert reply.ok, reply.body
    wait_for(lambda: _status_of(local, model, 1) == "PRODUCTION")


def test_import_of_a_notebook_pipeline_is_gated_approved_served_and_lineaged(
    local: Target, local_session: LocalSession, tmp_path: Path
) -> None:
    """A scikit-learn pipeline fitted outside the platform (not the spec's estimator), converted with
    skl2onnx and checked for parity by the notebook client's import_sklearn on the wine dataset
    version: it waits for approval, another identity approves it, it serves the local model's
    predictions over HTTP, and its lineage says imported with the artifact's sha256 (read through
    the client's typed reads)."""
    import dataclasses

    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from stepwise.client import Stepwise
    from stepwise.demo_data import wine_table

    # Given the wine dataset version
    _wine_version(local, tmp_path)
    # and a pipeline fitted in a notebook on the same rows
    table = wine_table()
    features = [n for n in table.column_names if n not in ("id", "region", "label")]
    frame = table.select(features).to_pandas()
    labels = table.column("label").to_numpy()
    pipeline = Pipeline(
        [("scale", ColumnTransformer([("num", StandardScaler(), features)])), ("lr", LogisticRegression(max_iter=500))]
    ).fit(frame, labels)

    # When alice imports it through the client (converted and checked on a sample) and waits for the run
    client = Stepwise(target=dataclasses.replace(local, identity="alice"))
    commit = "0123abcd"
    result = client.import_sklearn(
        pipeline,
        model=IMPORTED_MODEL,
        dataset="wine@1",
        sample=frame.sample(40, random_state=0),
        source_commit=commit,
        wait=True,
        timeout=240,
    )
    # Then version 1 passed its gates and waits for approval; bob approves and it goes to production
    assert result.version == 1
    _approve_and_serve(local, IMPORTED_MODEL)
    # And it serves the local pipeline's predictions over HTTP
    rows = frame.iloc[[0, 70, 150]]
    predicted = client.predict(IMPORTED_MODEL, rows)
    assert predicted.version == 1, predicted
    assert [str(p) for p in predicted.predictions] == [str(v) for v in pipeline.predict(rows)], predicted
    # And its lineage says imported, by alice, with the commit and the artifact's sha256
    run = client.lineage(IMPORTED_MODEL, 1).run
    assert run.source == "imported" and run.imported is not None, run
    assert run.imported.sha256 == result.sha256
    assert run.imported.source_commit == commit and run.imported.requested_by.endswith("alice")
    assert IMPORTED_MODEL in {m.name for m in client.models()}
    assert [(v.version, v.status) for v in client.versions(IMPORTED_MODEL)] == [(1, "PRODUCTION")]


def _centroid_classifier(table: Any, features: list[str]) -> bytes:
    """A nearest-centroid classifier as a hand-built ONNX graph (onnx.helper, no converter): one
    float input per feature, Concat, standardization (Sub, Div) and an ai.onnx.ml LinearClassifier
    whose explicit weights score class k as mu_k.z - |mu_k|^2 / 2 (mu_k: the class's mean of the
    standardized features), softmaxed; outputs the label and the probabilities."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    x = np.column_stack([table.column(n).to_numpy() for n in features])
    y = table.column("label").to_numpy()
    mean, std = x.mean(axis=0), x.std(axis=0)
    z = (x - mean) / std
    classes = sorted(set(y.tolist()))
    centroids = np.stack([z[y == k].mean(axis=0) for k in classes])
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, 1]) for n in features]
    nodes = [
        helper.make_node("Concat", features, ["x"], axis=1),
        helper.make_node("Sub", ["x", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "std"], ["z"]),
        helper.make_node(
            "LinearClassifier",
            ["z"],
            ["label", "probabilities"],
            domain="ai.onnx.ml",
            coefficients=centroids.reshape(-1).tolist(),
            intercepts=(-(centroids**2).sum(axis=1) / 2).tolist(),
            classlabels_ints=classes,
            post_transform="SOFTMAX",
        ),
    ]
    initializers = [
        numpy_helper.from_array(mean.astype(np.float32), "mean"),
        numpy_helper.from_array(std.astype(np.float32), "std"),
    ]
    outputs = [
        helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
        helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, len(classes)]),
    ]
    graph = helper.make_graph(nodes, "wine_centroids", inputs, outputs, initializer=initializers)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    return bytes(helper.make_model(graph, opset_imports=opsets, ir_version=9).SerializeToString())


def test_import_of_a_hand_built_onnx_graph_is_gated_approved_served_and_lineaged(
    local: Target, local_session: LocalSession, tmp_path: Path
) -> None:
    """A model no scikit-learn converter produced (a hand-built ONNX graph with explicit weights)
    imported on the wine dataset version: it passes its gates, waits for approval, bob approves it,
    it serves ONNX Runtime's local predictions on the same rows over HTTP and its lineage says
    imported."""
    import dataclasses

    import numpy as np
    import onnxruntime as ort

    from stepwise.client import Stepwise
    from stepwise.demo_data import wine_table

    # Given the wine dataset version and a hand-built graph over its measurements
    _wine_version(local, tmp_path)
    table = wine_table()
    features = [n for n in table.column_names if n not in ("id", "region", "label")]
    content = _centroid_classifier(table, features)

    # When alice imports it through the client and waits for the run
    client = Stepwise(target=dataclasses.replace(local, identity="alice"))
    result = client.import_model(
        HAND_BUILT_MODEL,
        content,
        dataset="wine@1",
        task="classification",
        source_url="https://example.com/c",
        wait=True,
        timeout=240,
    )
    # Then it passed its gates, waits for approval, and goes to production once bob approves
    assert result.version == 1
    _approve_and_serve(local, HAND_BUILT_MODEL)
    # And it serves what ONNX Runtime answers locally on the same rows
    rows = table.select(features).take([0, 70, 150])
    session = ort.InferenceSession(content, providers=["CPUExecutionProvider"])
    feeds = {n: rows.column(n).to_numpy().astype(np.float32).reshape(-1, 1) for n in features}
    labels, probabilities = session.run(["label", "probabilities"], feeds)
    predicted = client.predict(HAND_BUILT_MODEL, rows.to_pylist())
    assert predicted.version == 1 and predicted.predictions == labels.tolist(), predicted
    assert predicted.probabilities is not None
    assert np.allclose(predicted.probabilities, probabilities, rtol=1e-6, atol=1e-7), predicted
    # And its lineage says imported, with the artifact's sha256 and the source given
    run = client.lineage(HAND_BUILT_MODEL, 1).run
    assert run.source == "imported" and run.imported is not None, run
    assert run.imported.sha256 == result.sha256 and run.imported.source_url == "https://example.com/c"


def _status_of(local: Target, model: str, version: int) -> str:
    reply = local.api("GET", f"/v1/models/{model}/versions/{version}")
    return str(reply.body.get("status", "")) if reply.ok else ""
