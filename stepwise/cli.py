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
    "stepwise.commands.release",
    "stepwise.commands.predict",
    "stepwise.commands.models",
    "stepwise.commands.features",
    "stepwise.commands.materialize",
    "stepwise.commands.data",
    "stepwise.commands.drift",
    "stepwise.commands.governance",
    "stepwise.commands.batch",
    "stepwise.commands.imports",
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


GLOBAL_OPTIONS = ("--endpoint", "--stack", "--region", "--as")


def hoist_global_options(argv: Sequence[str]) -> list[str]:
    """Accept the target options anywhere (`stepwise status --stack S` as well as
    `stepwise --stack S status`) by moving them, with their values, before the command."""
    front: list[str] = []
    rest: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        arg = items[i]
        name = arg.split("=", 1)[0]
        if arg == "--":
            rest += items[i:]
            break
        if name in GLOBAL_OPTIONS:
            if "=" in arg:
                front.append(arg)
            else:
                front += items[i : i + 2]
                i += 1
        else:
            rest.append(arg)
        i += 1
    return front + rest


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(hoist_global_options(sys.argv[1:] if argv is None else argv))

    def target() -> Target:
        return resolve(args.endpoint, args.stack, args.region, args.identity)

    try:
        return int(args.func(args, target) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
