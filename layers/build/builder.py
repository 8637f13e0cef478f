"""Building a layer: pip into a temporary directory, slim, then move it into its cache directory
with its manifest. The local build (for tests that import from the layer) pins the Lambda build's
versions where this interpreter has wheels for them."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from layers.build.cache import BUILD, build_key, local_layer_dir, locked, manifest_path, read_manifest
from layers.build.requirements import LAYERS, flatten_requirements, requirement_name, requirements_file
from layers.build.slimming import size_bytes, slim
from layers.build.target import TARGET_PYTHON, LayerBuildError, Target, local_target
from layers.build.wheels import (
    NETWORK_ERROR,
    Runner,
    architecture_hint,
    missing_wheels,
    pip_command,
    pip_errors,
    read_report,
    run_pip,
    unresolvable_message,
    write_lines,
)


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
    return _build(out, name, lines, target, runner=runner, hint=architecture_hint)


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
                constraints = write_lines(tmp / "constraints.txt", constraint_lines)
            req = write_lines(tmp / "requirements.txt", install_lines)
            report = tmp / "report.json"
            proc = runner(pip_command(req, target, tmp / "python", report=report, constraints=constraints))
            if proc.returncode != 0:
                message = f"layer {name!r}: " + unresolvable_message(install_lines, target, pip_errors(proc), runner)
                if hint is not None and not NETWORK_ERROR.search(message):
                    message += hint(install_lines, target, runner)
                raise LayerBuildError(message)
            resolution = read_report(report)
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
