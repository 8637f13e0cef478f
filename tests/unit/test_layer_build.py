"""layers/build/ without pip or the network: requirements, cache keys, slimming, error messages,
and reading a synthesized assembly. pip is replaced by a fake runner that plays its --report."""

from __future__ import annotations

import json
import re
import subprocess
import zipfile
from pathlib import Path

import pytest

from layers.build import builder, cache, packaging, requirements, slimming, wheels
from layers.build.target import LayerBuildError, Target


class FakePip:
    """Plays `pip install --report`: installs `wheels` (name -> {relative path: bytes}) into
    --target, unless a requested line is in `missing` (for the arch in `missing_arch`, or any)."""

    def __init__(
        self,
        wheels: dict[str, dict[str, bytes]] | None = None,
        missing: set[str] | None = None,
        missing_arch: str | None = None,
    ) -> None:
        self.wheels = wheels or {"demo": {"demo/__init__.py": b"x = 1\n"}}
        self.missing = missing or set()
        self.missing_arch = missing_arch
        self.calls: list[list[str]] = []

    def __call__(self, cmd: list[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(cmd)
        arg = {cmd[i]: cmd[i + 1] for i in range(len(cmd) - 1) if cmd[i].startswith("--")}
        lines = Path(arg["--requirement"]).read_text().split()
        platforms = [cmd[i + 1] for i, part in enumerate(cmd) if part == "--platform"]
        arch_missing = self.missing_arch is None or any(self.missing_arch in p for p in platforms)
        bad = [line for line in lines if line in self.missing and arch_missing]
        if bad:
            return subprocess.CompletedProcess(cmd, 1, "", f"ERROR: No matching distribution found for {bad[0]}")
        installs = []
        for line in lines:
            name = re.match(r"[A-Za-z0-9._-]+", line).group(0)  # type: ignore[union-attr]
            version = line.split("==", 1)[1] if "==" in line else "1.0"
            meta = {"name": name, "version": version}
            installs.append({"metadata": meta, "download_info": {"url": f"https://x/{name}.whl"}})
            if "--dry-run" not in cmd:
                for rel, data in self.wheels.get(name, {}).items():
                    path = Path(arg["--target"]) / rel
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(data)
        Path(arg["--report"]).write_text(json.dumps({"install": installs}))
        return subprocess.CompletedProcess(cmd, 0, "", "")


def make_layer(root: Path, name: str, text: str) -> None:
    (root / name).mkdir(parents=True, exist_ok=True)
    (root / name / "requirements.txt").write_text(text)


# -- requirements ---------------------------------------------------------------------------
def test_flatten_requirements_follows_includes_and_drops_comments(tmp_path: Path) -> None:
    # Given a layer including a shared file
    make_layer(tmp_path, "common", "# shared\npydantic==2.14.4  # models\n")
    make_layer(tmp_path, "data", "-r ../common/requirements.txt\n\npyarrow==26.0.1\n")
    # When flattened
    lines = requirements.flatten_requirements(tmp_path / "data" / "requirements.txt")
    # Then the include's lines come first, comments and blanks gone
    assert lines == ["pydantic==2.14.4", "pyarrow==26.0.1"]


def test_flatten_requirements_refuses_an_include_cycle(tmp_path: Path) -> None:
    make_layer(tmp_path, "a", "-r ../b/requirements.txt\n")
    make_layer(tmp_path, "b", "-r ../a/requirements.txt\n")
    with pytest.raises(LayerBuildError, match="cycle"):
        requirements.flatten_requirements(tmp_path / "a" / "requirements.txt")


@pytest.mark.parametrize(
    ("line", "version"),
    [
        ("numpy==2.4.6", "2.4.6"),
        ("aws-lambda-powertools[tracer]==3.37.0", "3.37.0"),
        ("numpy == 2.4.6 ; python_version >= '3.11'", "2.4.6"),
        ("numpy>=2", None),
        ("numpy", None),
        ("numpy==2.*", None),
    ],
)
def test_pinned_version_accepts_only_exact_pins(line: str, version: str | None) -> None:
    assert requirements.pinned_version(line) == version


def test_requirement_name_is_canonical() -> None:
    assert requirements.requirement_name("Typing_Extensions[x]==4.1") == "typing-extensions"


def test_layer_names_lists_directories_with_requirements_but_no_dockerfile(tmp_path: Path) -> None:
    make_layer(tmp_path, "base", "a==1\n")
    (tmp_path / "empty").mkdir()
    make_layer(tmp_path, ".build", "a==1\n")
    make_layer(tmp_path, "training", "a==1\n")
    (tmp_path / "training" / "Dockerfile").write_text("FROM scratch\n")
    assert requirements.layer_names(tmp_path) == ["base"]
    assert requirements.image_names(tmp_path) == ["training"]


# -- targets and cache keys -----------------------------------------------------------------
def test_target_rejects_unknown_architecture_and_python() -> None:
    with pytest.raises(ValueError, match="architecture"):
        Target("sparc")
    with pytest.raises(ValueError, match="python"):
        Target("arm64", "3")


def test_target_platform_tags_cover_manylinux_2_28_and_2014() -> None:
    assert Target("arm64").platforms == ("manylinux_2_28_aarch64", "manylinux2014_aarch64")
    assert Target("x86_64", "3.14").tag == "x86_64-py314"


def test_build_key_changes_with_requirements_target_and_pins() -> None:
    base = cache.build_key(["a==1"], Target("arm64"))
    assert base == cache.build_key(["a==1"], Target("arm64"))
    assert base != cache.build_key(["a==2"], Target("arm64"))
    assert base != cache.build_key(["a==1"], Target("x86_64"))
    assert base != cache.build_key(["a==1"], Target("arm64", "3.13"))
    assert base != cache.build_key(["a==1"], Target("arm64"), extra='{"a": "1"}')


def test_pip_command_targets_the_lambda_platform_with_wheels_only(tmp_path: Path) -> None:
    cmd = wheels.pip_command(tmp_path / "r.txt", Target("arm64"), tmp_path / "t", report=tmp_path / "r.json")
    assert "--only-binary=:all:" in cmd
    assert cmd[cmd.index("--python-version") + 1] == "3.14"
    assert [cmd[i + 1] for i, p in enumerate(cmd) if p == "--platform"] == list(Target("arm64").platforms)
    assert "--dry-run" not in cmd


# -- building -------------------------------------------------------------------------------
def test_build_layer_installs_slims_records_and_reuses_the_cache(tmp_path: Path) -> None:
    # Given a layer and a pip that installs a package with its tests and stubs
    make_layer(tmp_path, "demo", "demo==1.0\n")
    pip = FakePip({"demo": {"demo/__init__.py": b"x = 1\n", "demo/tests/test_x.py": b"", "demo/x.pyi": b""}})
    # When it is built twice
    out = builder.build_layer("demo", Target("arm64"), root=tmp_path, build=tmp_path / ".build", runner=pip)
    again = builder.build_layer("demo", Target("arm64"), root=tmp_path, build=tmp_path / ".build", runner=pip)
    # Then pip ran once, the layer holds python/ only, slimmed, with a manifest beside it
    assert again == out
    assert len(pip.calls) == 1
    assert sorted(p.name for p in out.iterdir()) == ["python"]
    assert (out / "python" / "demo" / "__init__.py").is_file()
    assert not (out / "python" / "demo" / "tests").exists()
    assert not (out / "python" / "demo" / "x.pyi").exists()
    manifest = cache.read_manifest(out)
    assert manifest["packages"] == {"demo": "1.0"}
    assert manifest["target"]["arch"] == "arm64"
    assert manifest["slimmed"]["files"] == 2
    assert manifest["size_bytes"] == 6


def test_build_layer_accepts_an_architecture_name(tmp_path: Path) -> None:
    make_layer(tmp_path, "demo", "demo==1.0\n")
    out = builder.build_layer("demo", "x86_64", "3.14", root=tmp_path, build=tmp_path / ".build", runner=FakePip())
    assert out.name.startswith("demo-x86_64-py314-")


def test_build_layer_without_wheels_names_the_package_and_suggests_the_other_architecture(tmp_path: Path) -> None:
    # Given a package with no arm64 wheel but an x86_64 one
    make_layer(tmp_path, "demo", "demo==1.0\ngpu-only==2.0\n")
    pip = FakePip(missing={"gpu-only==2.0"}, missing_arch="aarch64")
    # When the layer is built for arm64
    with pytest.raises(LayerBuildError) as caught:
        builder.build_layer("demo", Target("arm64"), root=tmp_path, build=tmp_path / ".build", runner=pip)
    # Then the error names the package and the stack setting that would work
    message = str(caught.value)
    assert "gpu-only==2.0" in message
    assert "demo==1.0" not in message.split("\n", 1)[1].split("It does")[0]
    assert "stepwise:architecture" in message and "x86_64" in message
    assert not list((tmp_path / ".build").glob("*.json"))


def test_build_layer_says_when_the_package_index_is_unreachable(tmp_path: Path) -> None:
    make_layer(tmp_path, "demo", "demo==1.0\n")

    def offline(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(cmd, 1, "", "WARNING: Retrying ... NewConnectionError('Failed')\nERROR: x")

    with pytest.raises(LayerBuildError, match="could not reach the package index"):
        builder.build_layer("demo", Target("arm64"), root=tmp_path, build=tmp_path / ".build", runner=offline)


def test_build_local_layer_pins_the_lambda_versions_and_caps_those_without_local_wheels(tmp_path: Path) -> None:
    # Given a Lambda build that resolved numpy 2.5.5, which has no wheel for the local interpreter
    make_layer(tmp_path, "demo", "numpy==2.5.5\ndemo==1.0\n")
    pip = FakePip(missing={"numpy==2.5.5"}, missing_arch="x86_64")
    builder.build_layer("demo", Target("arm64"), root=tmp_path, build=tmp_path / ".build", runner=pip)
    # When the local variant is built
    local = builder.build_local_layer(
        "demo", target=Target("x86_64", "3.11"), root=tmp_path, build=tmp_path / ".build", runner=pip
    )
    # Then numpy is capped at the Lambda version, the rest pinned, and the substitution recorded
    assert local.parent.name == "local"
    manifest = cache.read_manifest(local)
    assert manifest["substitutions"] == {"numpy": {"lambda": "2.5.5", "local": "1.0"}}
    assert manifest["target"] == {"arch": "x86_64", "python": "3.11", "platforms": list(Target("x86_64").platforms)}


def test_prune_keeps_the_current_builds_and_removes_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given current arm64 and local builds of a layer, and a stale build from older requirements
    for module in (builder, cache):
        monkeypatch.setattr(module, "local_target", lambda: Target("x86_64", "3.11"))
    make_layer(tmp_path, "demo", "demo==1.0\n")
    cache_dir = tmp_path / ".build"
    pip = FakePip()
    current = builder.build_layer("demo", Target("arm64"), root=tmp_path, build=cache_dir, runner=pip)
    local = builder.build_local_layer("demo", root=tmp_path, build=cache_dir, runner=pip)
    stale = cache_dir / "demo-arm64-py314-000000000000"
    (stale / "python").mkdir(parents=True)
    cache.manifest_path(stale).write_text("{}")
    # When pruned
    gone = cache.prune(cache.current_builds(root=tmp_path, build=cache_dir), build=cache_dir)
    # Then only the stale build went
    assert gone == [stale]
    assert current.is_dir() and local.is_dir()
    assert not cache.manifest_path(stale).exists()


# -- slimming -------------------------------------------------------------------------------
def test_slim_removes_what_nothing_imports_and_keeps_the_rest(tmp_path: Path) -> None:
    # Given an installed layer tree
    files = [
        "numpy/__init__.py",
        "numpy/_core/tests/test_a.py",
        "numpy/_core/include/numpy/x.h",
        "numpy/__pycache__/a.cpython-314.pyc",
        "numpy.libs/libopenblas.so",
        "numpy-2.4.6.dist-info/RECORD",
        "pyarrow/lib.cpython-314-aarch64-linux-gnu.so",
        "pyarrow/_flight.cpython-314-aarch64-linux-gnu.so",
        "pyarrow/libarrow_flight.so.2600",
        "pyarrow/lib.pyx",
        "botocore/data/s3/2006-03-01/service-2.json.gz",
        "botocore/data/ec2/2016-11-15/service-2.json.gz",
        "botocore/data/endpoints.json",
        "wrapt-stubs/__init__.pyi",
        "bin/f2py",
        "tests/__init__.py",
        "pydantic/py.typed",
    ]
    for rel in files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"12345")
    # When slimmed
    removed = slimming.slim(tmp_path)
    # Then only code a function can import, its libraries, metadata and kept service models remain
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == [
        "botocore/data/endpoints.json",
        "botocore/data/s3/2006-03-01/service-2.json.gz",
        "numpy-2.4.6.dist-info/RECORD",
        "numpy.libs/libopenblas.so",
        "numpy/__init__.py",
        "pyarrow/lib.cpython-314-aarch64-linux-gnu.so",
        "pydantic/py.typed",
        "tests/__init__.py",
    ]
    assert removed.files == len(files) - len(left)
    assert removed.bytes == 5 * removed.files
    # And no empty directory is left behind
    assert all(any(p.iterdir()) for p in tmp_path.rglob("*") if p.is_dir())


def test_slim_keeps_a_rule_matched_library_that_a_remaining_binary_loads(tmp_path: Path) -> None:
    # Given a library a slimming rule matches, named (NUL-terminated) by a binary that stays
    (tmp_path / "pyarrow").mkdir()
    (tmp_path / "pyarrow" / "lib.cpython-314-aarch64-linux-gnu.so").write_bytes(b"ELF..libarrow_flight.so.2600\0..")
    (tmp_path / "pyarrow" / "libarrow_flight.so.2600").write_bytes(b"ELF")
    (tmp_path / "pyarrow" / "libarrow_python_flight.so.2600").write_bytes(b"ELF")
    # When slimmed
    slimming.slim(tmp_path)
    # Then the loaded library stays and the unreferenced one goes
    assert (tmp_path / "pyarrow" / "libarrow_flight.so.2600").exists()
    assert not (tmp_path / "pyarrow" / "libarrow_python_flight.so.2600").exists()


def test_recipe_digest_follows_the_slimming_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    before = cache.recipe_digest()
    monkeypatch.setattr(slimming, "BOTOCORE_SERVICES", slimming.BOTOCORE_SERVICES | {"ec2"})
    assert cache.recipe_digest() != before


# -- reading a synthesized assembly ----------------------------------------------------------
def test_zip_functions_reads_code_and_layer_assets_of_each_function(tmp_path: Path) -> None:
    # Given an assembly with one zip function on one layer (a directory asset) and one image function
    (tmp_path / "asset.code" / "functions").mkdir(parents=True)
    (tmp_path / "asset.code" / "functions" / "a.py").write_bytes(b"x" * 100)
    with zipfile.ZipFile(tmp_path / "asset.layer.zip", "w") as archive:
        archive.writestr("python/big.bin", b"y" * 1000)
    template = {
        "Resources": {
            "LayerA": {"Type": "AWS::Lambda::LayerVersion", "Properties": {"Content": {"S3Key": "layer.zip"}}},
            "Fn": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Handler": "functions.handlers.predict.lambda_handler",
                    "Architectures": ["arm64"],
                    "Code": {"S3Key": "code.zip"},
                    "Layers": [{"Ref": "LayerA"}],
                    "Environment": {"Variables": {"A": "1", "B": {"Ref": "X"}}},
                },
            },
            "Img": {"Type": "AWS::Lambda::Function", "Properties": {"PackageType": "Image", "Code": {"ImageUri": "x"}}},
        }
    }
    assets = {
        "files": {
            "c": {
                "source": {"path": "asset.code"},
                "destinations": {"d": {"bucketName": "b", "objectKey": "code.zip"}},
            },
            "l": {
                "source": {"path": "asset.layer.zip"},
                "destinations": {"d": {"bucketName": "b", "objectKey": "layer.zip"}},
            },
        }
    }
    metadata = {
        "/S/A": [{"type": packaging.LAYER_METADATA, "data": "inference"}],
        "/S/A/Resource": [{"type": "aws:cdk:logicalId", "data": "LayerA"}],
    }
    manifest = {
        "artifacts": {
            "S.assets": {"type": "cdk:asset-manifest", "properties": {"file": "S.assets.json"}},
            "S": {"properties": {"templateFile": "S.template.json"}, "additionalMetadataFile": "S.metadata.json"},
        }
    }
    for name, data in [
        ("S.template.json", template),
        ("S.assets.json", assets),
        ("S.metadata.json", metadata),
        ("manifest.json", manifest),
    ]:
        (tmp_path / name).write_text(json.dumps(data))
    # When read
    functions, images = packaging.zip_functions(tmp_path, "S")
    # Then the zip function carries its code and named layer, and sizes are unzipped bytes
    assert images == ["Img"]
    [fn] = functions
    assert fn.handler_module == "functions.handlers.predict"
    assert fn.architecture == "arm64"
    assert [(layer.name, layer.size_bytes()) for layer in fn.layers] == [("inference", 1000)]
    assert fn.size_bytes() == 1100
