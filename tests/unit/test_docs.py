"""The documentation covers every contract: commands, alert kinds, report columns, config keys.

Each list is read from the code, so a new command, kind, column or key fails here until it is
documented.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.cli import reports
from monitor.cli.main import build_parser
from monitor.config import settings as config
from monitor.core.alerts import ON_CALL, AlertKind, doc_link
from monitor.core.watch import matchers, rules

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"


def _subcommands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], str | None, argparse.ArgumentParser]]:
    """(command path, help text, parser) of every subcommand, nested ones included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                path = (*prefix, name)
                yield path, helps.get(name), sub
                yield from _subcommands(sub, path)


COMMANDS = [(path, text) for path, text, _ in _subcommands(build_parser())]
COMMAND_IDS = [" ".join(path) for path, _ in COMMANDS]


def _all_docs() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in [README, *sorted(DOCS.glob("*.md"))])


def _section(text: str, heading: str) -> str:
    """The body of the `## ...` section whose heading contains `heading`."""
    parts = re.split(r"^## ", text, flags=re.MULTILINE)
    for part in parts[1:]:
        title = part.split("\n", 1)[0]
        if heading in title:
            return part
    raise AssertionError(f"no '## ...{heading}...' section")


def test_commands_found() -> None:
    # Guards the walker itself: nested commands must be reached.
    assert {"run", "check", "report", "config check", "notify test"} <= set(COMMAND_IDS)


@pytest.mark.parametrize(("path", "help_text"), COMMANDS, ids=COMMAND_IDS)
def test_every_command_has_help(path: tuple[str, ...], help_text: str | None) -> None:
    assert help_text and help_text.strip(), f"'{' '.join(path)}' has no help text"


@pytest.mark.parametrize(("path", "help_text"), COMMANDS, ids=COMMAND_IDS)
def test_every_command_is_documented(path: tuple[str, ...], help_text: str | None) -> None:
    # "tlog-monitor [options] <command words>" on one line of README.md or docs/*.md.
    words = r"\s+".join(re.escape(w) for w in path)
    pattern = re.compile(rf"tlog-monitor(?: [^\s`|]+)*? {words}(?![\w-])")
    assert pattern.search(_all_docs()), f"'tlog-monitor {' '.join(path)}' is not documented"


@pytest.mark.parametrize("args", [[], *[list(p) for p, _ in COMMANDS]], ids=["top", *COMMAND_IDS])
def test_help_exits_0(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([*args, "--help"])
    assert exc.value.code == 0
    assert "usage: tlog-monitor" in capsys.readouterr().out


def test_report_kinds_are_documented() -> None:
    report = dict((path, sub) for path, _, sub in _subcommands(build_parser()))[("report",)]
    what = next(a for a in report._actions if a.dest == "what")
    text = (DOCS / "reports.md").read_text(encoding="utf-8")
    for choice in what.choices or ():
        assert f"## report {choice}" in text


@pytest.mark.parametrize("kind", list(AlertKind), ids=[k.value for k in AlertKind])
def test_every_alert_kind_has_a_section(kind: AlertKind) -> None:
    text = (DOCS / "alerts.md").read_text(encoding="utf-8")
    assert re.search(rf"^## `{kind.value}`$", text, re.MULTILINE), f"no section for {kind.value}"
    body = _section(text, f"`{kind.value}`")
    assert kind.severity.value in body, f"{kind.value}: severity {kind.severity.value} not stated"


@pytest.mark.parametrize("kind", list(AlertKind), ids=[k.value for k in AlertKind])
def test_on_call_line_is_the_documented_one(kind: AlertKind) -> None:
    # Messages print alerts.ON_CALL[kind] and link to doc_link(kind): both must be what the
    # kind's section of docs/alerts.md says.
    text = (DOCS / "alerts.md").read_text(encoding="utf-8")
    body = _section(text, f"`{kind.value}`")
    lines = re.findall(r"^\*\*On call:\*\* (.+)$", body, re.MULTILINE)
    assert lines == [ON_CALL[kind]], f"{kind.value}: docs/alerts.md's 'On call' line differs"
    path, _, anchor = doc_link(kind).partition("#")
    assert (REPO / path).resolve() == (DOCS / "alerts.md").resolve()
    assert anchor == kind.value  # GitHub's anchor of the heading "## `kind`"


REPORT_COLUMNS = [
    ("alerts", reports.ALERT_COLUMNS),
    ("matches", reports.MATCH_COLUMNS),
    ("checkpoints", reports.CHECKPOINT_COLUMNS),
    ("status", reports.STATUS_COLUMNS),
    ("trust", reports.TRUST_SOURCE_COLUMNS + reports.TRUST_CHANGE_COLUMNS),
]


@pytest.mark.parametrize(("report", "columns"), REPORT_COLUMNS)
def test_every_report_column_is_documented(report: str, columns: tuple[str, ...]) -> None:
    body = _section((DOCS / "reports.md").read_text(encoding="utf-8"), f"report {report}")
    rows = re.findall(r"^\| `([a-z0-9_]+)` \|", body, re.MULTILINE)
    assert rows == list(columns), f"report {report}: documented columns differ from the code"


# The key sets monitor.config.settings (and monitor.core.watch) use to reject unknown keys.
CONFIG_SECTIONS = [
    ("`[monitor]`", config._MONITOR_KEYS),
    ("`[[log]]`", config._LOG_KEYS),
    ("`[[sigstore]]`", config._SIGSTORE_KEYS),
    ("`[[watch]]`", tuple(sorted(rules.RULE_KEYS))),
    ("`[[notify]]`", config._NOTIFY_KEYS),
]


def test_top_level_keys_have_sections() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    for key in config._TOP_KEYS:
        assert re.search(rf"^## `\[{{1,2}}{key}\]{{1,2}}`$", text, re.MULTILINE), key


@pytest.mark.parametrize(("heading", "keys"), CONFIG_SECTIONS, ids=[h for h, _ in CONFIG_SECTIONS])
def test_every_config_key_is_documented(heading: str, keys: tuple[str, ...]) -> None:
    body = _section((DOCS / "configuration.md").read_text(encoding="utf-8"), heading)
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", body, re.MULTILINE))
    assert set(keys) <= documented, f"{heading}: undocumented keys {sorted(set(keys) - documented)}"


def test_every_fulcio_extension_name_is_documented() -> None:
    body = _section((DOCS / "configuration.md").read_text(encoding="utf-8"), "`[[watch]]`")
    missing = [name for name in matchers.FULCIO_EXTENSIONS if f"`{name}`" not in body]
    assert not missing, f"extension names not documented: {missing}"


def test_relative_links_resolve() -> None:
    for doc in [README, *sorted(DOCS.glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (doc.parent / target.split("#", 1)[0]).resolve()
            assert path.exists(), f"{doc.name}: broken link {target}"


def _report_parser() -> argparse.ArgumentParser:
    return dict((path, sub) for path, _, sub in _subcommands(build_parser()))[("report",)]


def test_report_synopsis_lists_every_report_and_option() -> None:
    report = _report_parser()
    text = (DOCS / "reports.md").read_text(encoding="utf-8")
    synopsis = re.search(r"^tlog-monitor \[--config PATH\] report \{([a-z|]+)\}(.*)$", text, re.M)
    assert synopsis, "docs/reports.md: no 'tlog-monitor [--config PATH] report {...}' synopsis"
    what = next(a for a in report._actions if a.dest == "what")
    assert set(synopsis.group(1).split("|")) == set(what.choices or ())
    global_options = {o for a in build_parser()._actions for o in a.option_strings}
    options = {
        o
        for a in report._actions
        for o in a.option_strings
        if o.startswith("--") and o not in global_options and o != "--help"
    }
    documented_rows = set(re.findall(r"^\| `(--[a-z-]+)", text, re.MULTILINE))
    for option in sorted(options):
        assert f"[{option} " in synopsis.group(2), f"{option} is not in the report synopsis"
        assert option in documented_rows, f"{option} has no row in docs/reports.md's options"


@pytest.mark.parametrize(("report", "columns"), REPORT_COLUMNS)
def test_csv_examples_show_every_column(report: str, columns: tuple[str, ...]) -> None:
    # CSV keeps every column, so an example of it shows the code's columns exactly.
    body = _section((DOCS / "reports.md").read_text(encoding="utf-8"), f"report {report}")
    headers = re.findall(rf"^\$ tlog-monitor .*report {report} .*--format csv.*\n(.+)$", body, re.M)
    for header in headers:
        assert header == ",".join(columns), f"report {report}: CSV example header is outdated"
