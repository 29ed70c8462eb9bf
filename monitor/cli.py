"""Command-line interface: parses arguments, configures logging, dispatches to the IO shell.

Exit codes: 0 clean, 1 a new critical or high alert, 2 usage or configuration error,
3 operational failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from monitor import __version__
from monitor.config import load_config
from monitor.errors import ConfigError, MonitorError

EXIT_OK = 0
EXIT_ALERT = 1
EXIT_USAGE = 2
EXIT_OPERATIONAL = 3

log = logging.getLogger(__name__)


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from monitor.sandbox.server import run_sandbox

    run_sandbox(host=args.host, port=args.port, state_dir=args.state)
    return EXIT_OK


def _cmd_config_check(args: argparse.Namespace) -> int:
    config = load_config(Path(args.config))
    print(json.dumps(config.redacted(), indent=2))
    for warning in config.warnings:
        print(f"tlog-monitor: warning: {warning}", file=sys.stderr)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="tlog-monitor",
        description="Monitor transparency logs: verify checkpoints, detect split views, "
        "watch signing identities.",
    )
    parser.add_argument("--version", action="version", version=f"tlog-monitor {__version__}")
    parser.add_argument("--config", default="config.toml", help="path to config.toml")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sandbox = sub.add_parser("sandbox", help="serve a local transparency log for tests and drills")
    sandbox.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sandbox.add_argument("--port", type=int, default=8080, help="port to listen on")
    sandbox.add_argument("--state", required=True, help="directory that keeps the log's state")
    sandbox.set_defaults(func=_cmd_sandbox)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_sub.add_parser(
        "check",
        help="validate the configuration and print it resolved, with secrets redacted",
        description="Load the configuration, print it as JSON with defaults filled in and "
        "notify URLs redacted, and exit 0; exit 2 with a message naming the key if it is invalid.",
    )
    check.set_defaults(func=_cmd_config_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tlog-monitor` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = args.func(args)
    except ConfigError as e:
        print(f"tlog-monitor: configuration error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except MonitorError as e:
        print(f"tlog-monitor: {e}", file=sys.stderr)
        return EXIT_OPERATIONAL
    except KeyboardInterrupt:
        return EXIT_OK
    return code


if __name__ == "__main__":
    sys.exit(main())
