"""Reading a synthesized CDK cloud assembly (the `cdk.out` directory): a stack's template, the
file and image assets it was staged with, and its construct metadata.

One reader for everything that looks at a synthesis: the layer sizes (`python -m layers.build
--sizes`, tests/infra/test_packaging.py) and the local cloud (stepwise/local), which deploys the
template and publishes these assets. It lives beside the layer builder because infra imports
layers and stepwise may import both, while this module imports neither.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
    artifact: dict[str, Any]  # the stack's entry in manifest.json

    def resources_of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.template["Resources"].items() if v["Type"] == resource_type}

    def file_asset(self, object_key: str) -> FileAsset | None:
        """The file asset staged for an S3 object key the template names (Code.S3Key, Content.S3Key)."""
        return next((a for a in self.file_assets if a.object_key == object_key), None)

    def function_code_dir(self, logical_id: str) -> Path | None:
        """The local directory a Lambda function's code asset was staged from: the S3 key of a
        zip function, or the image tag of an image function, names the asset in the manifest."""
        code = self.template["Resources"][logical_id]["Properties"].get("Code", {})
        key = code.get("S3Key")
        if isinstance(key, str):
            asset = self.file_asset(key)
            return asset.source if asset and asset.source.is_dir() else None
        image = json.dumps(code.get("ImageUri", ""))
        return next((path for asset_id, path in self.image_assets.items() if asset_id in image), None)

    def construct_metadata(self) -> dict[str, list[dict[str, Any]]]:
        """The stack's construct metadata: construct path -> entries ({"type", "data"}), read from
        the stack's metadata file, or the manifest where the metadata is inline."""
        if "additionalMetadataFile" in self.artifact:
            data: dict[str, list[dict[str, Any]]] = json.loads(
                (self.outdir / self.artifact["additionalMetadataFile"]).read_text()
            )
            return data
        inline: dict[str, list[dict[str, Any]]] = self.artifact.get("metadata", {})
        return inline


def stack_names(outdir: Path) -> list[str]:
    """The stacks (`aws:cloudformation:stack` artifacts) of the cloud assembly at `outdir`, each
    after the stacks it depends on: the order `cdk deploy --all` deploys them in."""
    manifest = json.loads((outdir / "manifest.json").read_text())
    artifacts: dict[str, dict[str, Any]] = manifest["artifacts"]
    stacks = [name for name, artifact in artifacts.items() if artifact.get("type") == "aws:cloudformation:stack"]
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in ordered:
            return
        if name in visiting:
            raise ValueError(f"the cloud assembly at {outdir} has a dependency cycle through stack {name!r}")
        visiting.add(name)
        for dependency in artifacts[name].get("dependencies", []):
            if dependency in stacks:
                visit(dependency)
        visiting.discard(name)
        ordered.append(name)

    for name in stacks:
        visit(name)
    return ordered


def read_assembly(outdir: Path, stack_name: str) -> Assembly:
    """The stack `stack_name` of the cloud assembly at `outdir`, with the assets of the asset
    manifests it depends on (CDK names them `<stack>.assets`)."""
    manifest = json.loads((outdir / "manifest.json").read_text())
    artifacts: dict[str, dict[str, Any]] = manifest["artifacts"]
    if stack_name not in artifacts:
        raise LookupError(f"the cloud assembly at {outdir} has no stack {stack_name!r}; it has {sorted(artifacts)}")
    stack = artifacts[stack_name]
    template = json.loads((outdir / stack["properties"]["templateFile"]).read_text())
    depends = set(stack.get("dependencies", []))
    files: list[FileAsset] = []
    images: dict[str, Path] = {}
    for name, artifact in artifacts.items():
        if artifact.get("type") != "cdk:asset-manifest" or not (name in depends or name.startswith(f"{stack_name}.")):
            continue
        assets = json.loads((outdir / artifact["properties"]["file"]).read_text())
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
        for asset_id, asset in assets.get("dockerImages", {}).items():
            if "directory" in asset.get("source", {}):
                images[asset_id] = outdir / asset["source"]["directory"]
    return Assembly(
        outdir=outdir,
        stack_name=stack_name,
        template=template,
        file_assets=files,
        image_assets=images,
        artifact=stack,
    )


def read_assemblies(outdir: Path) -> list[Assembly]:
    """Every stack of the cloud assembly at `outdir`, in deployment order (see stack_names)."""
    return [read_assembly(outdir, name) for name in stack_names(outdir)]


def _exports(assemblies: list[Assembly]) -> dict[str, Any]:
    """Export name -> the value it exports (a Ref or Fn::GetAtt in the exporting stack)."""
    return {
        output["Export"]["Name"]: output["Value"]
        for assembly in assemblies
        for output in assembly.template.get("Outputs", {}).values()
        if isinstance(output.get("Export", {}).get("Name"), str)
    }


def _resolve_imports(value: Any, exports: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"Fn::ImportValue"} and value["Fn::ImportValue"] in exports:
            return exports[value["Fn::ImportValue"]]
        return {k: _resolve_imports(v, exports) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_imports(v, exports) for v in value]
    return value


def merged_template(assemblies: list[Assembly], *, resolve_imports: bool = True) -> dict[str, Any]:
    """Every stack's template in one: the sections (Resources, Outputs, ...) merged, a logical id in
    two stacks an error; with `resolve_imports`, each import of another stack's export is replaced
    by the exported value."""
    merged: dict[str, Any] = {}
    for assembly in assemblies:
        for section, entries in assembly.template.items():
            if not isinstance(entries, dict):
                merged.setdefault(section, entries)
                continue
            into = merged.setdefault(section, {})
            clash = set(into) & set(entries) - {"BootstrapVersion", "CheckBootstrapVersion"}
            if section == "Resources" and clash:
                raise ValueError(f"{assembly.stack_name} repeats {sorted(clash)}")
            into.update(entries)
    return _resolve_imports(merged, _exports(assemblies)) if resolve_imports else merged
