"""The layers' requirements against the real package index (pip, no install unless said).

`resolve` is pip's dry run for the Lambda platform: PyPI serves wheel metadata, so it downloads
little, and a success proves a wheel exists for every package on that target.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from layers.build.builder import build_layer, build_local_layer
from layers.build.cache import read_manifest
from layers.build.requirements import (
    flatten_requirements,
    image_names,
    layer_names,
    requirement_name,
    requirements_file,
    unpinned,
)
from layers.build.slimming import BOTOCORE_SERVICES
from layers.build.target import PLATFORMS, LayerBuildError, Target
from layers.build.wheels import resolve

ROOT = Path(__file__).resolve().parents[2]
CONFIGURED_ARCH = json.loads((ROOT / "cdk.json").read_text())["context"].get("stepwise:architecture", "arm64")
LAYERS = layer_names()


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]) -> Any:
    def emit(line: str) -> None:
        with capsys.disabled():
            print(line)

    return emit


def test_layers_exist() -> None:
    assert "base" in LAYERS


@pytest.mark.parametrize("name", LAYERS)
def test_layers_pin_every_requirement_exactly(name: str) -> None:
    # Given a layer's requirements (includes followed)
    lines = flatten_requirements(requirements_file(name))
    # Then each is an exact == pin, so a cached build and a fresh one hold the same releases
    assert lines, f"layer {name} has no requirements"
    assert not unpinned(lines), f"layer {name}: not pinned with ==: {unpinned(lines)}"


@pytest.mark.parametrize("name", LAYERS)
def test_layers_resolve_for_the_runtime_on_the_configured_architecture(name: str, report: Any) -> None:
    # Given a layer and the stack's configured architecture (cdk.json), Python 3.14
    lines = flatten_requirements(requirements_file(name))
    # When pip resolves it for that platform, wheels only
    resolution = resolve(lines, Target(CONFIGURED_ARCH))
    # Then every pinned package resolves (the other architecture is reported, not required)
    pinned = {requirement_name(line) for line in lines}
    assert pinned <= set(resolution.packages), pinned - set(resolution.packages)
    for other in sorted(set(PLATFORMS) - {CONFIGURED_ARCH}):
        try:
            resolve(lines, Target(other))
            report(f"\n{name}: resolves for {CONFIGURED_ARCH} and {other}")
        except LayerBuildError as exc:
            report(f"\n{name}: resolves for {CONFIGURED_ARCH} only; {other}: {exc}")


@pytest.mark.parametrize("name", image_names())
def test_layers_image_requirements_are_pinned_and_resolve_for_the_configured_architecture(name: str) -> None:
    """Container images (layers/<name>/Dockerfile) install with --only-binary on the Lambda base
    image at deploy time; a missing wheel would fail `cdk deploy`, so resolve it here first."""
    lines = flatten_requirements(requirements_file(name))
    assert not unpinned(lines), f"image {name}: not pinned with ==: {unpinned(lines)}"
    resolution = resolve(lines, Target(CONFIGURED_ARCH))
    assert {requirement_name(line) for line in lines} <= set(resolution.packages)


def test_layers_without_wheels_for_the_target_fail_with_the_package_named(tmp_path: Path) -> None:
    # Given a layer pinning a release that publishes no CPython 3.14 wheels
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "requirements.txt").write_text("numpy==1.26.4\n")
    # When it is built for the Lambda runtime
    with pytest.raises(LayerBuildError) as caught:
        build_layer("old", Target("arm64"), root=tmp_path, build=tmp_path / ".build")
    # Then the error names the layer, the package and the target, and says the other
    # architecture does not help either
    message = str(caught.value)
    assert "layer 'old'" in message
    assert "numpy==1.26.4" in message
    assert "arm64 / CPython 3.14" in message
    assert "does not resolve for x86_64 either" in message
    # And nothing is left looking like a finished build
    assert not list((tmp_path / ".build").glob("old-*.json"))


@pytest.mark.parametrize("name", LAYERS)
def test_layers_that_ship_botocore_ship_the_matching_boto3(name: str) -> None:
    # Given a layer's Lambda build
    packages = read_manifest(build_layer(name))["packages"]
    # Then if it carries botocore (which shadows the runtime's), it carries the boto3 of the same release line
    if "botocore" not in packages:
        pytest.skip(f"{name} does not carry botocore; the runtime's SDK is used")
    assert "boto3" in packages, f"{name} ships botocore {packages['botocore']} without boto3"
    assert packages["boto3"].split(".")[:2] == packages["botocore"].split(".")[:2], packages


def aws_services_called() -> dict[str, str]:
    """Literal service names passed to client()/resource() anywhere in functions/."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "functions").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and (getattr(node.func, "id", None) or getattr(node.func, "attr", None)) in {"client", "resource"}
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.setdefault(node.args[0].value, str(path.relative_to(ROOT)))
    return found


def test_layers_keep_the_models_of_every_aws_service_the_functions_call() -> None:
    # Given the AWS services functions/ creates clients for
    called = aws_services_called()
    # Then the slimmed layers keep their botocore models
    missing = {svc: where for svc, where in called.items() if svc not in BOTOCORE_SERVICES}
    assert not missing, f"add these to BOTOCORE_SERVICES in layers/build/slimming.py: {missing}"


def test_layers_kept_aws_service_models_load_from_the_slimmed_layer() -> None:
    # Given the base layer built for this interpreter with the Lambda build's pins and slimming
    layer = build_local_layer("base") / "python"
    # When boto3 creates a client for each kept service in an isolated interpreter
    code = (
        "import sys, json; sys.path[:0] = [sys.argv[1]]; import boto3\n"
        "for svc in json.loads(sys.argv[2]): boto3.client(svc, region_name='us-east-1')\n"
        "print(boto3.__file__)"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(layer), json.dumps(sorted(BOTOCORE_SERVICES))],
        capture_output=True,
        text=True,
        check=False,
        env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
    )
    # Then every one loads, from the layer
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().startswith(str(layer))
