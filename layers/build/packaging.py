"""Zip-packaged functions of a synthesized template with their code and layer assets, and their
unzipped sizes as Lambda counts them against its 250 MB limit."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from layers.assembly import read_assembly
from layers.build.slimming import size_bytes

LAYER_METADATA = "stepwise:layer"  # construct metadata on each LayerVersion: the layer's name
LAMBDA_UNZIPPED_LIMIT = 262_144_000  # 250 MB as Lambda counts it (250 * 1024 * 1024 bytes): code + layers


@dataclass
class PackagedLayer:
    logical_id: str
    name: str | None  # layers/<name>, from the stack's construct metadata; None for an imported layer
    path: Path | None  # the staged asset (directory or .zip) in the assembly; None for an imported layer

    def size_bytes(self) -> int:
        if self.path is None:
            raise LookupError(f"layer {self.logical_id} is not an asset of this assembly; its size is unknown")
        return asset_size_bytes(self.path)


@dataclass
class PackagedFunction:
    """A zip-packaged Lambda function of a synthesized template, with its code and layer assets."""

    logical_id: str
    handler: str
    architecture: str
    code: Path
    layers: list[PackagedLayer]
    environment: dict[str, Any]

    @property
    def handler_module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    def size_bytes(self) -> int:
        return asset_size_bytes(self.code) + sum(layer.size_bytes() for layer in self.layers)


def asset_size_bytes(path: Path) -> int:
    """Unzipped bytes of a staged asset: a directory, or a .zip file's members."""
    if path.is_dir():
        return size_bytes(path)
    with zipfile.ZipFile(path) as archive:
        return sum(info.file_size for info in archive.infolist())


def zip_functions(outdir: Path, stack: str) -> tuple[list[PackagedFunction], list[str]]:
    """The zip functions of `stack` in the assembly at `outdir`, and the logical ids of its image
    functions (container images are not subject to the 250 MB zip limit)."""
    assembly = read_assembly(outdir, stack)
    template = assembly.template
    assets = {asset.object_key: asset.source for asset in assembly.file_assets}
    layer_names: dict[str, str] = {}
    metadata = assembly.construct_metadata()
    for path, entries in metadata.items():
        for entry in entries:
            if entry["type"] == LAYER_METADATA:
                for inner in metadata.get(f"{path}/Resource", []):
                    if inner["type"] == "aws:cdk:logicalId":
                        layer_names[inner["data"]] = entry["data"]

    resources = template.get("Resources", {})

    def layer(ref: object) -> PackagedLayer:
        if (
            isinstance(ref, dict)
            and "Ref" in ref
            and resources.get(ref["Ref"], {}).get("Type") == ("AWS::Lambda::LayerVersion")
        ):
            lid = ref["Ref"]
            key = resources[lid]["Properties"]["Content"]["S3Key"]
            return PackagedLayer(lid, layer_names.get(lid), assets.get(key) if isinstance(key, str) else None)
        return PackagedLayer(json.dumps(ref), None, None)

    functions, images = [], []
    for lid, res in sorted(resources.items()):
        if res.get("Type") != "AWS::Lambda::Function":
            continue
        props = res.get("Properties", {})
        if props.get("PackageType") == "Image" or "ImageUri" in props.get("Code", {}):
            images.append(lid)
            continue
        key = props.get("Code", {}).get("S3Key")
        if not isinstance(key, str) or key not in assets:
            continue  # inline code (ZipFile) or an object not staged here: e.g. CDK's own helper functions
        functions.append(
            PackagedFunction(
                logical_id=lid,
                handler=props.get("Handler", ""),
                architecture=(props.get("Architectures") or ["x86_64"])[0],
                code=assets[key],
                layers=[layer(ref) for ref in props.get("Layers", [])],
                environment=props.get("Environment", {}).get("Variables", {}),
            )
        )
    return functions, images
