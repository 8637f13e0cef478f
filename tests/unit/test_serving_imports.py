"""The inference handler's import graph: ONNX Runtime, numpy, Powertools, pydantic and boto3 only."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

FORBIDDEN = ("sklearn", "scipy", "pyarrow", "pandas", "skl2onnx", "onnx", "skops", "joblib")


def test_serving_handler_imports_no_training_libraries() -> None:
    # Given a fresh interpreter; When it imports the inference handler
    code = "import json, sys; import functions.handlers.predict; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    modules = set(json.loads(done.stdout.strip().splitlines()[-1]))
    # Then it carries ONNX Runtime and numpy, and none of scikit-learn, scipy, pyarrow or their kin
    top_level = {m.split(".")[0] for m in modules}
    assert {"onnxruntime", "numpy", "pydantic", "aws_lambda_powertools", "boto3"} <= top_level
    assert sorted(top_level & set(FORBIDDEN)) == []


def test_batch_route_imports_nothing_the_api_functions_base_layer_lacks() -> None:
    # Given a fresh interpreter; When it imports the batch route (the API function's side of batch jobs)
    code = "import json, sys; import functions.handlers.routes.batch; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    top_level = {m.split(".")[0] for m in json.loads(done.stdout.strip().splitlines()[-1])}
    # Then neither the readers nor the scorer were loaded (the base layer has no pyarrow, numpy, ONNX Runtime)
    assert sorted(top_level & {"pyarrow", "numpy", "onnxruntime", *FORBIDDEN}) == []
