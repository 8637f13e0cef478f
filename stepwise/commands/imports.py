"""Bring your own model: import an ONNX model trained elsewhere (over the HTTPS API).

stepwise import MODEL --onnx FILE --dataset NAME@V --task classification|regression
        [--target COL] [--source-url URL --source-commit SHA] [--description TEXT] [--wait]

Asks for a presigned upload URL, PUTs the file to it, then posts the import naming the upload, its
sha256 and the dataset version to evaluate it on; the import starts its lifecycle run. With
--wait, follows the run until it registers a version (or fails, with the reasons).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from stepwise.import_steps import DATASET_VERSION


def register(sub: Any) -> None:
    imp = sub.add_parser("import", help="import an ONNX model trained elsewhere; it is verified, gated and registered")
    imp.add_argument("model")
    imp.add_argument("--onnx", type=Path, required=True, help="the ONNX file")
    imp.add_argument("--dataset", required=True, help="NAME@VERSION: the dataset version to evaluate it on")
    imp.add_argument("--task", choices=["classification", "regression"], required=True)
    imp.add_argument("--target", help="the target column (default: the contract's target)")
    imp.add_argument("--source-url", help="where the model's code lives (http(s) URL)")
    imp.add_argument("--source-commit", help="the commit it was trained at (hex)")
    imp.add_argument("--description", default="")
    imp.add_argument("--wait", action="store_true", help="follow the lifecycle run until it ends")
    imp.add_argument("--timeout", type=float, default=900.0, help="seconds to wait with --wait")
    imp.set_defaults(func=run_import)


def run_import(args: argparse.Namespace, target_factory: Any) -> int:
    from stepwise.client import ImportResult, Stepwise, StepwiseError

    match = DATASET_VERSION.match(args.dataset)
    if match is None:
        print(f"error: --dataset: {args.dataset!r} is not NAME@VERSION (e.g. wine@3)")
        return 2
    try:
        content = args.onnx.read_bytes()
    except OSError as exc:
        print(f"error: --onnx: cannot read {args.onnx}: {exc}")
        return 2
    client = Stepwise(target=target_factory())
    try:
        result: ImportResult = client.import_model(
            args.model,
            content,
            dataset=args.dataset,
            task=args.task,
            target=args.target,
            source_url=args.source_url,
            source_commit=args.source_commit,
            description=args.description,
        )
        print(f"import {result.import_id} of {args.model} accepted; lifecycle run {result.execution_name}")
        if not args.wait:
            return 0
        result = client.wait(result, args.timeout)
    except StepwiseError as exc:
        print(f"error: {exc}")
        return 1
    print(f"run {result.execution_name}: version {result.version} registered, waiting for approval")
    return 0
