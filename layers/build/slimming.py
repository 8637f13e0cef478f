"""Slimming a built layer: what is removed after pip (the SLIM_* rules and the botocore service
models outside BOTOCORE_SERVICES), keeping any rule-matched shared library a remaining binary
still loads. Slimming is only trusted because tests/infra/test_packaging.py imports every
module each function's handler uses from its code and slimmed layers alone."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

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
        "athena",  # the offline store's distributed join (functions/dal/athena.py)
        "glue",
    }
)


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
