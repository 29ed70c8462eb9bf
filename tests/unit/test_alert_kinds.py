"""Every alert kind's constructor against docs/alerts.md: its dedup key follows the documented
template with the documented parts, and every evidence field it carries is documented."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from monitor.core import alerts as a
from monitor.core.alerts import Alert, AlertKind, fact_key, note_digest
from monitor.core.note import Checkpoint, Ed25519NoteSigner, format_checkpoint, sign_note
from monitor.core.trust import ChangeKind, LogKind, TrustChange, TrustedLogInfo, Window

ALERTS_MD = Path(__file__).resolve().parents[2] / "docs" / "alerts.md"
LOG = Ed25519NoteSigner(
    "example.com/log", Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"kinds").digest())
)
NOTE = sign_note(
    format_checkpoint(Checkpoint(origin="example.com/log", size=7, root=b"\x01" * 32)), [LOG]
).to_text()
OTHER = sign_note(
    format_checkpoint(Checkpoint(origin="example.com/log", size=7, root=b"\x02" * 32)), [LOG]
).to_text()
ROOT = b"\xab" * 32
DAY = "2026-03-04"
UUID = "24296fb24b8ad77a" + "cd" * 32
IDENTITY = {"sans": ["a@example.com"], "issuer": "https://issuer.example"}


@dataclass(frozen=True)
class Row:
    alert: Alert
    template: str
    """The kind's documented template, as the section of docs/alerts.md spells it."""
    parts: tuple[str, ...]
    """What each `<placeholder>` of the template must hold, in order."""


SEEN = a.SignerSeen(
    "rekor",
    "1193050959916656506",
    42,
    log_index=1042,
    rule="release",
    signer_index=1,
    signer="https://github.com/o/r/.github/workflows/x.yml@refs/heads/main",
    identity=IDENTITY,
    reasons=["email = a@example.com"],
)

CERT_ID = "ab" * 32 + ":2c9603ee"
CERT_SEEN = a.CertificateSeen(
    "ct",
    "tiles",
    7,
    log_index=7,
    rule="release",
    entry_type="precert_entry",
    timestamp=1_767_225_600_000,
    certificate_id=CERT_ID,
    signer="https://github.com/o/r/.github/workflows/x.yml@refs/heads/main",
    identity=IDENTITY,
    reasons=["san matches"],
)

SHARD = TrustedLogInfo(
    kind=LogKind.REKOR_V2,
    base_url="https://log2025-1.rekor.sigstore.dev",
    origin="log2025-1.rekor.sigstore.dev",
    key_id=b"\x01" * 32,
    key=b"\x30\x2a" + b"\x02" * 42,
    key_details="PKIX_ED25519",
    window=Window(datetime(2025, 1, 1, tzinfo=UTC), None),
    verifier=None,
    verifier_problem="unsupported key type",
)
ROTATED = TrustedLogInfo(
    kind=LogKind.REKOR_V2,
    base_url=SHARD.base_url,
    origin=SHARD.origin,
    key_id=b"\x03" * 32,
    key=b"\x30\x2a" + b"\x04" * 42,
    key_details="PKIX_ED25519",
    window=SHARD.window,
    verifier=None,
)
KEY_CHANGE = TrustChange(ChangeKind.KEY_CHANGED, "tlogs", SHARD.base_url, SHARD, ROTATED)
VERSIONS = {"root": 13, "timestamp": 900, "snapshot": 400, "targets": 20}


def _trust_digest(change: TrustChange, versions: dict[str, int] | None) -> str:
    import json

    evidence = change.evidence()
    text = json.dumps(
        {"before": evidence["before"], "after": evidence["after"], "tuf": versions},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


ROWS = [
    Row(
        a.split_view_alert(
            "rekor",
            "tiles",
            ("primary", NOTE),
            ("view1:https://mirror.example", OTHER),
            sizes=(7, 7),
            roots=(b"\x01" * 32, b"\x02" * 32),
            proof=None,
            reason="same size, different roots",
            day=DAY,
            verifier=LOG.verifier(),
        ),
        "split_view:<log>:<tree_id>:<view>[:<view>]:<YYYY-MM-DD>",
        ("rekor", "tiles", "view1:https://mirror.example", "", DAY),
    ),
    Row(
        a.split_view_alert(
            "rekor",
            "tiles",
            ("view2:https://peer.example", NOTE),
            ("view1:https://mirror.example", OTHER),
            sizes=(7, 7),
            roots=(b"\x01" * 32, b"\x02" * 32),
            proof=None,
            reason="same size, different roots",
            day=DAY,
        ),
        "split_view:<log>:<tree_id>:<view>[:<view>]:<YYYY-MM-DD>",
        ("rekor", "tiles", "view1:https://mirror.example", "view2:https://peer.example", DAY),
    ),
    Row(
        a.split_view_alert(
            "rekor",
            "tiles",
            (a.VERIFIED_STATE, NOTE),
            ("primary", OTHER),
            sizes=(7, 9),
            roots=(b"\x01" * 32, b"\x02" * 32),
            proof=[b"\x03" * 32],
            reason="proof failed",
            day=DAY,
        ),
        "split_view:<log>:<tree_id>:<view>[:<view>]:<YYYY-MM-DD>",
        ("rekor", "tiles", "primary", "", DAY),
    ),
    Row(
        a.rollback_alert(
            "rekor",
            "tiles",
            "primary",
            note=NOTE,
            size=5,
            root=ROOT,
            high_water=9,
            high_water_note=OTHER,
            consistent=None,
            proof_error="HTTPError: 404",
        ),
        "rollback:<log>:<tree_id>:<view>:<size>:<root>",
        ("rekor", "tiles", "primary", "5", ROOT.hex()),
    ),
    Row(
        a.bad_signature_alert("rekor", "primary", "tiles", NOTE, "signed note: bad"),
        "bad_signature:<log>:<view>:<digest>",
        ("rekor", "primary", hashlib.sha256(NOTE.split("\n\n")[0].encode()).hexdigest()[:32]),
    ),
    Row(
        a.scan_bad_entry_alert(
            "rekor",
            "tiles",
            scan_cursor=4096,
            verified_size=9000,
            verified_root=ROOT,
            verified_note=NOTE,
            what="entries [4096, 8192)",
        ),
        "bad_entry:<log>:<tree_id>:<scan cursor>:<verified size>",
        ("rekor", "tiles", "4096", "9000"),
    ),
    Row(
        a.search_bad_entry_alert(
            "rekor", UUID, "1193050959916656506", log_index=77, found_by="email:a@x", error="e"
        ),
        "bad_entry:<log>:search:<leaf hash>",
        ("rekor", UUID[-64:]),
    ),
    Row(
        a.unexpected_signer_alert(SEEN),
        "unexpected_signer:<log>:<tree_id>:<index>:<rule>:<signer index>",
        ("rekor", "1193050959916656506", "42", "release", "1"),
    ),
    Row(
        a.identity_seen_alert(SEEN),
        # "Same dedup key and evidence as `unexpected_signer`."
        "identity_seen:<log>:<tree_id>:<index>:<rule>:<signer index>",
        ("rekor", "1193050959916656506", "42", "release", "1"),
    ),
    Row(
        a.certificate_issued_alert(CERT_SEEN),
        "certificate_issued:certificate:<rule>:<certificate id>",
        ("release", CERT_ID),
    ),
    Row(
        a.unexpected_certificate_alert(CERT_SEEN),
        "unexpected_signer:certificate:<rule>:<certificate id>",
        ("release", CERT_ID),
    ),
    Row(
        a.unreadable_entry_alert(
            "rekor",
            "tiles",
            42,
            log_index=42,
            error=None,
            text="1 of 2 signatures skipped",
            signers_read=1,
            skipped=[(0, "dsse 0.0.2: bad certificate")],
            skipped_count=1,
        ),
        "unreadable_entry:<log>:<tree_id>:<index>",
        ("rekor", "tiles", "42"),
    ),
    Row(
        a.log_stale_alert(
            "rekor",
            "tiles",
            verified_size=9000,
            last_growth_at="2026-03-04T10:00:00.000000+00:00",
            note=NOTE,
            max_stale=timedelta(minutes=30),
        ),
        "log_stale:<log>:<tree_id>:<verified_size>",
        ("rekor", "tiles", "9000"),
    ),
    Row(
        a.log_error_alert(
            "rekor",
            "view1:https://mirror.example",
            error_since="2026-03-04T10:00:00.000000+00:00",
            errors=3,
            last_error="NetworkError: refused",
        ),
        "log_error:<log>:<view>:<error_since>",
        ("rekor", "view1:https://mirror.example", "2026-03-04T10:00:00.000000+00:00"),
    ),
    Row(
        a.witness_quorum_alert(
            "rekor",
            "view3:https://witness.example",
            size=7,
            root=ROOT,
            note=NOTE,
            quorum=2,
            cosigners=["w1.example+01020304"],
            invalid=[],
            day=DAY,
        ),
        "witness_quorum:<log>:<view>:<YYYY-MM-DD>",
        ("rekor", "view3:https://witness.example", DAY),
    ),
    Row(
        a.view_error_alert(
            "rekor",
            "view2:https://peer.example",
            reason="wrong origin",
            tree_id="tiles",
            note=NOTE,
            error="checkpoint: expected origin x",
            day=DAY,
        ),
        "view_error:<log>:<view>:<reason>:<YYYY-MM-DD>",
        ("rekor", "view2:https://peer.example", "wrong origin", DAY),
    ),
    Row(
        a.trust_changed_alert("production", KEY_CHANGE, VERSIONS),
        "trust_changed:<source>:<change>:<section>:<name>:<digest>",
        (
            "production",
            "key_changed",
            "tlogs",
            SHARD.base_url,
            _trust_digest(KEY_CHANGE, VERSIONS),
        ),
    ),
    Row(
        a.trust_error_alert(
            "production",
            error_since="2026-03-04T10:00:00.000000+00:00",
            errors=4,
            last_error="unreachable: connection refused",
            reason="unreachable",
        ),
        "trust_error:<source>:<error_since>",
        ("production", "2026-03-04T10:00:00.000000+00:00"),
    ),
    Row(
        a.unverifiable_log_alert("production", SHARD),
        "trust_error:<source>:unsupported_key:<base_url>:<key_sha256>",
        ("production", SHARD.base_url, hashlib.sha256(SHARD.key).hexdigest()),
    ),
    Row(
        a.frozen_log_grew_alert("rekor", "tiles", frozen_size=9000, size=9010, note=NOTE),
        "frozen_log_grew:<log>:<tree_id>:<frozen_size>",
        ("rekor", "tiles", "9000"),
    ),
    Row(
        a.sct_not_incorporated_alert("ct", b"\x01" * 32, 1_700_000_000_000, 1_700_090_000_000, {}),
        "sct_not_incorporated:<ct log>:<promised leaf hash, hex>",
        ("ct", "01" * 32),
    ),
    Row(
        a.unlogged_certificate_alert(
            a.UnloggedCertificate(
                ct_log="ct",
                rule="release",
                certificate_id=CERT_ID,
                ct_ms=1_767_225_600_000,
                unlogged_after_ms=1_800_000,
                signer="https://github.com/o/r/.github/workflows/x.yml@refs/heads/main",
                evidence={
                    "tree_id": "ct",
                    "tree_index": 7,
                    "log_index": 7,
                    "entry_type": "precert_entry",
                    "identity": IDENTITY,
                },
                looked=[
                    {
                        "log": "rekor",
                        "how": "scan",
                        "trees": {"tiles": 9},
                        "since_ms": 0,
                        "covered_ms": 1_767_227_500_000,
                    }
                ],
            )
        ),
        "unlogged_certificate:certificate:<rule>:<certificate id>",
        ("release", CERT_ID),
    ),
]


def section(kind: AlertKind) -> str:
    text = ALERTS_MD.read_text()
    return text.split(f"\n## `{kind.value}`\n", 1)[1].split("\n## ", 1)[0]


def key_pattern(template: str, parts: tuple[str, ...]) -> re.Pattern[str]:
    """The template with each placeholder replaced by its part (an empty part drops an optional
    `[...]` group)."""
    values = iter(parts)
    pattern = ""
    for piece in re.split(r"(\[[^\]]*\]|<[^>]+>)", template):
        if piece.startswith("["):
            inner = re.sub(r"<[^>]+>", lambda _m: re.escape(next(values)), piece[1:-1])
            pattern += "" if inner.endswith(":") else inner
        elif piece.startswith("<"):
            pattern += re.escape(next(values))
        else:
            pattern += re.escape(piece)
    assert next(values, None) is None, "more parts than placeholders"
    return re.compile(pattern)


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.alert.kind.value}:{i}" for i, r in enumerate(ROWS)])
def test_dedup_key_follows_the_documented_template(row: Row) -> None:
    kind = row.alert.kind
    documented = (
        section(AlertKind.UNEXPECTED_SIGNER).replace("unexpected_signer:", "identity_seen:")
        if kind is AlertKind.IDENTITY_SEEN
        else section(kind)
    )
    assert f"`{row.template}`" in documented, f"{row.template} is not in docs/alerts.md"
    assert key_pattern(row.template, row.parts).fullmatch(row.alert.dedup_key), row.alert.dedup_key
    assert row.alert.severity is kind.severity


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.alert.kind.value}:{i}" for i, r in enumerate(ROWS)])
def test_every_evidence_field_is_documented(row: Row) -> None:
    kind = row.alert.kind
    documented = section(AlertKind.UNEXPECTED_SIGNER if kind is AlertKind.IDENTITY_SEEN else kind)
    for name in row.alert.details:
        assert f"`{name}`" in documented, f"{kind.value}: details field {name} is not documented"


def test_every_kind_has_a_constructor_in_the_table() -> None:
    assert {r.alert.kind for r in ROWS} == set(AlertKind)


def test_long_keys_are_hashed_as_documented() -> None:
    long_view = "view1:https://" + "m" * 300
    alert = a.log_error_alert(
        "rekor", long_view, error_since="2026-01-01", errors=1, last_error="x"
    )
    whole = f"log_error:rekor:{long_view}:2026-01-01"
    assert alert.dedup_key == f"log_error:sha256:{hashlib.sha256(whole.encode()).hexdigest()}"
    assert fact_key(AlertKind.LOG_ERROR, "rekor", "v", "t") == "log_error:rekor:v:t"


def test_bad_signature_digest_ignores_the_signatures() -> None:
    # Rekor v1 re-signs on every request: the body, not the signature, is the fact.
    other_key = Ed25519NoteSigner(
        "example.com/log", Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
    )
    resigned = sign_note(NOTE.split("\n\n")[0] + "\n", [other_key, LOG]).to_text()
    assert resigned != NOTE
    assert note_digest(resigned) == note_digest(NOTE)
    assert note_digest(OTHER) != note_digest(NOTE)


def test_trust_changed_is_once_per_change_and_tuf_version() -> None:
    again = a.trust_changed_alert("production", KEY_CHANGE, dict(VERSIONS))
    assert again.dedup_key == a.trust_changed_alert("production", KEY_CHANGE, VERSIONS).dedup_key
    later = a.trust_changed_alert("production", KEY_CHANGE, {**VERSIONS, "targets": 21})
    assert later.dedup_key != again.dedup_key
    assert again.log is None and again.severity.value == "high"
    assert "key changed" in again.summary and SHARD.base_url in again.summary
