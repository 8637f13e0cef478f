"""A layer's requirements: which directories of layers/ are layers (or image contexts), their
requirements.txt flattened through `-r` includes, and the package names and pins in it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from layers.build.target import LayerBuildError

LAYERS = Path(__file__).resolve().parents[1]
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
