"""Packaging budgets on the synthesized template.

For every zip function of the template: code + layers unzipped under Lambda's 250 MB with a
margin (the inference function under 150 MB), every module its handler uses importable from its
own layers, and the handlers' import graphs free of forbidden packages. Sizes and import times are
printed, never asserted as wall-clock.

The layers are built by the synthesis (layers/build/, cached in layers/.build by the
requirements' hash); a cold cache costs a minute or so of pip downloads, a warm one seconds.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra import constants as c
from infra.app import build_app
from layers.build.builder import build_local_layer
from layers.build.cache import read_manifest
from layers.build.packaging import LAMBDA_UNZIPPED_LIMIT, PackagedFunction, asset_size_bytes, zip_functions
from layers.build.target import local_target

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = ROOT / "functions" / "handlers"

ZIP_BUDGET = int(LAMBDA_UNZIPPED_LIMIT * 0.9)  # keep 10% (25 MB) of Lambda's limit in reserve
INFERENCE_HANDLER = "functions.handlers.predict"
INFERENCE_BUDGET = 150_000_000

# handler module -> top-level packages that must not appear anywhere in its import graph
FORBIDDEN_IMPORTS: dict[str, tuple[str, ...]] = {
    INFERENCE_HANDLER: ("sklearn", "scipy", "pyarrow"),
}

# Runs in a fresh interpreter: imports the handler module (timed), then every import statement of
# every loaded functions.* module, including those inside functions (lazy imports) and excluding
# `if TYPE_CHECKING:` blocks, until no new functions.* module appears. Prints one JSON object.
PROBE = r"""
import ast, importlib, importlib.util, json, sys, time
paths, handler = json.loads(sys.argv[1]), sys.argv[2]
sys.path[:0] = paths
errors, eager_error, optional_missing, done = {}, None, [], set()
t0 = time.perf_counter()
try:
    importlib.import_module(handler)
except Exception as exc:
    eager_error = f"{type(exc).__name__}: {exc}"
seconds = time.perf_counter() - t0
sys.stderr.write("--- handler imported ---\n")
handler_graph = sorted({m.split(".")[0] for m in sys.modules})
OPTIONAL = {"ImportError", "ModuleNotFoundError"}

def statements(module):
    tree = ast.parse(open(module.__file__, encoding="utf-8").read())
    found = []
    def visit(node, optional):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child, optional)
            return
        if isinstance(node, ast.Try):
            catches = {ast.unparse(h.type) if h.type else "ImportError" for h in node.handlers}
            guarded = optional or bool(OPTIONAL & {n.strip("() ") for c in catches for n in c.split(",")})
            for child in node.body:
                visit(child, guarded)
            for child in node.handlers + node.orelse + node.finalbody:
                visit(child, optional)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, None, optional) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.__name__ if hasattr(module, "__path__") else module.__package__
                base = importlib.util.resolve_name("." * node.level + base, package)
            found.extend((base, alias.name, optional) for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child, optional)
    visit(tree, False)
    return found

while True:
    todo = [m for name, m in list(sys.modules.items())
            if (name == "functions" or name.startswith("functions.")) and name not in done
            and getattr(m, "__file__", None)]
    if not todo:
        break
    for module in todo:
        done.add(module.__name__)
        for base, attr, optional in statements(module):
            try:
                imported = importlib.import_module(base)
                if attr and attr != "*" and not hasattr(imported, attr):
                    importlib.import_module(f"{base}.{attr}")
            except Exception as exc:
                key = f"{base}.{attr}" if attr else base
                if optional:
                    optional_missing.append(key)
                else:
                    errors[key] = f"{type(exc).__name__}: {exc} (imported by {module.__name__})"

files = sorted({m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None)})
print(json.dumps({
    "seconds": seconds,
    "handler_graph": handler_graph,
    "graph": sorted({m.split(".")[0] for m in sys.modules}),
    "eager_error": eager_error,
    "errors": errors,
    "optional_missing": sorted(set(optional_missing)),
    "files": files,
}))
"""


def probe_env(environment: dict[str, Any] | None = None) -> dict[str, str]:
    """A Lambda-like environment: the function's variables (unresolved tokens get placeholders),
    fake credentials, and the variables the Lambda service sets."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_LAMBDA_FUNCTION_NAME": "stepwise-probe",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "POWERTOOLS_SERVICE_NAME": "stepwise",
        "POWERTOOLS_METRICS_NAMESPACE": "Stepwise",
    }
    for name, value in vars(c).items():
        if name.startswith("ENV_") and isinstance(value, str):
            env.setdefault(value, f"probe-{value.lower()}")
    for key, value in (environment or {}).items():
        env[key] = value if isinstance(value, str) else f"probe-{key.lower()}"
    return env


def run_probe(
    python_args: list[str], paths: list[Path], handler: str, env: dict[str, str]
) -> tuple[dict[str, Any], str]:
    proc = subprocess.run(
        [sys.executable, *python_args, "-c", PROBE, json.dumps([str(p) for p in paths]), handler],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"importing {handler} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def slowest_imports(importtime: str, top: int = 5) -> list[tuple[str, float]]:
    """The top-level packages with the largest cumulative import time in `-X importtime` output
    of the handler's own import (lazy imports explored afterwards excluded)."""
    best: dict[str, float] = {}
    for line in importtime.split("--- handler imported ---")[0].splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|(\s*)(\S+)", line)
        if match and not match.group(3).startswith("functions"):
            package = match.group(3).split(".")[0]
            best[package] = max(best.get(package, 0.0), int(match.group(1)) / 1e6)
    return sorted(best.items(), key=lambda item: -item[1])[:top]


# -- fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def assembly() -> Iterator[Path]:
    """The CDK app synthesized as `cdk synth` would (this builds the Lambda layers).

    Not under pytest's tmp_path: pytest keeps only the newest three base temp directories, so
    another pytest session starting on a shared machine would delete these assets mid-test."""
    with tempfile.TemporaryDirectory(prefix="stepwise-packaging-") as outdir:
        app, _ = build_app(outdir=outdir)
        app.synth()
        yield Path(outdir)


@pytest.fixture(scope="module")
def packaged(assembly: Path) -> list[PackagedFunction]:
    functions, _images = zip_functions(assembly, c.STACK_NAME)
    assert functions, "the template has no zip-packaged Lambda function"
    return functions


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """print() that shows in the test run's output even when passing (figures, not assertions)."""

    def emit(line: str) -> None:
        with capsys.disabled():
            print(line)

    yield emit


# -- sizes ----------------------------------------------------------------------------------
def test_packaging_each_zip_function_fits_lambdas_limit_with_margin(
    packaged: list[PackagedFunction], assembly: Path, report: Any
) -> None:
    # Given the synthesized template's zip functions with their code and layer assets
    # When their unzipped sizes are added up
    sizes = {fn.logical_id: fn.size_bytes() for fn in packaged}
    report("")
    for fn in packaged:
        layers = ", ".join(f"{layer.name} {layer.size_bytes() / 1e6:.1f} MB" for layer in fn.layers)
        report(
            f"{fn.logical_id} ({fn.handler_module}, {fn.architecture}): {sizes[fn.logical_id] / 1e6:.1f} MB unzipped"
            f" (code {asset_size_bytes(fn.code) / 1e6:.1f} MB; layers: {layers or 'none'})"
        )
    for lid in zip_functions(assembly, c.STACK_NAME)[1]:
        report(f"{lid}: container image function (Lambda's 10 GB image limit, not the 250 MB zip limit)")
    # Then each stays under Lambda's 250 MB with 10% to spare
    over = {lid: f"{size / 1e6:.1f} MB" for lid, size in sizes.items() if size > ZIP_BUDGET}
    assert not over, f"over the {ZIP_BUDGET / 1e6:.0f} MB budget (Lambda's limit minus 10%): {over}"


def test_packaging_inference_function_under_150_mb(packaged: list[PackagedFunction], report: Any) -> None:
    # Given the function whose handler is the inference handler
    inference = [fn for fn in packaged if fn.handler_module == INFERENCE_HANDLER]
    if not inference:
        pytest.skip(f"no function in the template runs {INFERENCE_HANDLER}")
    for fn in inference:
        # When its code and layers are measured unzipped
        size = fn.size_bytes()
        report(f"\ninference {fn.logical_id}: {size / 1e6:.1f} MB unzipped (budget {INFERENCE_BUDGET / 1e6:.0f} MB)")
        # Then it fits the inference budget
        assert size < INFERENCE_BUDGET, f"{fn.logical_id} is {size / 1e6:.1f} MB unzipped"


# -- architecture ---------------------------------------------------------------------------
_MACHINE = {"arm64": "aarch64", "x86_64": "x86_64"}
_TAGGED = re.compile(r"\.cpython-(\d+)[a-z]*-([a-z0-9_]+)-linux-gnu\.so$")


def tagged_binaries(fn: PackagedFunction) -> int:
    return sum(1 for layer in fn.layers if layer.path for p in layer.path.rglob("*.so") if _TAGGED.search(p.name))


def foreign_binaries(fn: PackagedFunction) -> list[str]:
    """Extension modules in the function's layers built for another CPU or CPython than its own."""
    wrong = []
    for layer in fn.layers:
        assert layer.path is not None and layer.path.is_dir(), f"{layer.logical_id} is not a staged directory"
        for path in layer.path.rglob("*.so"):
            match = _TAGGED.search(path.name)
            if match and (match.group(1) != "314" or match.group(2) != _MACHINE[fn.architecture]):
                wrong.append(str(path.relative_to(layer.path)))
    return wrong


def test_packaging_layer_binaries_match_each_functions_architecture_and_runtime(
    packaged: list[PackagedFunction],
) -> None:
    # Given the default stack setting (cdk.json: arm64)
    for fn in packaged:
        # Then every CPython extension module in the function's layers is for its CPU and Python 3.14
        assert fn.architecture in _MACHINE
        assert not foreign_binaries(fn), f"{fn.logical_id}: {foreign_binaries(fn)[:5]}"
    assert any(tagged_binaries(fn) for fn in packaged), "no CPython extension module found: nothing was checked"


@pytest.mark.slow  # builds and stages a second set of layers (about 20 s warm, a minute cold)
def test_packaging_x86_64_setting_builds_every_layer_for_x86_64() -> None:
    with tempfile.TemporaryDirectory(prefix="stepwise-packaging-") as outdir:
        # Given the stack setting stepwise:architecture=x86_64 (`-c stepwise:architecture=x86_64`)
        app, _ = build_app(outdir=outdir, context={"stepwise:architecture": "x86_64"})
        # When synthesized
        app.synth()
        check_x86_64(Path(outdir))


def check_x86_64(outdir: Path) -> None:
    functions, _ = zip_functions(outdir, c.STACK_NAME)
    # Then every zip function runs on x86_64 with layers built for it
    assert functions
    for fn in functions:
        assert fn.architecture == "x86_64", fn.logical_id
        assert not foreign_binaries(fn), f"{fn.logical_id}: {foreign_binaries(fn)[:5]}"
    assert any(tagged_binaries(fn) for fn in functions), "no CPython extension module found: nothing was checked"


# -- the layers provide every import ----------------------------------------------------------
_EXTENSION = re.compile(r"\.(cpython-[^.]+|abi3)\.so$")


def _normalized(relative: str) -> str:
    return _EXTENSION.sub(".so", relative)


def test_packaging_each_function_imports_everything_from_its_own_layers(
    packaged: list[PackagedFunction], report: Any
) -> None:
    """Every module a function's handler uses imports from its layers and code alone.

    The Lambda target (CPython 3.14, arm64 by default) cannot run on this machine, so each of the
    function's layers is built a second time, with the same requirements, the exact versions the
    Lambda build resolved (as constraints) and the same slimming, for the local interpreter
    (layers/.build/local/). The handler module is then imported in a fresh `python -I -S`
    process whose sys.path holds only the function's synthesized code asset, those layers and the
    standard library (no virtualenv site-packages), followed by every import statement of every
    functions.* module it loads, lazy imports inside functions included. A failing lazy import
    fails the test when its package is in the layers (slimmed or partial); when the package is
    absent altogether it is printed instead: shared logic the handler loads may hold another
    function's lazy import that this handler never calls.

    What this proves: slimming removed nothing the handlers import; a function needs no package
    beyond its own layers; and every Python module and extension module the handler loaded
    exists, under the same relative path, in the Lambda build of the layer.
    What it does not prove: that the cp314/arm64 binaries load (pip choosing them proves the wheels
    exist: `python -m layers.build --check`), nor behaviour that differs between Python 3.11 and
    3.14. A release with no wheel for the local interpreter is replaced locally by the newest one
    that has one (printed below as a substitution).
    """
    problems: dict[str, Any] = {}
    for fn in packaged:
        # Given the function's layers, built for this interpreter with the Lambda build's pins
        assert all(layer.name for layer in fn.layers), f"{fn.logical_id} uses a layer not built from layers/"
        local = [build_local_layer(str(layer.name)) for layer in fn.layers]
        for layer, out in zip(fn.layers, local, strict=True):
            for pkg, sub in read_manifest(out)["substitutions"].items():
                abi = local_target().abi
                report(f"\n{layer.name}: {pkg} {sub['lambda']} has no {abi} wheel; tested with {sub['local']}")
        # Lambda extracts layers into /opt in order (a later layer wins) after the function code
        paths = [fn.code] + [out / "python" for out in reversed(local)]
        # When the handler and everything functions/ imports on its way are imported in isolation
        result, _ = run_probe(["-I", "-S"], paths, fn.handler_module, probe_env(fn.environment))
        # Then the handler imports (Lambda would fail every invocation with Runtime.ImportModuleError)
        where = f"{fn.logical_id} ({fn.handler_module}, layers {[la.name for la in fn.layers]})"
        if result["eager_error"]:
            problems[where] = result["eager_error"]
            continue
        # And a lazy import fails only where its package is absent from the layers altogether
        # (another function's dependency, in shared logic this handler loads but may never call);
        # a package present but missing a module is a slimming or packaging fault
        absent = {k: v for k, v in result["errors"].items() if not _provided(_missing_top(k, v), paths)}
        partial = {k: v for k, v in result["errors"].items() if k not in absent}
        if partial:
            problems[where] = partial
        for key, why in sorted(absent.items()):
            report(f"\n{where}: lazy import not in its layers (never called by this handler?): {key}: {why}")
        # And every file it loaded came from the code asset, a layer, or the standard library
        stdlib = Path(os.__file__).parent
        roots = [*paths, stdlib]
        strays = [f for f in result["files"] if not any(Path(f).is_relative_to(r) for r in roots)]
        assert not strays, f"{fn.logical_id} loaded modules from outside its code and layers: {strays[:10]}"
        # And each layer module it loaded is in the Lambda build of that layer as well
        for layer, out in zip(fn.layers, local, strict=True):
            assert layer.path is not None
            lambda_files = {_normalized(str(p.relative_to(layer.path))) for p in layer.path.rglob("*")}
            substituted = set(read_manifest(out)["substitutions"])
            loaded = [Path(f).relative_to(out) for f in result["files"] if Path(f).is_relative_to(out)]
            missing = [
                str(rel)
                for rel in loaded
                if _normalized(str(rel)) not in lambda_files and _top_distribution(out, rel) not in substituted
            ]
            assert not missing, f"{layer.name}: loaded locally but absent from the Lambda build: {missing[:10]}"
        report(
            f"\n{fn.logical_id}: {fn.handler_module} imports from code + layers "
            f"{[layer.name for layer in fn.layers]} alone ({len(result['files'])} modules)"
        )
    assert not problems, "modules a function imports but its layers lack:\n" + json.dumps(problems, indent=1)


_NO_MODULE = re.compile(r"No module named '([^']+)'")


def _missing_top(imported: str, why: str) -> str:
    """The top-level package that is really missing: `functions.logic.training` failing with
    "No module named 'numpy'" lacks numpy, not functions."""
    match = _NO_MODULE.search(str(why))
    return (match.group(1) if match else imported).split(".")[0]


def _provided(top: str, paths: list[Path]) -> bool:
    """Whether a top-level module or package of this name is in any of the paths."""
    return any((p / top).is_dir() or (p / f"{top}.py").is_file() or any(p.glob(f"{top}.*.so")) for p in paths)


def _top_distribution(layer_root: Path, relative: Path) -> str:
    """The canonical name of the distribution that installed python/<relative> (from RECORD)."""
    top = relative.parts[1] if len(relative.parts) > 1 else ""
    for record in (layer_root / "python").glob("*.dist-info/RECORD"):
        if any(line.split(",", 1)[0].split("/", 1)[0] == top for line in record.read_text().splitlines()):
            name = record.parent.name.rsplit("-", 1)[0]
            return re.sub(r"[-_.]+", "-", name).lower()
    return ""


# -- cold imports on the local Python -------------------------------------------------------
def handler_modules() -> list[str]:
    present = {f"functions.handlers.{p.stem}" for p in HANDLERS.glob("*.py") if p.stem != "__init__"}
    return sorted(present | set(FORBIDDEN_IMPORTS))


@pytest.mark.parametrize("handler", handler_modules())
def test_packaging_handler_cold_import_has_no_forbidden_packages(handler: str, report: Any) -> None:
    """Each handler module imported in a fresh process on the local Python (the project's
    virtualenv: every package is installable here, so only the graph decides what is loaded).
    The import time is printed, not asserted; the assertion is the absence of forbidden packages
    (FORBIDDEN_IMPORTS) anywhere in the import graph, lazy imports in functions/ included."""
    # Given a handler module
    if not (HANDLERS / f"{handler.rsplit('.', 1)[1]}.py").is_file():
        pytest.skip(f"{handler} does not exist yet; its forbidden imports are {FORBIDDEN_IMPORTS[handler]}")
    # When it is imported cold, then everything functions/ imports on its way
    result, importtime = run_probe(["-X", "importtime"], [ROOT], handler, probe_env())
    slowest = ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in slowest_imports(importtime))
    report(f"\n{handler}: cold import {result['seconds'] * 1000:.0f} ms (slowest: {slowest})")
    # Then it imports, and no forbidden package is in its graph
    assert not result["eager_error"], result["eager_error"]
    assert not result["errors"], result["errors"]
    forbidden = set(FORBIDDEN_IMPORTS.get(handler, ())) & set(result["graph"])
    assert not forbidden, f"{handler} imports {sorted(forbidden)}"
