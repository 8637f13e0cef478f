"""pip-audit on the pinned runtime dependencies of every Lambda layer (layers/*/requirements.txt).

Known vulnerabilities fail the test (pip-audit's PyPI service carries no severity, so any known
vulnerability counts unless it is listed in ACCEPTED with a reason). The audit needs PyPI's
per-release JSON (the advisory data); when a pinned release cannot be looked up there (no
network, or a mirror that serves only the simple index), the test is skipped naming what could
not be audited: it never passes on an audit that did not happen.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = sorted((ROOT / "layers").glob("*/requirements.txt"))
RUN_PIP_AUDIT = "import sys; from pip_audit._cli import audit; sys.argv[0] = 'pip-audit'; sys.exit(audit())"

# vulnerability id -> why it does not apply to us (empty: nothing accepted)
ACCEPTED: dict[str, str] = {}

pytestmark = pytest.mark.slow  # reaches PyPI


def audit(requirements: Path) -> dict[str, object]:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            RUN_PIP_AUDIT,
            "--requirement",
            str(requirements),
            "--no-deps",  # every layer pins its packages with ==; transitive ones come from the wheels
            "--disable-pip",
            "--vulnerability-service",
            "pypi",
            "--format",
            "json",
            "--progress-spinner",
            "off",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    try:
        return json.loads(proc.stdout)  # type: ignore[no-any-return]
    except ValueError:
        pytest.skip(f"pip-audit could not run against PyPI (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")


def test_layer_requirements_are_all_pinned() -> None:
    # Given every layer's requirements
    assert REQUIREMENTS
    for path in REQUIREMENTS:
        lines = [ln.split("#")[0].strip() for ln in path.read_text().splitlines()]
        # Then each package is pinned to one release (what the audit and the layer build rely on)
        unpinned = [ln for ln in lines if ln and not ln.startswith("-") and "==" not in ln]
        assert unpinned == [], (path, unpinned)


@pytest.mark.parametrize("requirements", REQUIREMENTS, ids=lambda p: p.parent.name)
def test_layer_dependencies_have_no_known_vulnerability(requirements: Path) -> None:
    # When pip-audit looks every pinned release up in PyPI's advisory data
    report = audit(requirements)
    dependencies = report["dependencies"]
    assert isinstance(dependencies, list) and dependencies
    # Then every release was audited (else: skipped, naming what could not be)
    unaudited = [f"{d['name']}: {d['skip_reason']}" for d in dependencies if d.get("skip_reason")]
    found = [
        f"{d['name']}=={d['version']}: {v['id']} (fix: {', '.join(v.get('fix_versions', [])) or 'none'})"
        for d in dependencies
        for v in d.get("vulns", [])
        if v["id"] not in ACCEPTED and not set(v.get("aliases", [])) & set(ACCEPTED)
    ]
    # And none has a known vulnerability
    assert found == [], "\n".join(found)
    if unaudited:
        pytest.skip(
            f"{len(unaudited)} of {len(dependencies)} pinned releases not found in PyPI's advisory data: "
            + "; ".join(unaudited)
        )
