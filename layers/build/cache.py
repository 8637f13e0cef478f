"""The build cache under layers/.build: each build's directory is named by a key over the
flattened requirements, the target and this recipe (platform tags and slimming rules), so a build
is reused until one of them changes. Beside each build, <dir>.json (the manifest) records what was
resolved and slimmed and the unzipped size; its presence marks the build complete. Concurrent
builds of the same layer wait on <dir>.lock."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from layers.build import slimming
from layers.build.requirements import LAYERS, flatten_requirements, layer_names, requirements_file
from layers.build.target import DEFAULT_ARCH, PLATFORMS, TARGET_PYTHON, Target, local_target

BUILD = LAYERS / ".build"
LOCAL_BUILD = BUILD / "local"  # builds for this interpreter, used by the import tests only
RECIPE = "3"  # bump when the pip command changes in a way the platform tags and slimming rules do not show


def recipe_digest() -> str:
    """Changes whenever the platform tags or slimming rules change, invalidating cached builds."""
    rules = [sorted(slimming.SLIM_DIR_NAMES), slimming.SLIM_SUFFIXES, slimming.SLIM_GLOBS]
    recipe = json.dumps([RECIPE, PLATFORMS, *rules, sorted(slimming.BOTOCORE_SERVICES)])
    return hashlib.sha256(recipe.encode()).hexdigest()


def build_key(lines: Sequence[str], target: Target, extra: str = "") -> str:
    digest = hashlib.sha256()
    for part in (recipe_digest(), target.tag, "\n".join(lines), extra):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:12]


def layer_dir(name: str, target: Target | None = None, *, root: Path = LAYERS, build: Path = BUILD) -> Path:
    """The cache directory of a layer build (the layer's root: it holds python/)."""
    target = target or Target()
    lines = flatten_requirements(requirements_file(name, root))
    return build / f"{name}-{target.tag}-{build_key(lines, target)}"


def manifest_path(out: Path) -> Path:
    return out.with_name(out.name + ".json")


def read_manifest(out: Path) -> dict[str, Any]:
    return json.loads(manifest_path(out).read_text())


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def local_layer_dir(name: str, pins: dict[str, str], target: Target, lines: Sequence[str], build: Path = BUILD) -> Path:
    extra = json.dumps(pins, sort_keys=True)
    return build / "local" / f"{name}-{target.tag}-{build_key(lines, target, extra)}"


def current_builds(python: str = TARGET_PYTHON, root: Path = LAYERS, build: Path = BUILD) -> list[Path]:
    """The cache directories the current requirements and recipe use: each layer on each
    architecture, and the local (import-test) build of each Lambda build that exists."""
    current = []
    for name in layer_names(root):
        lines = flatten_requirements(requirements_file(name, root))
        for arch in PLATFORMS:
            out = layer_dir(name, Target(arch, python), root=root, build=build)
            current.append(out)
            if arch == DEFAULT_ARCH and manifest_path(out).is_file():
                pins = read_manifest(out)["packages"]
                current.append(local_layer_dir(name, pins, local_target(), lines, build))
    return current


def prune(keep: Sequence[Path], build: Path = BUILD) -> list[Path]:
    """Delete cached builds (and their manifests) other than `keep`; returns what went."""
    keep_names = {p.name for p in keep}
    gone = []
    for parent in (build, build / "local"):
        if not parent.is_dir():
            continue
        for path in parent.iterdir():
            if path.is_dir() and path.name != "local" and path.name not in keep_names and not path.name.startswith("."):
                shutil.rmtree(path, ignore_errors=True)
                manifest_path(path).unlink(missing_ok=True)
                path.with_name(path.name + ".lock").unlink(missing_ok=True)
                gone.append(path)
    return gone
