"""Synthesize the CDK app and read the cloud assembly (template, assets)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra import constants as c

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class FileAsset:
    id: str
    source: Path  # a directory (zipped on publish) or a file
    packaging: str  # "zip" or "file"
    bucket_template: str  # e.g. cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}
    object_key: str


@dataclass(frozen=True)
class Assembly:
    outdir: Path
    stack_name: str
    template: dict[str, Any]
    file_assets: list[FileAsset]
    image_assets: dict[str, Path]

    def resources_of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.template["Resources"].items() if v["Type"] == resource_type}

    def function_code_dir(self, logical_id: str) -> Path | None:
        """The local directory a Lambda function's code asset was staged from: the S3 key of a
        zip function, or the image tag of an image function, names the asset in the manifest."""
        code = self.template["Resources"][logical_id]["Properties"].get("Code", {})
        key = code.get("S3Key")
        if isinstance(key, str):
            asset = next((a for a in self.file_assets if a.object_key == key), None)
            return asset.source if asset and asset.source.is_dir() else None
        image = json.dumps(code.get("ImageUri", ""))
        return next((path for asset_id, path in self.image_assets.items() if asset_id in image), None)


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
    return read_assembly(outdir)


def read_assembly(outdir: Path, stack_name: str = c.STACK_NAME) -> Assembly:
    manifest = json.loads((outdir / "manifest.json").read_text())
    stack = manifest["artifacts"][stack_name]
    template = json.loads((outdir / stack["properties"]["templateFile"]).read_text())
    assets_file = next(
        a["properties"]["file"]
        for a in manifest["artifacts"].values()
        if a["type"] == "cdk:asset-manifest" and a["properties"]["file"].startswith(stack_name)
    )
    assets = json.loads((outdir / assets_file).read_text())
    files = []
    for asset_id, asset in assets.get("files", {}).items():
        dest = next(iter(asset["destinations"].values()))
        files.append(
            FileAsset(
                id=asset_id,
                source=outdir / asset["source"]["path"],
                packaging=asset["source"].get("packaging", "file"),
                bucket_template=dest["bucketName"],
                object_key=dest["objectKey"],
            )
        )
    images = {
        asset_id: outdir / asset["source"]["directory"]
        for asset_id, asset in assets.get("dockerImages", {}).items()
        if "directory" in asset.get("source", {})
    }
    return Assembly(outdir=outdir, stack_name=stack_name, template=template, file_assets=files, image_assets=images)
