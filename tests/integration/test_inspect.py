"""`tlog-monitor inspect`, the real CLI in a subprocess: real bundles against sigstore's trusted
roots, a LogEntry fetched from the running sandbox log and verified with its pinned key (then
tampered with: body, proof, checkpoint signature), and input it must refuse cleanly."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from monitor.cli.inspect import MAX_INPUT_BYTES
from monitor.sandbox import Sandbox
from tests.helpers import Run, cli_command

ROOT = Path(__file__).resolve().parents[2]
GITHUB = "https://token.actions.githubusercontent.com"
REPO = "https://github.com/example/project"
RELEASE = f"{REPO}/.github/workflows/release.yml@refs/tags/v1.0.0"


async def inspect(*args: str, stdin: bytes | None = None) -> Run:
    """`tlog-monitor <args>` in a subprocess (asynchronous: the sandbox shares the loop)."""
    proc = await asyncio.create_subprocess_exec(
        *cli_command(),
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"},
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout=60)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


# --- real bundles ---------------------------------------------------------------------------

REAL_CONFIG = f"""
[[log]]
name = "rekor"
type = "rekor-v1"
url = "https://rekor.sigstore.dev"
trust_root = "production"

[[watch]]
name = "cpython-release-manager"
issuer = "https://accounts.google.com"
email = "Thomas@Python.org"

[[watch]]
name = "rfc8785-releases"
issuer = "{GITHUB}"
san = "https://github.com/trailofbits/rfc8785.py/.github/workflows/*"
allowed_signers = [
  "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/*",
]

[[watch]]
name = "jku"
issuer = "https://github.com/login/oauth"
email = "jku@goto.fi"

[[watch]]
name = "conformance-beacon"
issuer = "{GITHUB}"
extensions = {{ source_repository_uri = "https://github.com/sigstore-conformance/*" }}
"""

REAL_BUNDLES = [
    ("Python-3.12.5.tgz.sigstore", "cpython-release-manager", "email = thomas@python.org"),
    (
        "bundle_v3_github.whl.sigstore",
        "rfc8785-releases",
        "signer https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml"
        "@refs/tags/v0.1.2 matches allowed_signers",
    ),
    ("staging-rekor-v2.txt.sigstore.json", "jku", "email = jku@goto.fi"),
    (
        "a.dsse.staging-rekor-v2.txt.sigstore.json",
        "conformance-beacon",
        "source_repository_uri https://github.com/sigstore-conformance/"
        "extremely-dangerous-public-oidc-beacon matches https://github.com/sigstore-conformance/*",
    ),
]


@pytest.mark.parametrize(("bundle", "rule", "reason"), REAL_BUNDLES)
async def test_real_bundle_is_verified_and_its_rule_matches(
    real_data: Path, tmp_path: Path, bundle: str, rule: str, reason: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(REAL_CONFIG)
    path = str(real_data / "sigstore-bundles" / bundle)

    # --config before the subcommand, text; and after it, JSON.
    text, doc = await asyncio.gather(
        inspect("--config", str(config), "inspect", path),
        inspect("inspect", path, "--config", str(config), "--format", "json"),
    )
    assert text.code == 0, text
    assert "  result: verified\n" in text.out
    assert f"  MATCH {rule}: identity_seen\n" in text.out
    assert f"        - {reason}" in text.out
    assert text.out.count("MATCH ") == 1, "only the rule written for this identity matches"
    assert "chains to Fulcio:  yes: issued by CN=sigstore-intermediate,O=sigstore.dev" in text.out

    assert doc.code == 0, doc
    report = json.loads(doc.out)
    assert report["verified"] is True and report["failure"] is None
    matched = [r for r in report["rules"] if r["matched"]]
    assert [(r["rule"], r["outcome"]) for r in matched] == [(rule, "identity_seen")]
    assert any(reason in line for line in matched[0]["reasons"])
    assert all(r["first_failure"] is not None for r in report["rules"] if not r["matched"])
    assert report["signers"][0]["trusted"] is True


@pytest.mark.parametrize(
    ("bundle", "rule"),
    [(bundle, rule) for bundle, rule, _ in REAL_BUNDLES if "rekor-v2" in bundle],
)
async def test_bare_rekor_v2_entry_is_verified(
    real_data: Path, tmp_path: Path, bundle: str, rule: str
) -> None:
    # What Rekor v2 answers to a write (a TransparencyLogEntry), not wrapped in a bundle.
    config = tmp_path / "config.toml"
    config.write_text(REAL_CONFIG)
    doc = json.loads((real_data / "sigstore-bundles" / bundle).read_bytes())
    entry = tmp_path / "entry.json"
    entry.write_text(json.dumps(doc["verificationMaterial"]["tlogEntries"][0]))
    run = await inspect("--config", str(config), "inspect", str(entry))
    assert run.code == 0, run
    assert "Rekor v2 TransparencyLogEntry" in run.out
    assert "  ok   inclusion proof: " in run.out
    assert "  ok   checkpoint: " in run.out
    assert "  result: verified\n" in run.out
    assert f"  MATCH {rule}: identity_seen\n" in run.out


async def test_without_a_config_it_still_verifies_and_says_no_rules(
    real_data: Path, tmp_path: Path
) -> None:
    path = real_data / "sigstore-bundles" / "bundle_v3_github.whl.sigstore"
    run = await inspect(
        "--config", str(tmp_path / "absent.toml"), "inspect", "-", stdin=path.read_bytes()
    )
    assert run.code == 0, run
    assert "rules: no rules evaluated: " in run.out and "absent.toml does not exist" in run.out


# --- a LogEntry from the sandbox, with its pinned key -------------------------------------


@dataclass(frozen=True)
class SandboxEntry:
    dir: Path
    config: Path
    entry: dict[str, dict[str, object]]
    log_info: dict[str, object]

    def write(self, name: str, entry: dict[str, dict[str, object]] | None = None) -> str:
        path = self.dir / name
        path.write_text(json.dumps(entry if entry is not None else self.entry))
        return str(path)

    def copy(self) -> dict[str, dict[str, object]]:
        copied: dict[str, dict[str, object]] = json.loads(json.dumps(self.entry))
        return copied

    @property
    def value(self) -> dict[str, object]:
        return next(iter(self.entry.values()))


@pytest.fixture
async def fetched(
    sandbox: Sandbox, http: aiohttp.ClientSession, tmp_path: Path
) -> AsyncIterator[SandboxEntry]:
    """One watched entry among others on the sandbox's v1 log, fetched over HTTP with the log's
    signed checkpoint at the same size; a config pinning the log's key and CA."""
    await sandbox.append("v1", 5)
    index = (await sandbox.append("v1", 1, {"uri": RELEASE, "issuer": GITHUB})).first
    await sandbox.append("v1", 4)
    async with http.get(f"{sandbox.url}/api/v1/log/entries", params={"logIndex": index}) as r:
        assert r.status == 200
        entry = await r.json()
    async with http.get(f"{sandbox.url}/api/v1/log") as r:
        log_info = await r.json()
    (tmp_path / "v1.pem").write_bytes(sandbox.v1_public_key_pem)
    (tmp_path / "ca.pem").write_bytes(sandbox.ca_pem)
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[[log]]
name = "sandbox"
type = "rekor-v1"
url = "{sandbox.url}"
public_key = "v1.pem"
origin = "{sandbox.v1_key_name}"
fulcio_roots = "ca.pem"

[[watch]]
name = "release"
issuer = "{GITHUB}"
san = "{REPO}/.github/workflows/*"
allowed_signers = ["{REPO}/.github/workflows/ci.yml@*"]
"""
    )
    yield SandboxEntry(tmp_path, config, entry, log_info)


def _proof(entry: dict[str, dict[str, object]]) -> dict[str, object]:
    value = next(iter(entry.values()))
    verification = value["verification"]
    assert isinstance(verification, dict)
    proof = verification["inclusionProof"]
    assert isinstance(proof, dict)
    return proof


async def test_sandbox_entry_is_verified_with_the_pinned_key(fetched: SandboxEntry) -> None:
    run = await inspect("--config", str(fetched.config), "inspect", fetched.write("entry.json"))
    assert run.code == 0, run
    out = run.out
    assert "log:       log 'sandbox' of config.toml" in out
    assert "  ok   uuid: the UUID ends in the body's leaf hash " in out
    assert "  ok   inclusion proof: " in out
    assert "  ok   checkpoint: signed by sandbox.rekor.local" in out
    assert "  ok   inclusion promise: signed entry timestamp verifies" in out
    assert "  result: verified\n" in out
    assert f"SAN:               uri:{RELEASE}" in out
    assert "chains to Fulcio:  yes" in out
    assert "  MATCH release: unexpected_signer\n" in out
    assert f"        - signer {RELEASE} (build signer {RELEASE}) not in allowed_signers" in out


async def test_sandbox_entry_with_a_separate_checkpoint(fetched: SandboxEntry) -> None:
    entry = fetched.copy()
    del _proof(entry)["checkpoint"]
    bare = fetched.write("bare.json", entry)
    log_json = fetched.dir / "log.json"
    log_json.write_text(json.dumps(fetched.log_info))
    note = fetched.dir / "checkpoint.txt"
    note.write_text(str(fetched.log_info["signedTreeHead"]))
    for checkpoint in (log_json, note):
        run = await inspect(
            "--config", str(fetched.config), "inspect", bare, "--checkpoint", str(checkpoint)
        )
        assert run.code == 0, run
        assert "  ok   --checkpoint: signed by sandbox.rekor.local" in run.out
        assert "  result: verified\n" in run.out


def _flip_base64_byte(text: str, offset: int) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[offset] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


async def test_tampered_sandbox_entries_fail_with_a_clear_line(fetched: SandboxEntry) -> None:
    body = fetched.copy()
    value = next(iter(body.values()))
    digest_at = base64.b64decode(str(value["body"])).index(b'"value":"') + 10
    value["body"] = _flip_base64_byte(str(value["body"]), digest_at)

    proof = fetched.copy()
    hashes = _proof(proof)["hashes"]
    assert isinstance(hashes, list) and hashes
    hashes[0] = ("0" if hashes[0][0] != "0" else "1") + hashes[0][1:]

    signature = fetched.copy()
    note = str(_proof(signature)["checkpoint"])
    head, _, line = note.rstrip("\n").rpartition("\n")
    name, _, sig = line.rpartition(" ")
    _proof(signature)["checkpoint"] = f"{head}\n{name} {_flip_base64_byte(sig, 10)}\n"

    cases = [
        (body, "FAIL uuid: the UUID ", "uuid"),
        (proof, "FAIL inclusion proof: ", "inclusion proof"),
        (signature, "FAIL checkpoint: ", "checkpoint"),
    ]
    runs = await asyncio.gather(
        *(
            inspect("--config", str(fetched.config), "inspect", fetched.write(f"t{i}.json", entry))
            for i, (entry, _, _) in enumerate(cases)
        )
    )
    for run, (_, fail_line, step) in zip(runs, cases, strict=True):
        assert run.code == 1, run
        assert f"  {fail_line}" in run.out, run
        assert "  result: NOT VERIFIED: " in run.out
        assert run.err.startswith(f"tlog-monitor: inspect: verification failed: {step}"), run
        assert "Traceback" not in run.err


async def test_an_entry_whose_log_id_is_not_the_key_id_is_not_verified(
    fetched: SandboxEntry,
) -> None:
    """The search path refuses an entry whose logID is not its key's ID; inspect, which once
    found the log by its checkpoint and signed the SET over the key's ID instead, agrees."""
    entry = fetched.copy()
    value = next(iter(entry.values()))
    value["logID"] = "ab" * 32
    run = await inspect("--config", str(fetched.config), "inspect", fetched.write("id.json", entry))
    assert run.code == 1, run
    assert "(found by the checkpoint's signature " in run.out
    assert "  FAIL inclusion promise: entry " in run.out and ": expected logID " in run.out
    assert run.err.startswith("tlog-monitor: inspect: verification failed: inclusion promise")


# --- input it must refuse -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"hello, world", "tlog-monitor: inspect: input: expected JSON, got "),
        (b"\xff\xfe\x00garbage", "tlog-monitor: inspect: input: expected JSON, got "),
        (b"[1, 2]", "tlog-monitor: inspect: input: expected a JSON object"),
        (
            b'{"kind": "hashedrekord"}',
            "tlog-monitor: inspect: input: expected a Rekor v1 LogEntry ({uuid: {body, ...}}), "
            "a Rekor v2 TransparencyLogEntry ({canonicalizedBody, inclusionProof, ...}) "
            "or a Sigstore bundle",
        ),
        (
            # Read as the monitor reads the log's answers: every field named by its path.
            b'{"' + b"ab" * 32 + b'": {"body": "not base64!", "logIndex": 1}}',
            "tlog-monitor: inspect: entry (logIndex 1).body: expected a base64 string, got ",
        ),
        (
            b'{"verificationMaterial": {"tlogEntries": []}}',
            "tlog-monitor: inspect: bundle: verificationMaterial.tlogEntries: expected a "
            "non-empty array",
        ),
        (
            b" " * (MAX_INPUT_BYTES + 1),
            f"tlog-monitor: inspect: input: expected at most {MAX_INPUT_BYTES} bytes",
        ),
    ],
    ids=["text", "binary", "array", "other json", "bad body", "empty bundle", "oversized"],
)
async def test_unusable_input_exits_2_without_a_traceback(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "input.json"
    path.write_bytes(content)
    run = await inspect("--config", str(tmp_path / "absent.toml"), "inspect", str(path))
    assert run.code == 2, run
    assert run.err.startswith(message), run
    assert run.out == "" and "Traceback" not in run.err


async def test_missing_file_and_bad_checkpoint_exit_2(tmp_path: Path, real_data: Path) -> None:
    bundle = str(real_data / "sigstore-bundles" / "Python-3.12.5.tgz.sigstore")
    absent = str(tmp_path / "absent.toml")
    missing = await inspect("--config", absent, "inspect", str(tmp_path / "nope.json"))
    assert missing.code == 2 and missing.err.startswith(
        "tlog-monitor: inspect: cannot read input: "
    )
    (tmp_path / "log.json").write_text('{"treeSize": 3}')
    no_sth = await inspect(
        "--config", absent, "inspect", bundle, "--checkpoint", str(tmp_path / "log.json")
    )
    assert no_sth.code == 2
    assert no_sth.err.startswith("tlog-monitor: inspect: --checkpoint: no signedTreeHead")
    for run in (missing, no_sth):
        assert "Traceback" not in run.err and run.out == ""


@pytest.mark.parametrize(
    ("option", "message"),
    [((), "is a FIFO"), (("--checkpoint", "fifo"), "is a FIFO"), ((), "is a device")],
    ids=["fifo", "checkpoint-fifo", "dev-zero"],
)
async def test_a_file_that_is_no_regular_file_is_refused_at_once(
    tmp_path: Path, option: tuple[str, ...], message: str
) -> None:
    # A FIFO nobody writes used to block inspect forever; /dev/zero is never read whole.
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "entry.json").write_text("{}")
    first = str(tmp_path / ("entry.json" if option else "fifo"))
    if message == "is a device":
        first = "/dev/zero"
    run = await asyncio.wait_for(
        inspect("inspect", first, *(str(tmp_path / o) if o == "fifo" else o for o in option)),
        20,
    )
    assert run.code == 2 and message in run.err and "Traceback" not in run.err, run


# --- embedded SCTs -------------------------------------------------------------------------

CTFE_2022 = "dd3d306ac6c7113263191e1c99673702a24a5eb8de3cadff878a72802f29ee8e"


async def test_real_bundles_show_their_verified_sct(real_data: Path) -> None:
    production, static_ct = (
        real_data / "sigstore-bundles" / "bundle_v3_github.whl.sigstore",
        real_data / "sigstore-bundles" / "a.dsse.staging-rekor-v2.txt.sigstore.json",
    )
    text, doc, staging = await asyncio.gather(
        inspect("--config", "absent.toml", "inspect", str(production)),
        inspect("--config", "absent.toml", "inspect", str(production), "--format", "json"),
        inspect("--config", "absent.toml", "inspect", str(static_ct)),
    )
    assert text.code == 0, text
    assert (
        f"  ok   SCT: log ID {CTFE_2022} = https://ctfe.sigstore.dev/2022 (production trust "
        "root), time 2024-03-19T22:41:15.966Z: verified\n"
    ) in text.out
    # Among the verification lines, before the result.
    assert text.out.index("  ok   SCT: ") < text.out.index("  result: verified\n")

    assert doc.code == 0, doc
    report = json.loads(doc.out)
    assert report["verified"] is True
    last = report["checks"][-1]
    assert (last["check"], last["ok"]) == ("SCT", True)
    assert report["signers"][0]["scts"] == [
        {
            "log_id": CTFE_2022,
            "log": "https://ctfe.sigstore.dev/2022 (production trust root)",
            "time": "2024-03-19T22:41:15.966Z",
            "timestamp_ms": 1710888075966,
            "status": "verified",
            "detail": "verified",
        }
    ]

    # The staging static-ct-api log's SCT (with its leaf index extension).
    assert staging.code == 0, staging
    assert "= https://log2026-1.ctfe.sigstage.dev (staging trust root), time " in staging.out
    assert "  ok   SCT: " in staging.out and ": verified\n" in staging.out


async def test_an_sct_from_an_unknown_log_is_reported_not_failed(real_data: Path) -> None:
    # sigstore-go's otherName bundle: a private deployment, its Rekor and CT log in no root.
    path = real_data / "more-bundles" / "sigstore-go" / "othername.sigstore.json"
    run = await inspect("--config", "absent.toml", "inspect", str(path))
    assert (
        "  --   SCT: log ID deb070d81f39323d218ce33786a6c3e38b4f8592ea392bad350f04495164035c, "
        "time 2024-07-12T19:06:28.657Z: unknown log: not a CT log of the production or staging "
        "trust root\n"
    ) in run.out, run
    # Not verified, because its Rekor log is unknown too: but the SCT is not named a failure.
    assert run.code == 1 and "FAIL log: unknown log" in run.out
    assert "SCT" not in run.err


def _altered_certificate_bundle(path: Path, tmp_path: Path) -> Path:
    """The bundle with one byte of its certificate's TBSCertificate changed (a letter of the
    workflow ref, outside the SCT list), in the entry body the monitor reads."""
    doc = json.loads(path.read_bytes())
    entry = doc["verificationMaterial"]["tlogEntries"][0]
    body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
    pem = base64.b64decode(body["spec"]["signature"]["publicKey"]["content"]).decode()
    der = bytearray(base64.b64decode("".join(pem.strip().splitlines()[1:-1])))
    at = der.index(b"refs/tags/v0.1.2")
    der[at] ^= 0x01
    lines = base64.b64encode(bytes(der)).decode()
    altered = "-----BEGIN CERTIFICATE-----\n" + "\n".join(
        lines[i : i + 64] for i in range(0, len(lines), 64)
    )
    altered += "\n-----END CERTIFICATE-----\n"
    body["spec"]["signature"]["publicKey"]["content"] = base64.b64encode(altered.encode()).decode()
    entry["canonicalizedBody"] = base64.b64encode(json.dumps(body).encode()).decode()
    out = tmp_path / "altered.sigstore"
    out.write_text(json.dumps(doc))
    return out


async def test_a_certificate_altered_after_the_ct_log_saw_it_fails_its_sct(
    real_data: Path, tmp_path: Path
) -> None:
    path = _altered_certificate_bundle(
        real_data / "sigstore-bundles" / "bundle_v3_github.whl.sigstore", tmp_path
    )
    run = await inspect("--config", "absent.toml", "inspect", str(path))
    assert run.code == 1, run
    assert (
        f"  FAIL SCT: log ID {CTFE_2022} = https://ctfe.sigstore.dev/2022 (production trust "
        "root), time 2024-03-19T22:41:15.966Z: FAILED: the signature (ecdsa-sha256) does not "
        "verify with the log's key over the precertificate"
    ) in run.out
    assert "chains to Fulcio:  no" in run.out
    assert "tlog-monitor: inspect: verification failed: " in run.err and "SCT: " in run.err


async def test_configured_ct_logs_check_the_scts_they_signed(
    fetched: SandboxEntry, sandbox: Sandbox
) -> None:
    """With --config, the config's ct and static-ct logs are known CT logs too: the sandbox
    CA's SCT, signed by the sandbox's CT log (in no trusted root), verifies with its key."""
    plain = await inspect("--config", str(fetched.config), "inspect", fetched.write("entry.json"))
    assert "  --   SCT: log ID " in plain.out and "unknown log" in plain.out, plain
    (fetched.dir / "ct.pem").write_bytes(sandbox.ct_public_key_pem)
    text = fetched.config.read_text()
    fetched.config.write_text(
        text + f'\n[[log]]\nname = "ct"\ntype = "ct"\nurl = "{sandbox.ct_url}/ct-log"\n'
        'public_key = "ct.pem"\n'
    )
    run = await inspect("--config", str(fetched.config), "inspect", fetched.write("entry.json"))
    assert run.code == 0, run
    assert (
        f"= log 'ct' of config.toml ({sandbox.ct_url}/ct-log), time " in run.out
        and ": verified\n" in run.out
    ), run.out
    assert "unknown log" not in run.out
