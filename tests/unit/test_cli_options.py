from __future__ import annotations

from stepwise.cli import build_parser, hoist_global_options


def test_cli_target_options_are_accepted_after_the_command() -> None:
    argv = hoist_global_options(["status", "--stack", "Stepwise", "--region=eu-west-1"])
    args = build_parser().parse_args(argv)
    assert (args.command, args.stack, args.region) == ("status", "Stepwise", "eu-west-1")


def test_cli_identity_option_keeps_its_value_and_the_command_its_arguments() -> None:
    argv = hoist_global_options(["local", "up", "--as", "alice", "--port", "9000"])
    args = build_parser().parse_args(argv)
    assert args.identity == "alice" and args.port == 9000
