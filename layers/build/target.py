"""Where a layer runs: the Lambda architecture, the CPython version and the pip platform tags."""

from __future__ import annotations

import platform
import re
import sys
from dataclasses import dataclass

TARGET_PYTHON = "3.14"  # infra/constructs/function.py RUNTIME (PYTHON_3_14)
DEFAULT_ARCH = "arm64"

PLATFORMS = {
    # Amazon Linux 2023 has glibc 2.34: manylinux_2_28 wheels run; manylinux2014 (glibc 2.17) too.
    "arm64": ("manylinux_2_28_aarch64", "manylinux2014_aarch64"),
    "x86_64": ("manylinux_2_28_x86_64", "manylinux2014_x86_64"),
}


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
