"""Synthesize the CDK app for the local cloud; the cloud assembly it writes is read by layers.assembly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from infra import constants as c
from layers.assembly import Assembly, read_assembly

ROOT = Path(__file__).resolve().parents[2]


def synthesize(outdir: Path, context: dict[str, Any] | None = None, app_module: str = "infra.app") -> Assembly:
    """Run the real CDK app (`python -m infra.app`) into outdir and read what it wrote."""
    env = {**os.environ, "CDK_OUTDIR": str(outdir)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    if context:
        env["CDK_CONTEXT_JSON"] = json.dumps(context)
    proc = subprocess.run(
        [sys.executable, "-m", app_module], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"cdk synth failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return read_assembly(outdir, c.STACK_NAME)
