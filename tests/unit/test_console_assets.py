"""The web console's assets and how the local cloud serves them: a strict Content-Security-Policy
on every reply, the runtime config (same-origin API, local sign-in, the identities to offer), no
path outside the assets folder, and the engineering limits (no inline script or style, no markup
built from strings, nothing fetched from another origin, under 300 KB compressed)."""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
from pathlib import Path

import pytest

from stepwise.local import console

ASSETS = sorted(p for p in console.ASSETS.rglob("*") if p.is_file())
SCRIPTS = [p for p in ASSETS if p.suffix == ".js"]


def test_console_serves_index_and_modules_with_the_strict_csp() -> None:
    status, headers, body = console.serve("/console/", strict_auth=False, personas={})
    assert status == 200 and headers["Content-Type"].startswith("text/html") and b'src="js/app.js"' in body
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe" not in csp
    assert "frame-ancestors 'none'" in csp and headers["X-Content-Type-Options"] == "nosniff"
    status, headers, _ = console.serve("/console/js/app.js", strict_auth=False, personas={})
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")


def test_console_redirects_the_bare_path_and_refuses_paths_outside_its_folder() -> None:
    assert console.serve("/console", strict_auth=False, personas={})[:2] == (301, {"Location": "/console/"})
    for path in ("/console/../local/console.py", "/console/js/../../cli.py", "/console/nosuch.js"):
        assert console.serve(path, strict_auth=False, personas={})[0] == 404, path
    assert console.serve("/v1/models", strict_auth=False, personas={}) is None


def test_console_config_offers_the_strict_auth_personas_first() -> None:
    _, _, body = console.serve("/console/config.json", strict_auth=True, personas={"bob": "Approver"})
    config = json.loads(body)
    assert (config["api"], config["auth"], config["strict_auth"]) == ("", "local", True)
    assert config["identities"][0] == {"name": "bob", "persona": "Approver"}
    assert {"demo-producer", "demo-operator"} <= {i["name"] for i in config["identities"]}


@pytest.mark.parametrize("path", ASSETS, ids=lambda p: str(p.relative_to(console.ASSETS)))
def test_console_asset_has_no_inline_code_no_string_markup_and_no_remote_fetch(path: Path) -> None:
    text = path.read_text()
    if path.suffix == ".html":
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), "inline script"
        assert "<style" not in text and " style=" not in text and not re.search(r"\son[a-z]+=", text)
    if path.suffix == ".js":
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in text, sink
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), "an absolute URL"


def test_console_assets_are_under_300_kb_compressed() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in ASSETS:
            tar.add(path, arcname=str(path.relative_to(console.ASSETS)))
    assert len(gzip.compress(buf.getvalue())) < 300 * 1024
    assert SCRIPTS and all(p.suffix in {".html", ".css", ".js", ".json"} for p in ASSETS)
