"""Attacks on `tlog-monitor evidence verify` (issue 11, item 12), the real CLI in a subprocess.

A forger who is not the log signs two conflicting checkpoints with a key of their own that carries
the log's name: verify must not call that proof (exit 1) unless told to accept unknown keys, and
must say which key it knows when it does prove something. Hostile files (100,000-deep JSON,
/dev/zero, a FIFO nobody writes, a directory, an endless stdin) exit 2 at once, without a
traceback. The conflicting checkpoints are the sandbox log's own, fetched over HTTP from its
primary endpoint and a forked view on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from monitor.core import evidence
from monitor.core.note import EcdsaNoteSigner, parse_checkpoint, parse_signed_note, sign_note
from monitor.sandbox import Sandbox
from tests.helpers import Run, cli_command

ROOT = Path(__file__).resolve().parents[2]


async def verify(*args: str, cwd: Path, stdin: Path | None = None) -> Run:
    """`tlog-monitor <global args> evidence verify ...` in a subprocess; `stdin` a file to read."""
    started = time.monotonic()
    with (stdin or Path(os.devnull)).open("rb") as source:
        proc = await asyncio.create_subprocess_exec(
            *cli_command(),
            *args,
            cwd=cwd,
            stdin=source,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"},
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise AssertionError(f"tlog-monitor {' '.join(args)} hung") from None
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode(), time.monotonic() - started)


async def _tree_head(http: aiohttp.ClientSession, base: str) -> str:
    async with http.get(f"{base}/api/v1/log") as resp:
        assert resp.status == 200
        return str((await resp.json())["signedTreeHead"])


@pytest.fixture
async def split(sandbox: Sandbox, tmp_path: Path) -> tuple[bytes, bytes]:
    """(the sandbox log's genuine split-view evidence, a forgery with another key of its name)."""
    await sandbox.append("v1", 6)
    sandbox.misbehave("v1", "fork", view="victim", at=3)
    async with aiohttp.ClientSession() as http:
        primary = await _tree_head(http, sandbox.url)
        forked = await _tree_head(http, sandbox.view_url("victim"))
    a = parse_checkpoint(parse_signed_note(primary).text)
    b = parse_checkpoint(parse_signed_note(forked).text)
    assert a.size == b.size and a.root != b.root, "the sandbox fork serves a same-size split view"
    genuine = evidence.build_split_view(
        log_name="sandbox",
        tree_id=str(sandbox.v1_tree_id),
        verifier=sandbox.v1_verifier(),
        a=("primary", primary),
        b=("view1:victim", forked),
        proof=None,
        reason="same size, different roots",
    )
    # The forger's key: any P-256 key, named like the log's, signing the same two checkpoints.
    forger = EcdsaNoteSigner(sandbox.v1_key_name, ec.generate_private_key(ec.SECP256R1()))
    forged = evidence.build_split_view(
        log_name="sandbox",
        tree_id=str(sandbox.v1_tree_id),
        verifier=forger.verifier(),
        a=("primary", sign_note(parse_signed_note(primary).text, [forger]).to_text()),
        b=("view1:victim", sign_note(parse_signed_note(forked).text, [forger]).to_text()),
        proof=None,
        reason="same size, different roots",
    )
    (tmp_path / "v1.pem").write_bytes(sandbox.v1_public_key_pem)
    (tmp_path / "config.toml").write_text(
        f"""
[monitor]
database = "never-opened.db"

[[log]]
name = "sandbox"
type = "rekor-v1"
url = "{sandbox.url}"
public_key = "v1.pem"
origin = "{sandbox.v1_key_name}"
"""
    )
    return evidence.dump(genuine), evidence.dump(forged)


async def test_a_key_that_merely_carries_the_logs_name_proves_nothing(
    split: tuple[bytes, bytes], tmp_path: Path
) -> None:
    genuine, forged = split
    (tmp_path / "genuine.json").write_bytes(genuine)
    (tmp_path / "forged.json").write_bytes(forged)

    # The forgery: every signature valid, but the key is nobody's the verifier knows.
    run = await verify("evidence", "verify", "forged.json", cwd=tmp_path)
    assert run.code == 1, run
    assert "key UNKNOWN" in run.out and "PROVEN" not in run.out, run
    assert "sigstore's production trusted root" in run.out, run
    for pinned in (["--key", "v1.pem"], ["--config", "config.toml"]):
        run = await verify("evidence", "verify", "forged.json", *pinned, cwd=tmp_path)
        assert run.code == 1 and "key UNKNOWN" in run.out, run
    # Accepted only when asked, and then the verdict says what it is worth.
    run = await verify("evidence", "verify", "--any-key", "forged.json", cwd=tmp_path)
    assert run.code == 0, run
    assert "PROVEN for an UNKNOWN key" in run.out and "accepted with --any-key" in run.out, run

    # The log's own key, known from a pinned file or from the configuration (before or after
    # the subcommand), proves the split view; nothing is read from a database or the network.
    for known in (
        ["evidence", "verify", "--key", "v1.pem", "genuine.json"],
        ["--config", "config.toml", "evidence", "verify", "genuine.json"],
        ["evidence", "verify", "genuine.json", "--config", "config.toml"],
    ):
        run = await verify(*known, cwd=tmp_path)
        assert run.code == 0, run
        assert "key known:" in run.out and "\nPROVEN: the log signed" in run.out, run
    assert "log 'sandbox'" in run.out, run
    assert not (tmp_path / "never-opened.db").exists()
    # Unknown without a key source, however genuine.
    run = await verify("evidence", "verify", "genuine.json", cwd=tmp_path)
    assert run.code == 1 and "key UNKNOWN" in run.out, run


async def test_bad_key_files_and_configurations_are_usage_errors(
    split: tuple[bytes, bytes], tmp_path: Path
) -> None:
    genuine, _ = split
    (tmp_path / "genuine.json").write_bytes(genuine)
    (tmp_path / "private.pem").write_text(
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    )
    (tmp_path / "garbage.pem").write_bytes(os.urandom(300))
    (tmp_path / "big.pem").write_bytes(b"A" * (64 * 1024 + 1))
    cases = {
        "/dev/zero": "is a device",
        "missing.pem": "cannot read the key",
        "private.pem": "PRIVATE key",
        "garbage.pem": "expected a PEM public key",
        "big.pem": "at most 65536 bytes",
    }
    for key, message in cases.items():
        run = await verify("evidence", "verify", "--key", key, "genuine.json", cwd=tmp_path)
        assert run.code == 2 and message in run.err and "Traceback" not in run.err, run
    run = await verify(
        "--config", "missing.toml", "evidence", "verify", "genuine.json", cwd=tmp_path
    )
    assert run.code == 2 and "missing.toml" in run.err and "Traceback" not in run.err, run


def _hostile_files(at: Path) -> None:
    (at / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    # Within the JSON parser's own limit: still not a document (2), rather than an edited one (1).
    deep = '{"a":' * 600 + "1" + "}" * 600
    (at / "deep-object.json").write_text(f'{{"format": "{evidence.FORMAT}", "x": {deep}}}')
    (at / "huge.json").write_bytes(b" " * (evidence.MAX_EVIDENCE_BYTES + 1))
    os.mkfifo(at / "fifo")
    (at / "dir").mkdir()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("deep.json", "nested too deeply"),
        ("deep-object.json", "nested at most"),
        ("huge.json", "expected at most"),
        ("/dev/zero", "is a device"),
        ("fifo", "is a FIFO"),
        ("dir", "is a directory"),
        ("missing.json", "No such file"),
        # stdin is read with the same cap: an endless stream is cut off, not read whole.
        ("-", "expected at most"),
    ],
    ids=["deep-array", "deep-object", "huge", "dev-zero", "fifo", "directory", "missing", "stdin"],
)
async def test_hostile_files_exit_2_at_once_without_a_traceback(
    tmp_path: Path, name: str, message: str
) -> None:
    _hostile_files(tmp_path)
    stdin = Path("/dev/zero") if name == "-" else None
    run = await verify("evidence", "verify", name, cwd=tmp_path, stdin=stdin)
    assert run.code == 2, run
    assert message in run.err and "Traceback" not in run.err, run
    assert run.seconds < 10, run


def test_documented_exit_codes_match_the_parser() -> None:
    # The README row is the contract outside testers check.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if "`tlog-monitor evidence verify" in line)
    assert "--any-key" in row and "--key FILE" in row, row
