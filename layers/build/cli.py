"""The command line: `python -m layers.build` (see the package's docstring for the modes)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import layers.build
from layers.build.builder import build_layer, build_local_layer
from layers.build.cache import current_builds, prune, read_manifest
from layers.build.packaging import LAMBDA_UNZIPPED_LIMIT, asset_size_bytes, zip_functions
from layers.build.requirements import flatten_requirements, image_names, layer_names, requirements_file, unpinned
from layers.build.target import DEFAULT_ARCH, PLATFORMS, TARGET_PYTHON, LayerBuildError, Target
from layers.build.wheels import resolve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m layers.build",
        description=layers.build.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("names", nargs="*", help="layers to build (default: every layers/*/requirements.txt)")
    parser.add_argument("--arch", default=DEFAULT_ARCH, choices=sorted(PLATFORMS))
    parser.add_argument("--python", default=TARGET_PYTHON, help="the function runtime's Python (default %(default)s)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--check", action="store_true", help="only resolve (layers and images): does every pinned package have a wheel?"
    )
    mode.add_argument("--local", action="store_true", help="build for this interpreter with the Lambda build's pins")
    mode.add_argument("--prune", action="store_true", help="delete cached builds that are not current")
    mode.add_argument("--sizes", metavar="CDK_OUT", help="print each zip function's unzipped code + layers size")
    parser.add_argument("--stack", default="Stepwise", help="stack artifact for --sizes (default %(default)s)")
    args = parser.parse_args(argv)
    if args.sizes:
        return print_sizes(Path(args.sizes), args.stack)
    names = args.names or layer_names()
    target = Target(args.arch, args.python)
    failed = 0
    if args.prune:
        for path in prune(current_builds(args.python)):
            print(f"removed {path}")
        return 0
    if args.check and not args.names:
        names = layer_names() + image_names()
    for name in names:
        lines = flatten_requirements(requirements_file(name))
        for line in unpinned(lines):
            print(f"warning: layer {name!r}: {line!r} is not an exact == pin", file=sys.stderr)
        try:
            if args.check:
                res = resolve(lines, target)
                kind = "image" if name in image_names() else "layer"
                print(f"{name} ({kind}): resolves for {target.describe()}: {len(res.wheels)} wheels")
                for wheel in res.wheels:
                    print(f"  {wheel}")
                continue
            out = build_local_layer(name) if args.local else build_layer(name, target)
        except LayerBuildError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            failed += 1
            continue
        manifest = read_manifest(out)
        slimmed = manifest["slimmed"]["bytes"] / 1e6
        print(f"{name}: {out} {manifest['size_bytes'] / 1e6:.1f} MB unzipped ({slimmed:.1f} MB slimmed away)")
        for pkg, sub in manifest["substitutions"].items():
            print(f"  {pkg}: {sub['lambda']} has no wheel here; using {sub['local']}")
    return 1 if failed else 0


def print_sizes(outdir: Path, stack: str) -> int:
    functions, images = zip_functions(outdir, stack)
    for fn in functions:
        layers = ", ".join(f"{layer.name or layer.logical_id} {layer.size_bytes() / 1e6:.1f}" for layer in fn.layers)
        share = fn.size_bytes() / LAMBDA_UNZIPPED_LIMIT
        print(
            f"{fn.logical_id} ({fn.handler_module}, {fn.architecture}): {fn.size_bytes() / 1e6:.1f} MB unzipped "
            f"= {share:.0%} of Lambda's limit; code {asset_size_bytes(fn.code) / 1e6:.1f} MB; layers: {layers or '-'}"
        )
    for lid in images:
        print(f"{lid}: container image (not subject to the zip limit)")
