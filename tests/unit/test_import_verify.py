"""Verification of imported ONNX artifacts: real graphs from skl2onnx pass, hand-built bad ones
(onnx.helper) are each refused with the reason named."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from functions.logic.import_verify import STANDARD_OPSETS, verify_import
from functions.models.contracts import DataContract
from functions.models.errors import ImportRefused

CONTRACT = DataContract.model_validate(
    {
        "columns": [
            {"name": "amount", "type": "float"},
            {"name": "visits", "type": "int"},
            {"name": "segment", "type": "category", "categories": ["a", "b"]},
            {"name": "churned", "type": "int", "nullable": False},
        ],
        "target": "churned",
    }
)
MAX = 10 * 1024**2


def _verify(content: bytes, **overrides: Any) -> Any:
    args: dict[str, Any] = {
        "expected_sha256": hashlib.sha256(content).hexdigest(),
        "max_bytes": MAX,
        "contract": CONTRACT,
        "target": None,
        "task": "regression",
    }
    return verify_import(content, **{**args, **overrides})


def _refusal(content: bytes, **overrides: Any) -> ImportRefused:
    with pytest.raises(ImportRefused) as caught:
        _verify(content, **overrides)
    return caught.value


def _sklearn_pipeline() -> bytes:
    rng = np.random.default_rng(0)
    import pandas as pd

    frame = pd.DataFrame(
        {
            "amount": rng.normal(size=60).astype(np.float32),
            "visits": rng.integers(0, 9, 60).astype(np.float32),
            "segment": rng.choice(["a", "b"], 60),
        }
    )
    label = (frame["amount"] > 0).astype(int)
    pipeline = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [("num", StandardScaler(), ["amount", "visits"]), ("cat", OneHotEncoder(), ["segment"])]
                ),
            ),
            ("clf", LogisticRegression()),
        ]
    ).fit(frame, label)
    inputs = [
        ("amount", FloatTensorType([None, 1])),
        ("visits", FloatTensorType([None, 1])),
        ("segment", StringTensorType([None, 1])),
    ]
    onx = convert_sklearn(pipeline, initial_types=inputs, options={id(pipeline): {"zipmap": False}})
    return bytes(onx.SerializeToString())


def _graph(
    *,
    inputs: list[tuple[str, int, list[Any]]] | None = None,
    node_domain: str = "",
    opsets: list[tuple[str, int]] | None = None,
    initializer: onnx.TensorProto | None = None,
) -> bytes:
    """A hand-built graph: y = first input (+ the initializer when given)."""
    inputs = inputs or [("amount", TensorProto.FLOAT, [None, 1])]
    values = [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs]
    out = helper.make_tensor_value_info("y", inputs[0][1], [None, 1])
    if initializer is not None:
        nodes = [helper.make_node("Add", [inputs[0][0], initializer.name], ["y"], domain=node_domain)]
    else:
        nodes = [helper.make_node("Identity", [inputs[0][0]], ["y"], domain=node_domain)]
    graph = helper.make_graph(nodes, "g", values, [out], initializer=[initializer] if initializer else None)
    ops = [helper.make_opsetid(d, v) for d, v in (opsets or [("", 17)])]
    return bytes(helper.make_model(graph, opset_imports=ops, ir_version=9).SerializeToString())


def test_import_verify_accepts_a_real_skl2onnx_pipeline_and_names_its_features() -> None:
    # Given a scikit-learn pipeline converted by skl2onnx with one input per contract column
    content = _sklearn_pipeline()
    # When it is verified as a classifier
    found = _verify(content, task="classification")
    # Then it passes, its features are the contract's columns it takes, in contract order
    assert [f.name for f in found.features] == ["amount", "visits", "segment"]
    assert [f.type for f in found.features] == ["float", "int", "category"]
    assert found.sha256 == hashlib.sha256(content).hexdigest()
    assert found.size_bytes == len(content)
    assert len(found.outputs) == 2


def test_import_verify_accepts_a_hand_built_graph_at_the_highest_supported_opsets() -> None:
    # Given a non-scikit-learn graph importing both standard domains at the highest opsets listed
    content = _graph(opsets=[("", STANDARD_OPSETS[""]), ("ai.onnx.ml", STANDARD_OPSETS["ai.onnx.ml"])])
    # When it is verified; Then ONNX Runtime loads it and it passes
    assert [f.name for f in _verify(content).features] == ["amount"]


def test_import_verify_refuses_an_opset_above_what_the_runtime_loads() -> None:
    refusal = _refusal(_graph(opsets=[("", STANDARD_OPSETS[""] + 1)]))
    assert refusal.details[0]["field"] == "opset_import"
    assert f"opset {STANDARD_OPSETS[''] + 1}" in refusal.message


def test_import_verify_refuses_a_custom_operator_domain() -> None:
    # Given a graph whose node lives in a custom domain (and imports it)
    content = _graph(node_domain="com.example", opsets=[("", 17), ("com.example", 1)])
    # When it is verified; Then it is refused naming the domain and the operator
    refusal = _refusal(content)
    assert {d["field"] for d in refusal.details} == {"opset_import", "nodes"}
    assert "'com.example'" in refusal.message and "com.example:Identity" in refusal.message


def test_import_verify_refuses_external_data() -> None:
    # Given a graph whose initializer's data lives in a file beside the model
    weights = numpy_helper.from_array(np.ones((1, 1), dtype=np.float32), name="w")
    weights.ClearField("raw_data")
    weights.data_location = TensorProto.EXTERNAL
    entry = weights.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    # When it is verified; Then it is refused before anything loads it, naming the tensor
    refusal = _refusal(_graph(initializer=weights))
    assert refusal.details == [{"field": "external_data", "reason": "tensors refer to data outside the file: ['w']"}]


def test_import_verify_refuses_a_file_over_the_size_cap() -> None:
    content = _graph()
    refusal = _refusal(content, max_bytes=len(content) - 1)
    assert refusal.details[0]["field"] == "size" and "over the import size limit" in refusal.message


def test_import_verify_refuses_bytes_that_do_not_match_the_named_sha256() -> None:
    refusal = _refusal(_graph(), expected_sha256="0" * 64)
    assert refusal.details[0]["field"] == "sha256"


def test_import_verify_refuses_a_truncated_file() -> None:
    content = _sklearn_pipeline()
    refusal = _refusal(content[: len(content) // 2])
    assert refusal.details[0]["field"] in {"file", "graph", "runtime"}
    assert "refused" in refusal.message


def test_import_verify_refuses_a_file_that_is_not_onnx() -> None:
    refusal = _refusal(b"PAR1 this is a parquet file, not a model PAR1")
    assert refusal.details[0]["field"] == "file"


def test_import_verify_lists_every_input_that_does_not_match_the_contract() -> None:
    # Given a graph with an unknown input, the target as input, a string for a float column and a
    # two-column input
    content = _graph(
        inputs=[
            ("amount", TensorProto.STRING, [None, 1]),
            ("income", TensorProto.FLOAT, [None, 1]),
            ("churned", TensorProto.FLOAT, [None, 1]),
            ("visits", TensorProto.FLOAT, [None, 2]),
        ]
    )
    # When it is verified; Then one refusal names all four
    refusal = _refusal(content)
    by_field = {d["field"]: d["reason"] for d in refusal.details}
    assert set(by_field) == {"input 'amount'", "input 'income'", "input 'churned'", "input 'visits'"}
    assert "has type string" in by_field["input 'amount'"]
    assert "not a column" in by_field["input 'income'"]
    assert "target" in by_field["input 'churned'"]
    assert "has shape ['?', 2]" in by_field["input 'visits'"]


def test_import_verify_refuses_a_regressor_shaped_graph_imported_as_a_classifier() -> None:
    refusal = _refusal(_graph(), task="classification")
    assert refusal.details[0]["field"] == "outputs"


def _linear_classifier(labels: list[int], zipmap: bool = False) -> bytes:
    """A hand-built ai.onnx.ml LinearClassifier over `amount`, declaring `labels` in its
    probability order (optionally keyed by a ZipMap, as skl2onnx's default output is)."""
    n = len(labels)
    amount = helper.make_tensor_value_info("amount", TensorProto.FLOAT, [None, 1])
    label = helper.make_tensor_value_info("label", TensorProto.INT64, [None])
    linear = helper.make_node(
        "LinearClassifier",
        ["amount"],
        ["label", "scores"],
        domain="ai.onnx.ml",
        coefficients=[float(i) for i in range(n)],
        intercepts=[0.0] * n,
        classlabels_ints=labels,
        post_transform="SOFTMAX",
    )
    nodes = [linear]
    if zipmap:
        nodes.append(
            helper.make_node("ZipMap", ["scores"], ["probabilities"], domain="ai.onnx.ml", classlabels_int64s=labels)
        )
        probabilities = helper.make_value_info(
            "probabilities",
            helper.make_sequence_type_proto(
                helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, []))
            ),
        )
    else:
        probabilities = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, n])
    graph = helper.make_graph(nodes, "linear", [amount], [label, probabilities])
    ops = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    return bytes(helper.make_model(graph, opset_imports=ops, ir_version=9).SerializeToString())


@pytest.mark.parametrize("zipmap", [False, True], ids=["classifier-node", "zipmap"])
def test_import_verify_checks_the_graphs_class_labels_against_the_target_classes(zipmap: bool) -> None:
    # Given a classifier whose graph declares the dataset's classes in the platform's order
    found = _verify(_linear_classifier([0, 1, 2], zipmap), task="classification", classes=["0", "1", "2"])
    # Then it passes and the labels it declares are reported
    assert found.class_labels == ["0", "1", "2"]
    # Given the same classes reordered: its probability columns would be read against the wrong classes
    refusal = _refusal(_linear_classifier([1, 0, 2], zipmap), task="classification", classes=["0", "1", "2"])
    # Then it is refused with the reason, naming both orders
    assert refusal.details == [
        {
            "field": "class_labels",
            "reason": "the graph's class labels ['1', '0', '2'] are not the dataset's target classes "
            "['0', '1', '2'] in that order: its probabilities would be read against the wrong classes",
        }
    ]


def test_import_verify_refuses_class_labels_that_are_not_the_target_classes() -> None:
    refusal = _refusal(_linear_classifier([0, 1, 7]), task="classification", classes=["0", "1", "2"])
    assert refusal.details[0]["field"] == "class_labels"
    assert refusal.details[0]["reason"].endswith("missing ['2'], not classes of the dataset ['7']")
