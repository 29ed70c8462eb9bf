"""The configuration a new operator writes (issue 12, items 7 and 8): notify URLs apprise cannot
use are refused at load, naming the channel and the URL redacted, before the daemon says READY;
the shipped config.toml validates as shipped; the documented Slack and e-mail URLs are accepted,
and the documented e-mail relay URL really delivers (real apprise, a real SMTP receiver)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from monitor.cli.main import main
from monitor.config.settings import load_config
from monitor.notify.notifier import send_test, url_problem
from tests.helpers import REKOR_PRODUCTION
from tests.integration.receivers import LOCALHOST, SmtpReceiver

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "config.toml"
CONFIGURATION_MD = ROOT / "docs" / "configuration.md"


# (URL, its redacted form, the words of the reason, secrets that must not be shown)
BROKEN = [
    ("slak://T0/B0/XXX", "slak://***", 'unknown scheme "slak"', ["T0/B0", "XXX"]),
    ("slack://onlyonetoken", "slack://***", "Slack (second) Token", ["onlyonetoken"]),
    ("mailto://127.0.0.1:18025", "mailto://127.0.0.1:18025", "?from=", []),
    # apprise's own message repeats the bad token: it is redacted too.
    ("slack://Secr3t!Tok9/B0/XXX", "slack://***", "Slack (first) Token (***)", ["Secr3t!Tok9"]),
    (
        "mailtos://monitor:Pa55-w0rd@127.0.0.1:587",
        "mailtos://***@127.0.0.1:587",
        "add ?from=",
        ["Pa55-w0rd"],
    ),
]


def write(tmp_path: Path, notify: str, mode: int = 0o600) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(REKOR_PRODUCTION + notify)
    path.chmod(mode)
    return path


@pytest.mark.parametrize(
    ("url", "redacted", "reason", "secrets"), BROKEN, ids=[b[0] for b in BROKEN]
)
def test_a_url_apprise_cannot_use_fails_config_check_and_run(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    url: str,
    redacted: str,
    reason: str,
    secrets: list[str],
) -> None:
    config = write(tmp_path, f'[[notify]]\nname = "ops"\nurls = ["{url}"]\n')
    for command in (["config", "check"], ["run"], ["check"], ["notify", "test"]):
        assert main(["--config", str(config), *command]) == 2, command
        out, err = capsys.readouterr()
        assert out == ""
        assert err.startswith("tlog-monitor: configuration error: "), err
        assert 'notify[0].urls[0]: channel "ops": apprise cannot use ' in err
        assert f"{redacted}: " in err and reason in err, err
        assert err.count("\n") == 1
        for secret in secrets:
            assert secret not in err
    # Nothing started: no database, so nothing could have reported READY or polled.
    assert not (tmp_path / "monitor.db").exists()


def test_urls_from_the_environment_and_a_file_are_checked_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    urls_file = tmp_path / "urls.txt"
    urls_file.write_text("# pager\njson://127.0.0.1:9/ok\nslack://onlyfileTok\n")
    urls_file.chmod(0o600)
    notify = '[[notify]]\nname = "pager"\nurls_file = "urls.txt"\n'
    config = write(tmp_path, notify)
    assert main(["--config", str(config), "config", "check"]) == 2
    err = capsys.readouterr().err
    assert 'urls_file ("' in err and 'line 3): channel "pager"' in err
    assert "onlyfileTok" not in err

    notify = '[[notify]]\nname = "ops"\nurls_env = ["OPS_URLS"]\n'
    config = write(tmp_path, notify)
    with pytest.raises(Exception, match=r'URL 2 in \$OPS_URLS\): channel "ops".*slak://\*\*\*'):
        load_config(config, environ={"OPS_URLS": "json://127.0.0.1:9/ok slak://envTok/x/y"})


def test_shipped_config_validates_in_a_clean_environment(tmp_path: Path) -> None:
    """`config check` on config.toml exactly as shipped, with no TLOG_MONITOR_NOTIFY_URLS (or
    anything else) in the environment: a real subprocess."""

    async def config_check() -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "monitor.cli.main", "--config", str(SHIPPED), "config", "check",
            cwd=tmp_path,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
                 "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    code, out, err = asyncio.run(config_check())
    assert code == 0, err
    assert '"instance": "production"' in out  # its logs come from Sigstore's trust root
    assert err == (
        f"tlog-monitor: warning: {SHIPPED}: no [[notify]] channels: alerts are only recorded "
        "in the database (see `tlog-monitor report alerts`)\n"
        "tlog-monitor: note: 1 [[sigstore]] source (production): its logs are discovered from "
        "its TUF repository at run time (`tlog-monitor report status` lists them)\n"
    )


def test_shipped_config_channel_once_uncommented_takes_its_documented_urls(
    tmp_path: Path,
) -> None:
    """The commented channel of config.toml, uncommented, with the variable set to the value its
    comment suggests, validates: the example is not a trap."""
    text = SHIPPED.read_text()
    example = re.search(r'^#\s+TLOG_MONITOR_NOTIFY_URLS="([^"]+)"$', text, re.MULTILINE)
    assert example is not None
    commented = '# [[notify]]\n# name = "security"\n# urls_env = ["TLOG_MONITOR_NOTIFY_URLS"]\n'
    assert text.count(commented) == 1
    enabled = text.replace(commented, commented.replace("# ", ""))
    path = tmp_path / "config.toml"
    path.write_text(enabled)
    path.chmod(0o600)
    config = load_config(path, environ={"TLOG_MONITOR_NOTIFY_URLS": example.group(1)})
    assert [u.split("://")[0] for u in config.channel("security").urls] == ["slack", "mailtos"]


def documented_urls() -> list[str]:
    """The Slack and e-mail URLs of the table of working URLs in docs/configuration.md."""
    section = CONFIGURATION_MD.read_text().split("URLs that work", 1)[1].split("\n\n", 2)[1]
    assert section.startswith("| service | apprise URL |")
    return sorted(set(re.findall(r"`((?:slack|mailtos?)://[^`\s]+)`", section)))


def test_documented_slack_and_email_urls_are_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = documented_urls()
    schemes = {u.split("://")[0] for u in urls}
    assert schemes == {"slack", "mailto", "mailtos"} and len(urls) >= 4
    for url in urls:
        assert url_problem(url) is None, url
    listed = ", ".join(f'"{u}"' for u in urls)
    config = write(tmp_path, f'[[notify]]\nname = "security"\nurls = [{listed}]\n')
    assert main(["--config", str(config), "config", "check"]) == 0, capsys.readouterr().err


def test_documented_relay_email_url_delivers(tmp_path: Path) -> None:
    """The documented relay URL, pointed at a local SMTP server, delivers a real e-mail."""
    [relay] = [u for u in documented_urls() if u.startswith("mailto://")]
    smtp = SmtpReceiver("unused", "unused")
    smtp.start()
    try:
        url = re.sub(r"^mailto://[^/?]+", f"mailto://{LOCALHOST}:{smtp.port}", relay)
        config = write(tmp_path, f'[[notify]]\nname = "security"\nurls = ["{url}"]\n')
        asyncio.run(send_test(load_config(config).channel("security"), timeout=10))
        [mail] = smtp.messages
    finally:
        smtp.stop()
    assert mail["From"].addresses[0].addr_spec == "monitor@example.com"
    assert mail["To"].addresses[0].addr_spec == "security@example.com"


def test_config_check_says_which_rules_are_expensive_to_scan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = (
        '[[watch]]\nname = "ordinary"\nissuer = "https://accounts.google.com"\n'
        'email = "security@example.com"\n\n'
        '[[watch]]\nname = "digits"\nany_issuer = true\nsan_regex = ".*[0-9]{7}.*"\n\n'
        '[[watch]]\nname = "everyone"\nany_issuer = true\nsan = "*"\n\n'
        '[[watch]]\nname = "by-issuer"\nissuer = "https://accounts.google.com"\nsan = "*"\n'
    )
    config = write(tmp_path, rules)
    assert main(["--config", str(config), "config", "check"]) == 0
    err = capsys.readouterr().err
    notes = {
        m[0]: m[1] for m in re.findall(r"note: rule '([^']+)' is expensive to scan: ([^\n]+)", err)
    }
    assert set(notes) == {"digits", "everyone", "by-issuer"}, err
    assert "no literal text" in notes["digits"]
    assert "matches every certificate" in notes["everyone"]
    assert "only searchable text is its issuer" in notes["by-issuer"]
    assert all("docs/configuration.md#what-makes-a-rule-expensive" in n for n in notes.values())
