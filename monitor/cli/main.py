"""Command-line interface: parses arguments, configures logging, dispatches to the IO shell.

Exit codes: 0 clean, 1 a new critical or high alert, 2 usage or configuration error,
3 operational failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from monitor import __version__
from monitor.cli.reports import DEFAULT_TRUST_CHANGES, ReportFormat
from monitor.config.settings import Config, load_config
from monitor.core.alerts import AlertKind
from monitor.core.durations import parse_duration
from monitor.core.errors import ConfigError, MonitorError, UsageError
from monitor.core.terminal import printable
from monitor.service.logsetup import LogFormat, configure_logging

if TYPE_CHECKING:
    from monitor.service.daemon import CheckOutcome

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
    from monitor.core.watch.match import rule_expense
    from monitor.service.wiring import resolve_logs

    config = load_config(Path(args.config))
    resolve_logs(config)
    print(json.dumps(config.redacted(), indent=2))
    for warning in config.warnings:
        print(f"tlog-monitor: warning: {warning}", file=sys.stderr)
    for rule in config.watches:
        expense = rule_expense(rule)
        if expense is not None:
            print(
                f"tlog-monitor: note: rule {rule.name!r} is expensive to scan: {expense} "
                "(docs/configuration.md#what-makes-a-rule-expensive)",
                file=sys.stderr,
            )
    if config.sigstore:
        count = len(config.sigstore)
        names = ", ".join(s.name for s in config.sigstore)
        print(
            f"tlog-monitor: note: {count} [[sigstore]] source{'s' if count > 1 else ''} ({names}): "
            f"{'their' if count > 1 else 'its'} logs are discovered from "
            f"{'their TUF repositories' if count > 1 else 'its TUF repository'} at run time "
            "(`tlog-monitor report status` lists them)",
            file=sys.stderr,
        )
    return EXIT_OK


def _cmd_config_example(_args: argparse.Namespace) -> int:
    from monitor.config.example import example_config

    sys.stdout.write(example_config())
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from monitor.service.daemon import run_daemon

    path = Path(args.config)
    config = load_config(path)
    for warning in config.warnings:
        log.warning("configuration: %s", warning)
    run_daemon(path, config)
    return EXIT_OK


#: Linux's largest possible PID (PID_MAX_LIMIT); 1 is init, which a reload must never signal.
_PID_MAX = 4_194_304


def _cmd_reload(args: argparse.Namespace) -> int:
    from monitor.service.wiring import resolve_logs

    pid: int = args.pid
    if not 1 < pid <= _PID_MAX:
        # os.kill(0 or a negative number) would signal a whole process group.
        raise UsageError(f"--pid {pid}: not the PID of a daemon (expected 2 .. {_PID_MAX})")
    # The daemon refuses a broken configuration on SIGHUP too, but only in its log: checking it
    # here first makes `systemctl reload` itself fail with the error, and sends no signal.
    try:
        resolve_logs(load_config(Path(args.config)))
    except ConfigError as e:
        # Under systemd, the journal's record of the refusal at error priority (`journalctl -p
        # err`); main() still prints the usual "configuration error" line.
        log.error("reload refused, the daemon keeps its running configuration: %s", e)
        raise
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise UsageError(f"--pid {pid}: no such process (is the daemon running?)") from None
    except PermissionError:
        raise UsageError(
            f"--pid {pid}: not allowed to signal it (run as the daemon's user or root)"
        ) from None
    return EXIT_OK


def _cmd_check(args: argparse.Namespace) -> int:
    from monitor.service.daemon import check_once

    config = load_config(Path(args.config))
    try:
        outcome = asyncio.run(check_once(config))
    except MonitorError:
        raise
    except Exception as e:
        # Exit 1 means "a new urgent alert": an unexpected failure must not look like one.
        log.error("check: unexpected %s: %s", type(e).__name__, e, exc_info=e)
        print(
            f"tlog-monitor: check failed: unexpected {type(e).__name__}: {e} (a bug in "
            "tlog-monitor; the traceback is logged above)",
            file=sys.stderr,
        )
        return EXIT_OPERATIONAL
    # Summaries and errors carry text from logs and certificates: escaped for the terminal.
    for alert_id, alert in outcome.alerts:
        summary = printable(alert.summary)
        print(f"alert {alert_id} [{alert.severity.value}] {alert.kind.value}: {summary}")
    for error in outcome.errors:
        print(f"error: {printable(error)}", file=sys.stderr)
    if outcome.undelivered:
        print(f"{outcome.undelivered} notification(s) not yet delivered", file=sys.stderr)
    print(check_summary(outcome))
    if outcome.urgent:
        return EXIT_ALERT
    return EXIT_OPERATIONAL if outcome.errors else EXIT_OK


def check_summary(outcome: CheckOutcome) -> str:
    """The one line a `check` ends with: logs polled with their verified sizes, entries scanned,
    new alerts and failures."""
    sizes = ", ".join(
        f"{printable(name)} {'unverified' if size is None else size}"
        for name, size in outcome.sizes.items()
    )
    plural = "" if len(outcome.sizes) == 1 else "s"
    return (
        f"checked {len(outcome.sizes)} log{plural} ({sizes}): {outcome.scanned} entries scanned, "
        f"{len(outcome.alerts)} new alert(s), {len(outcome.errors)} error(s)"
    )


def _since(text: str | None) -> datetime | None:
    """`--since`: an ISO-8601 time, or a duration back from now ("2h", "7d")."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            return datetime.now(UTC) - parse_duration(text)
        except ValueError as e:
            raise UsageError(
                f"--since: expected an ISO-8601 time or a duration like '2h', got {text!r}"
            ) from e
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


_MAX_ALERT_ID = 2**63 - 1
"""SQLite's largest integer: alert ids are its row ids."""


def _alert_id(text: str) -> int:
    """`--id`: an alert id as notifications name it (`alert #42`)."""
    try:
        value = int(text.strip().removeprefix("#"))
    except ValueError:
        value = 0
    if not 1 <= value <= _MAX_ALERT_ID:
        raise argparse.ArgumentTypeError(
            f"expected an alert id, a whole number from 1 as in 'alert #42', got {text!r}"
        )
    return value


_MAX_LIMIT = 1_000_000


def _limit(text: str) -> int:
    """`--limit`: how many rows, a whole number from 1."""
    try:
        value = int(text.strip())
    except ValueError:
        value = 0
    if not 1 <= value <= _MAX_LIMIT:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 1 to {_MAX_LIMIT}, got {text!r}"
        )
    return value


def _cmd_report(args: argparse.Namespace) -> int:
    from monitor.cli import reports
    from monitor.store.database import Store

    if args.id is not None and args.what != "alerts":
        raise UsageError(f"--id: only 'report alerts' selects one alert, not {args.what!r}")
    # Filters a report does not have are refused, never silently ignored.
    if args.rule is not None and args.what != "matches":
        raise UsageError(f"--rule: only 'report matches' has a rule filter, not {args.what!r}")
    if args.kind is not None and args.what != "alerts":
        raise UsageError(f"--kind: only 'report alerts' has a kind filter, not {args.what!r}")
    if args.since is not None and args.what == "status":
        raise UsageError("--since: 'report status' shows the current state, it has no time filter")
    if args.limit is not None and args.what != "trust":
        raise UsageError(f"--limit: only 'report trust' has a limit, not {args.what!r}")
    if args.what == "trust" and args.log is not None:
        raise UsageError("--log: 'report trust' is per [[sigstore]] source, it has no log filter")
    if args.what == "trust" and args.format == ReportFormat.CSV.value:
        raise UsageError(
            "--format csv: 'report trust' is two tables (sources and changes); "
            "use --format table or json"
        )
    config = load_config(Path(args.config))
    since = _since(args.since)
    fmt = ReportFormat(args.format)
    _require_database(config)
    store = Store.open_readonly(config.monitor.database)
    if args.what == "trust":
        try:
            trust = reports.trust_report(
                store, since=since, limit=args.limit or reports.DEFAULT_TRUST_CHANGES
            )
        finally:
            store.close()
        sys.stdout.write(reports.render_trust(trust, fmt))
        return EXIT_OK
    try:
        if args.what == "alerts":
            report = reports.alerts_report(
                store,
                log=args.log,
                since=since,
                details=fmt is ReportFormat.JSON,
                alert_id=args.id,
                kind=args.kind,
            )
        elif args.what == "matches":
            report = reports.matches_report(
                store, log=args.log, since=since, rule=args.rule, details=fmt is ReportFormat.JSON
            )
        elif args.what == "checkpoints":
            report = reports.checkpoints_report(store, log=args.log, since=since)
        else:
            report = reports.status_report(store, log=args.log)
    finally:
        store.close()
    if args.id is not None and not report.rows:
        filtered = args.log is not None or since is not None or args.kind is not None
        where = " matching the other filters" if filtered else ""
        database = config.monitor.database
        raise UsageError(f"report alerts: no alert #{args.id}{where} in the database {database}")
    sys.stdout.write(reports.render(report, fmt))
    return EXIT_OK


def _require_database(config: Config) -> None:
    """Raise UsageError, saying where it looked and why, when the database is not there.

    Never suggests `check` or `run`: run from a shell with another configuration, or before the
    service's first start, they would create a second database that trusts every log's first
    checkpoint again."""
    from monitor.store.database import StoreError

    path = config.monitor.database
    try:
        path.stat()
    except FileNotFoundError:
        raise UsageError(
            f"database {path} does not exist ({config.monitor.database_source}). Nothing has "
            f"recorded anything there: check that {config.path} is the configuration the monitor "
            "runs with (for the service: systemctl cat tlog-monitor), that it has started "
            "(systemctl status tlog-monitor), and that its database is set to this path"
        ) from None
    except OSError as e:
        # Under DynamicUser= the state directory is private to the service's user.
        raise StoreError(
            f"database {path}: cannot access: {e.strerror or e} ({config.monitor.database_source});"
            " run the command as the service's user (docs/systemd.md)"
        ) from e


def _cmd_notify_test(args: argparse.Namespace) -> int:
    from monitor.notify.notifier import send_test

    config = load_config(Path(args.config))
    channels = list(config.channels)
    if args.channel:
        channels = [c for c in channels if c.name == args.channel]
        if not channels:
            known = ", ".join(c.name for c in config.channels) or "none"
            raise UsageError(f"--channel: no [[notify]] channel named {args.channel!r} ({known})")
    if not channels:
        raise ConfigError("no [[notify]] channels are configured")
    for channel in channels:
        asyncio.run(send_test(channel))
        print(f"channel {channel.name}: test notification sent to {len(channel.urls)} URL(s)")
    return EXIT_OK


_MAX_CHECKPOINT_BYTES = 64 * 1024
"""`inspect --checkpoint`: a signed note is a few hundred bytes, with cosignatures a few KiB."""


def _cmd_inspect(args: argparse.Namespace) -> int:
    from monitor.cli.evidence_export import read_regular_file
    from monitor.cli.inspect import MAX_INPUT_BYTES, InputError, inspect_entry

    # Read one byte past the limit, never the whole of an arbitrary file: load_input refuses
    # anything longer, and a checkpoint (or a /api/v1/log answer) is far smaller still.
    try:
        if args.file == "-":
            data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
        else:
            data = read_regular_file(
                Path(args.file), MAX_INPUT_BYTES, "give a regular file, or '-' to read stdin"
            )
        checkpoint = None
        if args.checkpoint:
            checkpoint = read_regular_file(
                Path(args.checkpoint), _MAX_CHECKPOINT_BYTES, "give a regular file"
            )
    except OSError as e:
        print(f"tlog-monitor: inspect: cannot read input: {e}", file=sys.stderr)
        return EXIT_USAGE
    if len(data) > MAX_INPUT_BYTES:
        print(
            f"tlog-monitor: inspect: input: expected at most {MAX_INPUT_BYTES} bytes "
            "(a LogEntry or a bundle is a few KiB), got more",
            file=sys.stderr,
        )
        return EXIT_USAGE
    extra = None
    if checkpoint is not None:
        # Bytes, not characters, are capped: a truncated multi-byte character is "too big".
        if len(checkpoint) > _MAX_CHECKPOINT_BYTES:
            print(
                f"tlog-monitor: inspect: --checkpoint: expected at most {_MAX_CHECKPOINT_BYTES} "
                "bytes (a signed checkpoint or a /api/v1/log response), got more",
                file=sys.stderr,
            )
            return EXIT_USAGE
        try:
            extra = checkpoint.decode("utf-8")
        except UnicodeDecodeError as e:
            print(f"tlog-monitor: inspect: cannot read input: {e}", file=sys.stderr)
            return EXIT_USAGE
    config_path = Path(args.config)
    config = None
    note = ""
    if config_path.exists():
        config = load_config(config_path)
    else:
        note = f"no rules evaluated: {config_path} does not exist (give one with --config)"
    if extra is not None and extra.lstrip().startswith("{"):
        # A Rekor /api/v1/log response: its signedTreeHead is the checkpoint.
        try:
            extra = str(json.loads(extra)["signedTreeHead"])
        except (ValueError, KeyError, TypeError) as e:
            print(f"tlog-monitor: inspect: --checkpoint: no signedTreeHead ({e})", file=sys.stderr)
            return EXIT_USAGE
    try:
        report = inspect_entry(
            data, config=config, config_note=note, log_name=args.log, checkpoint=extra
        )
    except InputError as e:
        # The message quotes the input (JSON-escaped, which leaves C1 controls and bidi as-is).
        print(f"tlog-monitor: inspect: {printable(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    if args.format == "json":
        print(json.dumps(report.to_json(), indent=2))
    else:
        # Certificate fields are the input's: escaped line by line, the layout kept.
        sys.stdout.write("\n".join(printable(line) for line in report.to_text().split("\n")))
    if not report.verified:
        failure = printable(str(report.failure))
        print(f"tlog-monitor: inspect: verification failed: {failure}", file=sys.stderr)
        return EXIT_ALERT
    return EXIT_OK


def _cmd_evidence_export(args: argparse.Namespace) -> int:
    from monitor.cli.evidence_export import export_alert
    from monitor.store.database import Store

    config = load_config(Path(args.config))
    _require_database(config)
    store = Store.open_readonly(config.monitor.database)
    try:
        data = export_alert(store, args.alert_id)
    finally:
        store.close()
    sys.stdout.buffer.write(data)
    return EXIT_OK


class _DefaultConfig(str):
    """The `--config` default: a str that says it was not given, for commands (evidence verify)
    that must not read a configuration nobody asked for."""

    __slots__ = ()


def _cmd_evidence_verify(args: argparse.Namespace) -> int:
    from monitor.cli.evidence_export import (
        EvidenceKeyError,
        configured_keys,
        pinned_keys,
        read_regular_file,
        trusted_root_keys,
    )
    from monitor.core.evidence import (
        MAX_EVIDENCE_BYTES,
        EvidenceInvalid,
        EvidenceUnreadable,
        verify,
    )

    try:
        # A pinned key is what the user says the log's key is: nothing else counts then.
        if args.key:
            known = pinned_keys(args.key)
        else:
            known = []
            if not isinstance(args.config, _DefaultConfig):
                known.extend(configured_keys(load_config(Path(args.config))))
            known.extend(trusted_root_keys())
    except EvidenceKeyError as e:
        print(f"tlog-monitor: evidence verify: {e}", file=sys.stderr)
        return EXIT_USAGE
    # Read one byte past the cap, never the whole of an arbitrary file or stream.
    try:
        if args.file == "-":
            data = sys.stdin.buffer.read(MAX_EVIDENCE_BYTES + 1)
        else:
            data = read_regular_file(
                Path(args.file),
                MAX_EVIDENCE_BYTES,
                "give a regular file, or '-' to read the evidence from stdin",
            )
        verdict = verify(data, known, any_key=args.any_key)
    except (OSError, EvidenceUnreadable) as e:
        print(
            f"tlog-monitor: evidence verify: cannot read evidence: {printable(str(e))}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except EvidenceInvalid as e:
        print(
            f"tlog-monitor: evidence verify: does not verify: {printable(str(e))}", file=sys.stderr
        )
        return EXIT_ALERT
    # The key's name is the document's own text: escaped, like every other line from outside.
    print("\n".join(printable(line) for line in verdict.lines))
    return EXIT_OK if verdict.proven else EXIT_ALERT


def _cmd_demo(args: argparse.Namespace) -> int:
    from monitor.cli.demo import run_demo

    return run_demo(Path(args.state))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="tlog-monitor",
        description="Monitor transparency logs: verify checkpoints, detect split views, "
        "watch signing identities.",
    )
    parser.add_argument("--version", action="version", version=f"tlog-monitor {__version__}")
    parser.add_argument(
        "--config", default=_DefaultConfig("config.toml"), help="path to config.toml"
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log debug messages, the libraries' included (without it they log only warnings)",
    )
    parser.add_argument(
        "--log-format",
        choices=[f.value for f in LogFormat],
        default=LogFormat.AUTO.value,
        help="log lines as text or JSON; auto: JSON when stderr is the systemd journal",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sandbox = sub.add_parser(
        "sandbox",
        help="serve a local transparency log for tests and drills",
        description="Serve a local Rekor v1 log and a tiled log on --host:--port, keeping their "
        "keys and entries in --state, with an admin API that makes them misbehave (fork, roll "
        "back, sign badly, fail): see monitor/sandbox/README.md. Runs until Ctrl-C or SIGTERM; "
        "exit 0.",
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sandbox.add_argument("--port", type=int, default=8080, help="port to listen on")
    sandbox.add_argument("--state", required=True, help="directory that keeps the log's state")
    sandbox.set_defaults(func=_cmd_sandbox)

    run = sub.add_parser(
        "run",
        help="run the monitor until stopped (systemd Type=notify; SIGHUP reloads the config)",
        description="The daemon: poll every log on its interval, scan and search its entries, "
        "deliver alerts every 10 s, and serve /metrics, /healthz, /readyz and /checkpoints on "
        "http_listen. SIGHUP reloads the configuration, SIGTERM or SIGINT drain and stop; speaks "
        "sd_notify under systemd. Exit 0 stopped, 2 configuration error, 3 operational failure.",
    )
    run.set_defaults(func=_cmd_run)

    reload = sub.add_parser(
        "reload",
        help="check the configuration, then make a running daemon reload it (SIGHUP)",
        description="What the systemd unit's ExecReload= runs: load and check the configuration "
        "as 'config check' does, then send SIGHUP to the daemon --pid, which re-reads it. Exit "
        "0 signalled; 2 the configuration is invalid (no signal is sent, the daemon keeps its "
        "running configuration) or --pid names no process this user may signal.",
    )
    reload.add_argument(
        "--pid", type=int, required=True, help="the daemon's PID (systemd: $MAINPID)"
    )
    reload.set_defaults(func=_cmd_reload)

    check_all = sub.add_parser(
        "check",
        help="poll every log once, deliver notifications, exit "
        "(0 clean, 1 new critical/high alert, 2 config error, 3 operational failure)",
        description="Poll every log once (with its views, scan and search), make one delivery "
        "round, print each new alert and a last summary line (logs checked with their verified "
        "sizes, entries scanned, new alerts, errors), and exit: 0 clean, 1 a new critical or "
        "high alert, 2 configuration error, 3 a log could not be polled or another operational "
        "failure. It uses the same database as 'run'.",
    )
    check_all.set_defaults(func=_cmd_check)

    report = sub.add_parser(
        "report",
        help="query the database: alerts, matches, checkpoints, status, trust",
        description="Print one report of the database (read-only; no log is contacted): "
        "alerts, matches, checkpoints, status or trust ([[sigstore]] sources and their "
        "changes). The table fits the terminal (100 columns when "
        "not a terminal), long text on its own lines under the row; JSON and CSV have every "
        "column in full (docs/reports.md). Exit 0; 2 a bad option or no database at the "
        "configured path; 3 the database cannot be read.",
    )
    report.add_argument("what", choices=["alerts", "matches", "checkpoints", "status", "trust"])
    report.add_argument(
        "--format", choices=[f.value for f in ReportFormat], default=ReportFormat.TABLE.value
    )
    report.add_argument("--log", help="only this log (its configured name)")
    report.add_argument("--rule", help="matches: only this watch rule")
    report.add_argument(
        "--kind",
        choices=[k.value for k in AlertKind],
        metavar="KIND",
        help="alerts: only alerts of this kind (split_view, unexpected_signer, ...: "
        "docs/alerts.md); a digest notification names the command",
    )
    report.add_argument(
        "--id",
        type=_alert_id,
        metavar="N",
        help="alerts: only alert N (as notifications name it, 'alert #N'); exit 2 if none",
    )
    report.add_argument("--since", help="only since this time (ISO-8601) or duration ago ('2h')")
    report.add_argument(
        "--limit",
        type=_limit,
        metavar="N",
        help=f"trust: at most N changes, newest first (default {DEFAULT_TRUST_CHANGES})",
    )
    report.set_defaults(func=_cmd_report)

    notify = sub.add_parser(
        "notify",
        help="notification tools",
        description="Notification tools: 'notify test' sends a test message through the "
        "configured [[notify]] channels.",
    )
    notify_sub = notify.add_subparsers(dest="notify_command", required=True, metavar="ACTION")
    notify_test = notify_sub.add_parser(
        "test",
        help="send a test notification to every URL of the configured channels",
        description="Send one test notification to every URL of every [[notify]] channel (or "
        "of --channel only). Exit 0 all sent, 2 configuration error or no such channel, 3 a "
        "URL failed.",
    )
    notify_test.add_argument("--channel", help="only this channel (its configured name)")
    notify_test.set_defaults(func=_cmd_notify_test)

    inspect = sub.add_parser(
        "inspect",
        help="verify one log entry or Sigstore bundle offline and show which watch rules match it",
        description="Verify a Rekor v1 LogEntry response, a Rekor v2 TransparencyLogEntry or a "
        "Sigstore bundle (inclusion proof, "
        "checkpoint, inclusion promise) against the production and staging trust roots and the "
        "configured logs, print the signer's identity and whether its certificate chains to the "
        "log's Fulcio CAs, and evaluate every watch rule of --config: matches with their "
        "reasons, non-matches with the first matcher that failed. No network. Exit 0 verified, "
        "1 verification failed, 2 unreadable input.",
    )
    inspect.add_argument(
        "file", help="the LogEntry, TransparencyLogEntry or bundle JSON file ('-' for stdin)"
    )
    # Also accepted after the subcommand: people type "inspect FILE --config C" when debugging
    # rules. SUPPRESS keeps the global --config (or its default) when this one is not given.
    inspect.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        help="path to config.toml (same as the global --config)",
    )
    inspect.add_argument("--log", help="use this configured log's key, Fulcio CAs and rules")
    inspect.add_argument(
        "--checkpoint",
        help="a signed checkpoint (or a /api/v1/log response) for the proof's tree size, when "
        "the input carries none",
    )
    inspect.add_argument("--format", choices=["text", "json"], default="text")
    inspect.set_defaults(func=_cmd_inspect)

    evidence_help = "export or verify portable, offline-checkable evidence of a split view"
    evidence = sub.add_parser("evidence", help=evidence_help, description=evidence_help)
    evidence_sub = evidence.add_subparsers(dest="evidence_command", required=True, metavar="ACTION")
    export = evidence_sub.add_parser(
        "export",
        help="write the evidence of a split_view alert as self-contained JSON to stdout",
        description="Write the evidence document of one split_view alert (its id as in 'report "
        "alerts'): the log's public key, both signed notes and the proof, as canonical JSON. "
        "Exit 0; 2 when the alert does not exist or is not a split_view.",
    )
    export.add_argument("alert_id", type=int, help="the alert's id")
    export.set_defaults(func=_cmd_evidence_export)
    verify = evidence_sub.add_parser(
        "verify",
        help="check an evidence file offline against known log keys (no database, no network)",
        description="Verify an evidence document: intact, both notes signed by the key it names, "
        "whether that key is one it knows (the --key files if given; otherwise the logs of "
        "--config when given and of sigstore's embedded production and staging trusted roots), "
        "and whether the notes prove misbehaviour by themselves. Exit 0 misbehaviour proven by a "
        "known key (or any key with --any-key); 1 the document does not verify, proves nothing, "
        "or its key is unknown; 2 unreadable input, a bad --key or configuration.",
    )
    verify.add_argument("file", help="the evidence JSON file (a regular file, or '-' for stdin)")
    verify.add_argument(
        "--key",
        action="append",
        metavar="FILE",
        help="the log's public key (PEM); the document's key must be this one (repeatable)",
    )
    # Also accepted after the subcommand, like inspect's; SUPPRESS keeps the global value.
    verify.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        help="also know the keys of this configuration's logs (same as the global --config)",
    )
    verify.add_argument(
        "--any-key",
        action="store_true",
        help="exit 0 for an equivocation by a key it does not know (the verdict says so)",
    )
    verify.set_defaults(func=_cmd_evidence_verify)

    demo = sub.add_parser(
        "demo",
        help="run a local sandbox log, make it misbehave, and watch the monitor catch it",
        description="The drill behind 'make demo': a sandbox log and a local receiver, four "
        "misbehaviours and an unexpected signer, the alerts and the report, in --state (wiped "
        "first if empty or made by the demo). Exit 0 every expected alert raised and delivered "
        "once, 1 otherwise, 2 the directory cannot be used.",
    )
    demo.add_argument("--state", default="demo-state", help="working directory for the demo")
    demo.set_defaults(func=_cmd_demo)

    config = sub.add_parser(
        "config",
        help="configuration tools",
        description="Configuration tools: 'config check' validates the configuration and "
        "prints it resolved; 'config example' prints the example configuration.",
    )
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_sub.add_parser(
        "check",
        help="validate the configuration and print it resolved, with secrets redacted",
        description="Load the configuration, build every notify URL with apprise (as a delivery "
        "would, sending nothing), print it as JSON with defaults filled in and notify URLs "
        "redacted, and exit 0; exit 2 with a message naming the key (and, for a URL apprise "
        "cannot use, the channel and the URL redacted) if it is invalid.",
    )
    check.set_defaults(func=_cmd_config_check)
    example = config_sub.add_parser(
        "example",
        help="print the complete, commented example configuration",
        description="Print the example configuration shipped in the package (the repository's "
        "config.toml: Sigstore production, its logs discovered from its TUF repository, a watch "
        "rule, a notify channel to enable) to stdout, to start your own: "
        "tlog-monitor config example > config.toml. Reads no configuration; exit 0.",
    )
    example.set_defaults(func=_cmd_config_example)
    commands = [sandbox, run, reload, check_all, report, notify_test, inspect, export, verify, demo]
    for command in [*commands, check, example]:
        _accept_global_options(command)
    return parser


def _accept_global_options(command: argparse.ArgumentParser) -> None:
    """Give a command the global options too, so "check --config x" works as typed. SUPPRESS
    keeps the value given before the command (or its default) when the option is not repeated
    after it. A command with its own --config (inspect, evidence verify) keeps it."""
    group = command.add_argument_group("global options (also accepted before the command)")
    if command.get_default("config") is None:  # SUPPRESS (not None) when it has its own
        group.add_argument(
            "--config",
            default=argparse.SUPPRESS,
            help="path to config.toml (default ./config.toml)",
        )
    group.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log debug messages, the libraries' included",
    )
    group.add_argument(
        "--log-format",
        choices=[f.value for f in LogFormat],
        default=argparse.SUPPRESS,
        help="log lines as text or JSON; auto: JSON when stderr is the systemd journal",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tlog-monitor` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(verbose=args.verbose, fmt=LogFormat(args.log_format))
    try:
        code: int = args.func(args)
    except ConfigError as e:
        print(f"tlog-monitor: configuration error: {printable(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    except UsageError as e:
        print(f"tlog-monitor: error: {printable(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    except MonitorError as e:
        print(f"tlog-monitor: {printable(str(e))}", file=sys.stderr)
        return EXIT_OPERATIONAL
    except KeyboardInterrupt:
        return EXIT_OK
    return code


if __name__ == "__main__":
    sys.exit(main())
