"""`stepwise`: the operator's command line.

Each area adds a module to COMMAND_MODULES with `register(subparsers)`; each subcommand sets
`func(args, target_factory) -> int` via `parser.set_defaults(func=...)`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from stepwise.target import Target, resolve

COMMAND_MODULES = [
    "stepwise.commands.local",
    "stepwise.commands.status",
    "stepwise.commands.demo",
    "stepwise.commands.predict",
    "stepwise.commands.release",
    "stepwise.commands.models",
    "stepwise.commands.data",
    "stepwise.commands.drift",
]

TargetFactory = Callable[[], Target]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stepwise", description="Operate Stepwise: data, models, releases.")
    parser.add_argument("--endpoint", help="local cloud URL (default $STEPWISE_ENDPOINT or http://127.0.0.1:8787)")
    parser.add_argument("--stack", help="a deployed stack's name (uses AWS credentials)")
    parser.add_argument("--region", help="the deployed stack's region")
    parser.add_argument("--as", dest="identity", default="operator", help="local cloud: the identity to sign as")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    def target() -> Target:
        return resolve(args.endpoint, args.stack, args.region, args.identity)

    try:
        return int(args.func(args, target) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
