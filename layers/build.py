"""Build Lambda layers with pip for the Lambda platform, never in a container.

    python -m layers.build                      # every layer, for arm64 / Python 3.14
    python -m layers.build inference --arch x86_64
    python -m layers.build --check              # do wheels exist for every pinned package? (no install)
    python -m layers.build --local              # the same pins for this interpreter (import tests)
    python -m layers.build --prune              # delete cached builds no longer current
    python -m layers.build --sizes cdk.out      # each zip function's unzipped code + layers, after a synth

A layer is a directory layers/<name>/ holding a pinned requirements.txt (`-r other.txt` includes
are followed); a directory that also holds a Dockerfile is a container image context (e.g.
layers/training), not a layer: `--check` resolves its pins, nothing builds it here. pip installs
a layer with `--only-binary=:all: --platform manylinux_2_28_<cpu> --platform manylinux2014_<cpu>
--implementation cp --python-version <runtime>` into
layers/.build/<name>-<arch>-py<ver>-<hash>/python; Lambda's Amazon Linux 2023 has glibc 2.34, so
manylinux_2_28 wheels run there. The hash covers the flattened requirements, the target and this
recipe (platform tags and slimming rules), so a build is reused until one of them changes.
Concurrent builds of the same layer (several synths at once) wait on a file lock.

After pip, the layer is slimmed (see SLIM_* and BOTOCORE_SERVICES); a rule-matched shared
library that a remaining binary still loads is kept. Slimming is only trusted because
tests/infra/test_packaging.py (test_packaging_each_function_imports_everything_from_its_own_layers)
builds the same pins with the same slimming for the local interpreter and imports, in an isolated
interpreter, every module each function's handler uses from its code and layers alone.

Beside each build, <dir>.json records what was resolved (package versions, wheel files), what
slimming removed, and the unzipped size; its presence marks the build complete.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LAYERS = Path(__file__).resolve().parent
BUILD = LAYERS / ".build"
LOCAL_BUILD = BUILD / "local"  # builds for this interpreter, used by the import tests only

TARGET_PYTHON = "3.14"  # infra/constructs/function.py RUNTIME (PYTHON_3_14)
DEFAULT_ARCH = "arm64"
LAYER_METADATA = "stepwise:layer"  # construct metadata on each LayerVersion: the layer's name
RECIPE = "3"  # bump when the pip command changes in a way the rules below do not show

PLATFORMS = {
    # Amazon Linux 2023 has glibc 2.34: manylinux_2_28 wheels run; manylinux2014 (glibc 2.17) too.
    "arm64": ("manylinux_2_28_aarch64", "manylinux2014_aarch64"),
    "x86_64": ("manylinux_2_28_x86_64", "manylinux2014_x86_64"),
}

# -- slimming -------------------------------------------------------------------------------
# Directory names removed anywhere below a top-level package (never a top-level package itself).
SLIM_DIR_NAMES = frozenset({"__pycache__", "tests"})
# File suffixes nothing imports at run time: type stubs, Cython sources, C/C++ headers and sources,
# static libraries.
SLIM_SUFFIXES = (".pyi", ".pxd", ".pxi", ".pyx", ".h", ".hpp", ".c", ".cc", ".cpp", ".a")
# Paths (globs relative to python/) removed with the reason they are unused by our functions.
SLIM_GLOBS: tuple[tuple[str, str], ...] = (
    ("bin", "console scripts; their shebang names the build machine's interpreter"),
    ("*-stubs", "type-stub-only packages"),
    ("numpy/_core/include", "C headers for building extensions"),
    ("numpy/_core/lib", "npymath static library and pkg-config files for building extensions"),
    ("pyarrow/include", "C++ headers for building extensions"),
    ("pyarrow/src", "C++ sources for building extensions"),
    ("pyarrow/_flight*.so", "Arrow Flight RPC: not used"),
    ("pyarrow/flight.py", "Arrow Flight RPC: not used"),
    ("pyarrow/libarrow_flight.so*", "Arrow Flight RPC: not used"),
    ("pyarrow/libarrow_python_flight.so*", "Arrow Flight RPC: not used"),
    ("pyarrow/_substrait*.so", "Substrait query plans: not used"),
    ("pyarrow/substrait.py", "Substrait query plans: not used"),
    ("pyarrow/_pyarrow_cpp_tests*.so", "Arrow's C++ test harness"),
    # Wheels cannot hold symlinks, so a library can ship three times: libX.so (link-time name),
    # libX.so.2600 (the SONAME the extension modules load) and libX.so.2600.1.0 (the real name).
    ("pyarrow/libarrow_python.so", "link-time copy of libarrow_python.so.<soversion>"),
    ("pyarrow/libarrow_python.so.*.*.*", "full-version copy of libarrow_python.so.<soversion>"),
    ("pyarrow/libarrow_python_parquet_encryption.so", "link-time copy of the .so.<soversion>"),
    ("pyarrow/libarrow_python_parquet_encryption.so.*.*.*", "full-version copy of the .so.<soversion>"),
    ("onnxruntime/transformers", "transformer-model optimisation tools: offline, not inference"),
    ("onnxruntime/quantization", "model quantisation tools: offline, not inference"),
    ("onnxruntime/tools", "model conversion and inspection tools: offline, not inference"),
    ("onnxruntime/datasets", "sample models"),
)

# botocore's service models (botocore/data/<service>/) are 28 MB; a layer keeps those of the
# services our functions and Powertools call. tests/infra/test_layers.py fails, naming
# the service, when functions/ calls client("x") or resource("x") for a service not listed here.
BOTOCORE_SERVICES = frozenset(
    {
        "cloudwatch",
        "dynamodb",
        "dynamodbstreams",
        "events",
        "kms",
        "lambda",
        "logs",
        "s3",
        "sagemaker",
        "sagemaker-runtime",
        "secretsmanager",
        "sns",
        "sqs",
        "ssm",
        "stepfunctions",
        "sts",
        "xray",
        "appconfigdata",
    }
)


class LayerBuildError(RuntimeError):
    """A layer cannot be built for its target; the message says why and what to change."""


@dataclass(frozen=True)
class Target:
    """Where a layer runs: CPU architecture (Lambda's names) and CPython version."""

    arch: str = DEFAULT_ARCH
    python: str = TARGET_PYTHON

    def __post_init__(self) -> None:
        if self.arch not in PLATFORMS:
            raise ValueError(f"unknown architecture {self.arch!r}; choose one of {sorted(PLATFORMS)}")
        if not re.fullmatch(r"3\.\d+", self.python):
            raise ValueError(f"python version must look like 3.14, got {self.python!r}")

    @property
    def tag(self) -> str:
        return f"{self.arch}-py{self.python.replace('.', '')}"

    @property
    def platforms(self) -> tuple[str, ...]:
        return PLATFORMS[self.arch]

    @property
    def abi(self) -> str:
        return f"cp{self.python.replace('.', '')}"

    def describe(self) -> str:
        return f"{self.arch} / CPython {self.python} ({', '.join(self.platforms)})"


def local_target() -> Target:
    """This interpreter and CPU, for builds the local tests can import."""
    machine = platform.machine().lower()
    arch = {"aarch64": "arm64", "arm64": "arm64", "x86_64": "x86_64", "amd64": "x86_64"}.get(machine)
    if arch is None:
        raise LayerBuildError(f"no Lambda architecture matches this machine ({machine})")
    return Target(arch, f"{sys.version_info.major}.{sys.version_info.minor}")


# -- requirements ---------------------------------------------------------------------------
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def layer_names(root: Path = LAYERS) -> list[str]:
    """Every layer: each directory of `root` with a requirements.txt and no Dockerfile."""
    return sorted(
        p.parent.name
        for p in root.glob("*/requirements.txt")
        if not p.parent.name.startswith(".") and not (p.parent / "Dockerfile").exists()
    )


def image_names(root: Path = LAYERS) -> list[str]:
    """Container image contexts kept beside the layers: directories with a Dockerfile and a
    requirements.txt (e.g. layers/training). They are not layers; `--check` resolves their pins."""
    return sorted(p.parent.name for p in root.glob("*/Dockerfile") if (p.parent / "requirements.txt").is_file())


def requirements_file(name: str, root: Path = LAYERS) -> Path:
    path = root / name / "requirements.txt"
    if not path.is_file():
        raise FileNotFoundError(f"layer {name!r} has no requirements file at {path}")
    return path


def flatten_requirements(path: Path, _seen: frozenset[Path] = frozenset()) -> list[str]:
    """The requirement lines of `path` with `-r` includes followed and comments dropped."""
    path = path.resolve()
    if path in _seen:
        raise LayerBuildError(f"requirements include cycle at {path}")
    lines: list[str] = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        include = re.match(r"^(?:-r|--requirement)\s*=?\s*(\S+)$", line)
        if include:
            lines += flatten_requirements(path.parent / include.group(1), _seen | {path})
        elif line.startswith("-"):
            raise LayerBuildError(f"{path}: only requirement lines and -r includes are supported, got {line!r}")
        else:
            lines.append(line)
    return lines


def requirement_name(line: str) -> str:
    match = _NAME.match(line)
    if not match:
        raise LayerBuildError(f"cannot read a package name from requirement {line!r}")
    return canonical(match.group(1))


def pinned_version(line: str) -> str | None:
    """The version of an exact `==` pin (extras and markers allowed), else None."""
    spec = line.split(";", 1)[0]
    match = re.fullmatch(r"\s*[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?\s*==\s*([A-Za-z0-9.+!-]+)\s*", spec)
    return match.group(2) if match else None


def unpinned(lines: Sequence[str]) -> list[str]:
    """Requirement lines that are not exact `==` pins."""
    return [line for line in lines if pinned_version(line) is None]


# -- cache keys and paths -------------------------------------------------------------------
def recipe_digest() -> str:
    """Changes whenever the platform tags or slimming rules change, invalidating cached builds."""
    recipe = json.dumps(
        [RECIPE, PLATFORMS, sorted(SLIM_DIR_NAMES), SLIM_SUFFIXES, SLIM_GLOBS, sorted(BOTOCORE_SERVICES)]
    )
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


# -- pip ------------------------------------------------------------------------------------
Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


def run_pip(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def pip_command(
    requirements: Path,
    target: Target,
    dest: Path,
    *,
    report: Path,
    dry_run: bool = False,
    constraints: Path | None = None,
    no_deps: bool = False,
) -> list[str]:
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--quiet"]
    cmd += ["--no-compile", "--only-binary=:all:", "--implementation", "cp", "--python-version", target.python]
    cmd += ["--abi", target.abi, "--abi", "abi3", "--abi", "none"]
    for plat in target.platforms:
        cmd += ["--platform", plat]
    cmd += ["--target", str(dest), "--report", str(report)]
    if dry_run:
        cmd += ["--dry-run", "--ignore-installed"]
    if constraints is not None:
        cmd += ["--constraint", str(constraints)]
    if no_deps:
        cmd += ["--no-deps"]
    cmd += ["--requirement", str(requirements)]
    return cmd


def _pip_errors(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in (proc.stderr or "").splitlines() if ln.strip() and not ln.startswith("WARNING: Location")]
    return "\n".join(lines[-12:])


@dataclass
class Resolution:
    """What pip chose for one set of requirements on one target."""

    packages: dict[str, str] = field(default_factory=dict)  # canonical name -> version
    wheels: list[str] = field(default_factory=list)


def _read_report(report: Path) -> Resolution:
    data = json.loads(report.read_text())
    res = Resolution()
    for item in data.get("install", []):
        res.packages[canonical(item["metadata"]["name"])] = item["metadata"]["version"]
        res.wheels.append(item["download_info"]["url"].rsplit("/", 1)[-1])
    res.wheels.sort()
    return res


def _write_lines(path: Path, lines: Sequence[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def missing_wheels(lines: Sequence[str], target: Target, *, runner: Runner = run_pip) -> dict[str, str]:
    """For each requirement line alone (no dependencies): pip's complaint when no wheel fits `target`."""
    missing: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="layer-check-") as tmp:
        for i, line in enumerate(lines):
            req = _write_lines(Path(tmp) / f"r{i}.txt", [line])
            cmd = pip_command(req, target, Path(tmp) / "t", report=Path(tmp) / f"r{i}.json", dry_run=True, no_deps=True)
            proc = runner(cmd)
            if proc.returncode != 0:
                missing[line] = _pip_errors(proc).splitlines()[-1] if _pip_errors(proc) else "no wheel"
    return missing


def resolve(lines: Sequence[str], target: Target, *, runner: Runner = run_pip) -> Resolution:
    """Resolve without installing (PyPI serves wheel metadata, so this downloads little).

    Raises LayerBuildError naming each requirement that has no wheel for the target.
    """
    with tempfile.TemporaryDirectory(prefix="layer-check-") as tmp:
        req = _write_lines(Path(tmp) / "requirements.txt", lines)
        report = Path(tmp) / "report.json"
        proc = runner(pip_command(req, target, Path(tmp) / "t", report=report, dry_run=True))
        if proc.returncode == 0:
            return _read_report(report)
        errors = _pip_errors(proc)
    raise LayerBuildError(_unresolvable_message(lines, target, errors, runner))


_NETWORK = re.compile(r"NewConnectionError|Temporary failure in name resolution|Network is unreachable|timed out", re.I)


def _unresolvable_message(lines: Sequence[str], target: Target, errors: str, runner: Runner) -> str:
    if _NETWORK.search(errors):
        return f"pip could not reach the package index while resolving for {target.describe()}:\n{errors}"
    missing = missing_wheels(lines, target, runner=runner)
    parts = [f"cannot resolve wheels for {target.describe()}:"]
    if missing:
        parts += [f"  {line}: {why}" for line, why in missing.items()]
    else:
        parts.append("  (every pinned package has a wheel; a dependency of one does not)")
        parts += ["  " + e for e in errors.splitlines()]
    return "\n".join(parts)


# -- building -------------------------------------------------------------------------------
def build_layer(
    name: str,
    target: Target | str | None = None,
    python: str = TARGET_PYTHON,
    *,
    root: Path = LAYERS,
    build: Path = BUILD,
    runner: Runner = run_pip,
) -> Path:
    """The layer's root (the directory holding python/), built for `target` when not cached.

    Raises LayerBuildError when pip finds no wheel for the target, naming the packages and, when
    the layer would resolve on the other architecture, saying so. `target` may be an
    architecture name, with `python` the runtime's version.
    """
    target = Target(target, python) if isinstance(target, str) else target or Target()
    lines = flatten_requirements(requirements_file(name, root))
    out = build / f"{name}-{target.tag}-{build_key(lines, target)}"
    return _build(out, name, lines, target, runner=runner, hint=_architecture_hint)


def build_local_layer(
    name: str,
    *,
    target: Target | None = None,
    root: Path = LAYERS,
    build: Path = BUILD,
    runner: Runner = run_pip,
) -> Path:
    """The same layer for this interpreter (default), for tests that import from it.

    Resolves with the Lambda build's exact versions as constraints, so the local copy holds the
    same releases. A release without a wheel for this interpreter (say, numpy dropping 3.11) is
    replaced by the newest release that has one, no newer than the pin; the manifest's
    `substitutions` names each such replacement.
    """
    lambda_build = build_layer(name, root=root, build=build, runner=runner)
    pins = read_manifest(lambda_build)["packages"]
    target = target or local_target()
    lines = flatten_requirements(requirements_file(name, root))
    return _build(local_layer_dir(name, pins, target, lines, build), name, lines, target, runner=runner, pins=pins)


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


def _build(
    out: Path,
    name: str,
    lines: list[str],
    target: Target,
    *,
    runner: Runner,
    hint: Callable[[list[str], Target, Runner], str] | None = None,
    pins: dict[str, str] | None = None,
) -> Path:
    if manifest_path(out).is_file() and (out / "python").is_dir():
        return out
    with locked(out.with_name(out.name + ".lock")):
        if manifest_path(out).is_file() and (out / "python").is_dir():
            return out  # another process built it while we waited
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            substitutions: dict[str, dict[str, str]] = {}
            install_lines, constraints = list(lines), None
            if pins is not None:
                install_lines, constraint_lines, substitutions = _local_pins(lines, pins, target, runner)
                constraints = _write_lines(tmp / "constraints.txt", constraint_lines)
            req = _write_lines(tmp / "requirements.txt", install_lines)
            report = tmp / "report.json"
            proc = runner(pip_command(req, target, tmp / "python", report=report, constraints=constraints))
            if proc.returncode != 0:
                message = f"layer {name!r}: " + _unresolvable_message(install_lines, target, _pip_errors(proc), runner)
                if hint is not None and not _NETWORK.search(message):
                    message += hint(install_lines, target, runner)
                raise LayerBuildError(message)
            resolution = _read_report(report)
            for pkg, sub in substitutions.items():
                sub["local"] = resolution.packages.get(pkg, "not installed")
            removed = slim(tmp / "python")
            shutil.rmtree(out, ignore_errors=True)
            (tmp / "python").rename(out.with_name(out.name + ".staged"))
            out.mkdir()
            out.with_name(out.name + ".staged").rename(out / "python")
            manifest = {
                "layer": name,
                "target": {"arch": target.arch, "python": target.python, "platforms": list(target.platforms)},
                "requirements": lines,
                "packages": resolution.packages,
                "wheels": resolution.wheels,
                "substitutions": substitutions,
                "slimmed": {"files": removed.files, "bytes": removed.bytes},
                "size_bytes": size_bytes(out),
            }
            manifest_path(out).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(out.with_name(out.name + ".staged"), ignore_errors=True)
    return out


def _local_pins(
    lines: list[str], pins: dict[str, str], target: Target, runner: Runner
) -> tuple[list[str], list[str], dict[str, dict[str, str]]]:
    """Requirement and constraint lines pinning the Lambda build's versions where the local
    interpreter has wheels for them, and capping at them (<=) where it does not."""
    wanted = [f"{pkg}=={ver}" for pkg, ver in sorted(pins.items())]
    absent = {requirement_name(line) for line in missing_wheels(wanted, target, runner=runner)}
    constraints = [f"{pkg}=={ver}" for pkg, ver in sorted(pins.items()) if pkg not in absent]
    constraints += [f"{pkg}<={pins[pkg]}" for pkg in sorted(absent)]
    install = []
    for line in lines:
        pkg = requirement_name(line)
        if pkg in absent:
            match = re.match(r"^\s*[A-Za-z0-9._-]+(\[[^\]]*\])?", line)
            extras = match.group(1) or "" if match else ""
            marker = line.split(";", 1)[1].strip() if ";" in line else ""
            line = f"{pkg}{extras}<={pins[pkg]}" + (f"; {marker}" if marker else "")
        install.append(line)
    substitutions = {pkg: {"lambda": pins[pkg], "local": ""} for pkg in sorted(absent)}
    return install, constraints, substitutions


def _architecture_hint(lines: list[str], target: Target, runner: Runner) -> str:
    other = Target("x86_64" if target.arch == "arm64" else "arm64", target.python)
    try:
        resolve(lines, other, runner=runner)
    except LayerBuildError:
        return f"\nIt does not resolve for {other.arch} either: pin versions that publish {target.abi} wheels."
    return (
        f"\nIt does resolve for {other.arch}: set the stack setting `stepwise:architecture` to "
        f'"{other.arch}" (cdk.json context, or `npx cdk deploy -c stepwise:architecture={other.arch}`), '
        "or pin versions that publish wheels for this architecture."
    )


# -- slimming -------------------------------------------------------------------------------
@dataclass
class Removed:
    files: int = 0
    bytes: int = 0
    paths: list[str] = field(default_factory=list)

    def add(self, path: Path, root: Path) -> None:
        files = [path] if not path.is_dir() or path.is_symlink() else [p for p in path.rglob("*") if not p.is_dir()]
        self.files += len(files)
        self.bytes += sum(p.lstat().st_size for p in files)
        self.paths.append(str(path.relative_to(root)))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def slim(root: Path) -> Removed:
    """Remove what no function imports at run time (SLIM_* rules); returns what went."""
    removed = Removed()
    models = root / "botocore" / "data"
    if models.is_dir():
        for path in sorted(models.iterdir()):
            if path.is_dir() and path.name not in BOTOCORE_SERVICES:
                removed.add(path, root)
                _remove(path)
    doomed = sorted({path for pattern, _reason in SLIM_GLOBS for path in root.glob(pattern)})
    for path in _still_linked(root, doomed):
        doomed.remove(path)  # a remaining binary loads it: keep it whatever the rule says
    for path in doomed:
        if path.exists() or path.is_symlink():
            removed.add(path, root)
            _remove(path)
    for dirpath, dirnames, filenames in os.walk(root, topdown=True):
        here = Path(dirpath)
        nested = here != root
        for dirname in list(dirnames):
            if nested and dirname in SLIM_DIR_NAMES:
                removed.add(here / dirname, root)
                _remove(here / dirname)
                dirnames.remove(dirname)
        for filename in filenames:
            if filename.endswith(SLIM_SUFFIXES) or filename.endswith((".pyc", ".pyo")):
                removed.add(here / filename, root)
                _remove(here / filename)
    for dirpath, _dirnames, _filenames in sorted(os.walk(root), key=lambda x: -len(x[0])):
        path = Path(dirpath)
        if path != root and not any(path.iterdir()):
            path.rmdir()
    return removed


_SHARED_LIBRARY = re.compile(r"^lib[^/]*\.so(\.\d+)*$")


def _still_linked(root: Path, doomed: Sequence[Path]) -> set[Path]:
    """The shared libraries among `doomed` that a binary staying in the layer names (a NEEDED
    entry is the library's file name, NUL-terminated, in the binary's string table)."""
    libraries = {p for p in doomed if p.is_file() and _SHARED_LIBRARY.match(p.name)}
    if not libraries:
        return set()
    gone = set(doomed)
    binaries = [p for p in root.rglob("*.so*") if p.is_file() and not any(q in gone for q in (p, *p.parents))]
    kept: set[Path] = set()
    searching = list(binaries)
    while searching:
        found: set[Path] = set()
        for binary in searching:
            data = binary.read_bytes()
            found |= {lib for lib in libraries - kept - found if lib.name.encode() + b"\0" in data}
        kept |= found
        searching = sorted(found)  # what a kept library loads stays too
    return kept


def size_bytes(path: Path) -> int:
    """Unzipped size as Lambda counts it: the bytes of every file."""
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir())


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


# -- reading a synthesized cloud assembly -------------------------------------------------
LAMBDA_UNZIPPED_LIMIT = 262_144_000  # 250 MB as Lambda counts it (250 * 1024 * 1024 bytes): code + layers


@dataclass
class PackagedLayer:
    logical_id: str
    name: str | None  # layers/<name>, from the stack's construct metadata; None for an imported layer
    path: Path | None  # the staged asset (directory or .zip) in the assembly; None for an imported layer

    def size_bytes(self) -> int:
        if self.path is None:
            raise LookupError(f"layer {self.logical_id} is not an asset of this assembly; its size is unknown")
        return asset_size_bytes(self.path)


@dataclass
class PackagedFunction:
    """A zip-packaged Lambda function of a synthesized template, with its code and layer assets."""

    logical_id: str
    handler: str
    architecture: str
    code: Path
    layers: list[PackagedLayer]
    environment: dict[str, Any]

    @property
    def handler_module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    def size_bytes(self) -> int:
        return asset_size_bytes(self.code) + sum(layer.size_bytes() for layer in self.layers)


def asset_size_bytes(path: Path) -> int:
    """Unzipped bytes of a staged asset: a directory, or a .zip file's members."""
    if path.is_dir():
        return size_bytes(path)
    with zipfile.ZipFile(path) as archive:
        return sum(info.file_size for info in archive.infolist())


def _metadata(outdir: Path, artifact: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    if "additionalMetadataFile" in artifact:
        data: dict[str, list[dict[str, Any]]] = json.loads((outdir / artifact["additionalMetadataFile"]).read_text())
        return data
    return artifact.get("metadata", {})


def zip_functions(outdir: Path, stack: str) -> tuple[list[PackagedFunction], list[str]]:
    """The zip functions of `stack` in the assembly at `outdir`, and the logical ids of its image
    functions (container images are not subject to the 250 MB zip limit)."""
    manifest = json.loads((outdir / "manifest.json").read_text())
    artifacts = manifest["artifacts"]
    template = json.loads((outdir / artifacts[stack]["properties"]["templateFile"]).read_text())
    assets: dict[str, Path] = {}
    for name, artifact in artifacts.items():
        if artifact.get("type") == "cdk:asset-manifest" and name.startswith(f"{stack}."):
            files = json.loads((outdir / artifact["properties"]["file"]).read_text()).get("files", {})
            for entry in files.values():
                for dest in entry["destinations"].values():
                    assets[dest["objectKey"]] = outdir / entry["source"]["path"]
    layer_names: dict[str, str] = {}
    metadata = _metadata(outdir, artifacts[stack])
    for path, entries in metadata.items():
        for entry in entries:
            if entry["type"] == LAYER_METADATA:
                for inner in metadata.get(f"{path}/Resource", []):
                    if inner["type"] == "aws:cdk:logicalId":
                        layer_names[inner["data"]] = entry["data"]

    resources = template.get("Resources", {})

    def layer(ref: object) -> PackagedLayer:
        if (
            isinstance(ref, dict)
            and "Ref" in ref
            and resources.get(ref["Ref"], {}).get("Type") == ("AWS::Lambda::LayerVersion")
        ):
            lid = ref["Ref"]
            key = resources[lid]["Properties"]["Content"]["S3Key"]
            return PackagedLayer(lid, layer_names.get(lid), assets.get(key) if isinstance(key, str) else None)
        return PackagedLayer(json.dumps(ref), None, None)

    functions, images = [], []
    for lid, res in sorted(resources.items()):
        if res.get("Type") != "AWS::Lambda::Function":
            continue
        props = res.get("Properties", {})
        if props.get("PackageType") == "Image" or "ImageUri" in props.get("Code", {}):
            images.append(lid)
            continue
        key = props.get("Code", {}).get("S3Key")
        if not isinstance(key, str) or key not in assets:
            continue  # inline code (ZipFile) or an object not staged here: e.g. CDK's own helper functions
        functions.append(
            PackagedFunction(
                logical_id=lid,
                handler=props.get("Handler", ""),
                architecture=(props.get("Architectures") or ["x86_64"])[0],
                code=assets[key],
                layers=[layer(ref) for ref in props.get("Layers", [])],
                environment=props.get("Environment", {}).get("Variables", {}),
            )
        )
    return functions, images


# -- command line ---------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m layers.build", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", help="layers to build (default: every layers/*/requirements.txt)")
    parser.add_argument("--arch", default=DEFAULT_ARCH, choices=sorted(PLATFORMS))
    parser.add_argument("--python", default=TARGET_PYTHON, help="the function runtime's Python (default %(default)s)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--check", action="store_true", help="only resolve (layers and images): does every pinned package have a wheel?"
    )
    mode.add_argument("--local", action="store_true", help="build for this interpreter with the Lambda build's pins")
    mode.add_argument("--prune", action="store_true", help="delete cached builds that are not current")
    mode.add_argument("--sizes", metavar="CDK_OUT", help="print each zip function's unzipped code + layers size")
    parser.add_argument("--stack", default="Stepwise", help="stack artifact for --sizes (default %(default)s)")
    args = parser.parse_args(argv)
    if args.sizes:
        return print_sizes(Path(args.sizes), args.stack)
    names = args.names or layer_names()
    target = Target(args.arch, args.python)
    failed = 0
    if args.prune:
        for path in prune(current_builds(args.python)):
            print(f"removed {path}")
        return 0
    if args.check and not args.names:
        names = layer_names() + image_names()
    for name in names:
        lines = flatten_requirements(requirements_file(name))
        for line in unpinned(lines):
            print(f"warning: layer {name!r}: {line!r} is not an exact == pin", file=sys.stderr)
        try:
            if args.check:
                res = resolve(lines, target)
                kind = "image" if name in image_names() else "layer"
                print(f"{name} ({kind}): resolves for {target.describe()}: {len(res.wheels)} wheels")
                for wheel in res.wheels:
                    print(f"  {wheel}")
                continue
            out = build_local_layer(name) if args.local else build_layer(name, target)
        except LayerBuildError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            failed += 1
            continue
        manifest = read_manifest(out)
        slimmed = manifest["slimmed"]["bytes"] / 1e6
        print(f"{name}: {out} {manifest['size_bytes'] / 1e6:.1f} MB unzipped ({slimmed:.1f} MB slimmed away)")
        for pkg, sub in manifest["substitutions"].items():
            print(f"  {pkg}: {sub['lambda']} has no wheel here; using {sub['local']}")
    return 1 if failed else 0


def print_sizes(outdir: Path, stack: str) -> int:
    functions, images = zip_functions(outdir, stack)
    for fn in functions:
        layers = ", ".join(f"{layer.name or layer.logical_id} {layer.size_bytes() / 1e6:.1f}" for layer in fn.layers)
        share = fn.size_bytes() / LAMBDA_UNZIPPED_LIMIT
        print(
            f"{fn.logical_id} ({fn.handler_module}, {fn.architecture}): {fn.size_bytes() / 1e6:.1f} MB unzipped "
            f"= {share:.0%} of Lambda's limit; code {asset_size_bytes(fn.code) / 1e6:.1f} MB; layers: {layers or '-'}"
        )
    for lid in images:
        print(f"{lid}: container image (not subject to the zip limit)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
