"""Build a Lambda layer with pip for the Lambda platform, never in a container.

    python -m layers.build base [--arch arm64] [--python 3.14]

The result lands in layers/.build/<name>-<arch>-py<ver>-<hash>/python and is reused while the
requirements file (and the target platform) does not change.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

LAYERS = Path(__file__).resolve().parent
BUILD = LAYERS / ".build"

PLATFORMS = {
    # Amazon Linux 2023 has glibc 2.34: manylinux_2_28 wheels run; older tags are accepted too.
    "arm64": ["manylinux_2_28_aarch64", "manylinux2014_aarch64"],
    "x86_64": ["manylinux_2_28_x86_64", "manylinux2014_x86_64"],
}
SLIM_DIRS = {"__pycache__", "tests"}


def requirements_file(name: str) -> Path:
    path = LAYERS / name / "requirements.txt"
    if not path.is_file():
        raise FileNotFoundError(f"layer {name!r} has no requirements file at {path}")
    return path


def layer_dir(name: str, arch: str = "arm64", python: str = "3.14") -> Path:
    req = requirements_file(name)
    digest = hashlib.sha256(req.read_bytes() + f"{arch}{python}".encode()).hexdigest()[:12]
    return BUILD / f"{name}-{arch}-py{python.replace('.', '')}-{digest}"


def build_layer(name: str, arch: str = "arm64", python: str = "3.14") -> Path:
    """Return the layer's root (the directory holding python/), building it when missing."""
    if arch not in PLATFORMS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(PLATFORMS)}")
    out = layer_dir(name, arch, python)
    done = out / ".complete"
    if done.exists():
        return out
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile"]
    for plat in PLATFORMS[arch]:
        cmd += ["--platform", plat]
    cmd += [
        "--implementation",
        "cp",
        "--python-version",
        python,
        "--only-binary=:all:",
        "--target",
        str(tmp / "python"),
        "-r",
        str(requirements_file(name)),
    ]
    subprocess.run(cmd, check=True)
    _slim(tmp / "python")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    done.write_text("ok\n")
    return out


def _slim(root: Path) -> None:
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_dir() and path.name in SLIM_DIRS and "site-packages" not in path.parts:
            # only drop test folders of packages, never a package whose name is "tests"
            if path.name == "tests" and (path.parent == root):
                continue
            shutil.rmtree(path, ignore_errors=True)


def size_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name")
    parser.add_argument("--arch", default="arm64", choices=sorted(PLATFORMS))
    parser.add_argument("--python", default="3.14")
    args = parser.parse_args(argv)
    out = build_layer(args.name, args.arch, args.python)
    print(f"{out} {size_bytes(out) / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
