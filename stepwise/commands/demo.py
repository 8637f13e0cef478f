"""`stepwise demo [--serve] [--port N]`."""

from __future__ import annotations

import argparse
from typing import Any

from stepwise.demo import run_demo


def register(sub: Any) -> None:
    parser = sub.add_parser("demo", help="run the whole lifecycle locally, step by step")
    parser.add_argument("--serve", action="store_true", help="keep the local cloud and its API running afterwards")
    parser.add_argument("--port", type=int, default=None, help="API port (default: any free port; 8787 with --serve)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, target_factory: Any) -> int:
    port = args.port if args.port is not None else (8787 if args.serve else 0)
    return run_demo(port=port, serve=args.serve)
