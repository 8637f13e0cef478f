"""Asset paths: the functions code asset and the layers. Paths only; no runtime imports."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = ROOT / "functions"
STAGING = ROOT / ".build"
# the web console's static assets (deployed by infra/constructs/console.py, served locally by
# stepwise/local/console.py); a placeholder page if the folder has no index.html
CONSOLE_ASSETS_DIR = ROOT / "stepwise" / "console"
CONSOLE_PLACEHOLDER_DIR = ROOT / "infra" / "console_placeholder"

_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache")


def functions_code_version() -> str:
    """Content hash of functions/ (the code version recorded with every run and model)."""
    digest = hashlib.sha256()
    for path in sorted(FUNCTIONS_DIR.rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def functions_asset_dir() -> Path:
    """A directory holding exactly the `functions` package: one code asset for every Lambda.

    Handlers are addressed as `functions.handlers.<module>.lambda_handler`.
    """
    version = functions_code_version()
    out = STAGING / f"code-{version}"
    if not (out / "functions").is_dir():
        tmp = STAGING / f"code-{version}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(FUNCTIONS_DIR, tmp / "functions", ignore=_IGNORED)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    return out


def console_assets_dir() -> Path:
    """The folder of the console's static assets: CONSOLE_ASSETS_DIR when it has an index.html."""
    return CONSOLE_ASSETS_DIR if (CONSOLE_ASSETS_DIR / "index.html").is_file() else CONSOLE_PLACEHOLDER_DIR
