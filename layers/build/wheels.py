"""pip for the Lambda platform: the install command (wheels only, for the target's platform tags,
implementation and ABI), dry-run resolution, and the diagnosis of requirements with no wheel."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from layers.build.requirements import canonical
from layers.build.target import LayerBuildError, Target

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


def pip_errors(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in (proc.stderr or "").splitlines() if ln.strip() and not ln.startswith("WARNING: Location")]
    return "\n".join(lines[-12:])


@dataclass
class Resolution:
    """What pip chose for one set of requirements on one target."""

    packages: dict[str, str] = field(default_factory=dict)  # canonical name -> version
    wheels: list[str] = field(default_factory=list)


def read_report(report: Path) -> Resolution:
    data = json.loads(report.read_text())
    res = Resolution()
    for item in data.get("install", []):
        res.packages[canonical(item["metadata"]["name"])] = item["metadata"]["version"]
        res.wheels.append(item["download_info"]["url"].rsplit("/", 1)[-1])
    res.wheels.sort()
    return res


def write_lines(path: Path, lines: Sequence[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def missing_wheels(lines: Sequence[str], target: Target, *, runner: Runner = run_pip) -> dict[str, str]:
    """For each requirement line alone (no dependencies): pip's complaint when no wheel fits `target`."""
    missing: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="layer-check-") as tmp:
        for i, line in enumerate(lines):
            req = write_lines(Path(tmp) / f"r{i}.txt", [line])
            cmd = pip_command(req, target, Path(tmp) / "t", report=Path(tmp) / f"r{i}.json", dry_run=True, no_deps=True)
            proc = runner(cmd)
            if proc.returncode != 0:
                missing[line] = pip_errors(proc).splitlines()[-1] if pip_errors(proc) else "no wheel"
    return missing


def resolve(lines: Sequence[str], target: Target, *, runner: Runner = run_pip) -> Resolution:
    """Resolve without installing (PyPI serves wheel metadata, so this downloads little).

    Raises LayerBuildError naming each requirement that has no wheel for the target.
    """
    with tempfile.TemporaryDirectory(prefix="layer-check-") as tmp:
        req = write_lines(Path(tmp) / "requirements.txt", lines)
        report = Path(tmp) / "report.json"
        proc = runner(pip_command(req, target, Path(tmp) / "t", report=report, dry_run=True))
        if proc.returncode == 0:
            return read_report(report)
        errors = pip_errors(proc)
    raise LayerBuildError(unresolvable_message(lines, target, errors, runner))


NETWORK_ERROR = re.compile(
    r"NewConnectionError|Temporary failure in name resolution|Network is unreachable|timed out", re.I
)


def unresolvable_message(lines: Sequence[str], target: Target, errors: str, runner: Runner) -> str:
    if NETWORK_ERROR.search(errors):
        return f"pip could not reach the package index while resolving for {target.describe()}:\n{errors}"
    missing = missing_wheels(lines, target, runner=runner)
    parts = [f"cannot resolve wheels for {target.describe()}:"]
    if missing:
        parts += [f"  {line}: {why}" for line, why in missing.items()]
    else:
        parts.append("  (every pinned package has a wheel; a dependency of one does not)")
        parts += ["  " + e for e in errors.splitlines()]
    return "\n".join(parts)


def architecture_hint(lines: list[str], target: Target, runner: Runner) -> str:
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
