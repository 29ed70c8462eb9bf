"""A self-made certificate copying a real Fulcio certificate's issuer name and serial number is
not that certificate (review R1 findings 2 and 3): logged to Rekor, it must neither hide the real
certificate's `unlogged_certificate` nor take its `unexpected_signer`, whether or not the rule
has `any_issuer`. All real: the sandbox CA logs the real certificate to its CT log, the forged one
is uploaded to the sandbox's tiles log (Rekor), the daemon polls both into a real SQLite file."""

from __future__ import annotations

import datetime
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID

from monitor.config.settings import load_config
from monitor.sandbox import Sandbox
from monitor.sandbox.ca import Identity, SigningIdentity
from monitor.service.daemon import open_monitor
from tests.integration.test_sct_promises import Clock, env  # noqa: F401 - the fixture
from tests.integration.test_unlogged_certificates import EMAIL, checks, unlogged, write_config

IDENTITY = Identity(email=EMAIL)


def issue_and_forge(sb: Sandbox) -> None:
    """The sandbox CA issues a real certificate for EMAIL (logged to its CT log); then a
    self-made certificate with the same issuer name, serial number and identity, signed by a
    key of the attacker's, is what the sandbox uploads to Rekor for EMAIL (self_signed)."""
    ca = sb.core.ca
    ca._cache.clear()
    real = ca.signer(IDENTITY).certificate
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(real.subject)
        .issuer_name(real.issuer)
        .serial_number(real.serial_number)
        .public_key(key.public_key())
        .not_valid_before(real.not_valid_before_utc)
        .not_valid_after(real.not_valid_after_utc)
    )
    for ext in real.extensions:
        if ext.oid not in (
            ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
            ExtensionOID.SUBJECT_KEY_IDENTIFIER,
            ExtensionOID.PRECERT_SIGNED_CERTIFICATE_TIMESTAMPS,
        ):
            builder = builder.add_extension(ext.value, ext.critical)
    forged = builder.sign(key, hashes.SHA256())
    ca._cache[(IDENTITY, True)] = SigningIdentity(
        identity=IDENTITY,
        certificate=forged,
        private_key=key,
        self_signed=True,
        cert_der=forged.public_bytes(serialization.Encoding.DER),
        cert_pem=forged.public_bytes(serialization.Encoding.PEM),
        minted_at=datetime.datetime.now(datetime.UTC),
    )


@pytest.mark.parametrize("rule_extra", ["", "any_issuer = true"], ids=["fulcio", "any_issuer"])
async def test_a_forged_rekor_certificate_does_not_hide_the_real_one(
    env: tuple[Sandbox, Clock, Path],  # noqa: F811
    rule_extra: str,
) -> None:
    sb, clock, directory = env
    path = write_config(sb, directory, rule_extra=rule_extra)
    if rule_extra:
        # any_issuer contradicts issuer: the rule names the identity by its email only.
        text = path.read_text().replace('issuer = "https://accounts.google.com"\n', "", 1)
        path.write_text(text)
    issue_and_forge(sb)
    async with open_monitor(load_config(path), clock=clock) as m:
        await sb.append("tiles", 1, IDENTITY, True)
        # Rekor first (the race the attacker wins), then the CT log with the real certificate.
        await m.poll("tiles")
        await m.poll("ct-sandbox")
        assert checks(directory) == [("security-email", "pending")]
        # Rekor after CT: the forged certificate does not resolve the pending check either.
        await sb.append("tiles", 1, IDENTITY, True)
        await m.poll("tiles")
        assert checks(directory) == [("security-email", "pending")]
        clock.now += timedelta(minutes=31)
        # A Rekor tree first served after the deadline, holding no use of the certificate.
        await sb.append("tiles", 1)
        (alert,) = unlogged(await m.check()) + unlogged(await m.check())
        assert alert.rule == "security-email"
    assert checks(directory) == [("security-email", "alerted")]
    with sqlite3.connect(directory / "monitor.db") as db:
        rows = db.execute(
            "SELECT l.type, m.certificate_id IS NULL FROM matches m JOIN logs l ON l.id = m.log_id"
        ).fetchall()
    assert sorted(set(rows)) == [("ct", 0), ("tiles", 1)]


async def test_a_forged_rekor_alert_does_not_cover_the_real_certificate(
    env: tuple[Sandbox, Clock, Path],  # noqa: F811
) -> None:
    """any_issuer with allowed_signers: the forged Rekor entry is an unexpected_signer, and so is
    the real certificate in CT; the second is its own alert, not linked to the first."""
    sb, clock, directory = env
    path = write_config(
        sb, directory, rule_extra='any_issuer = true\nallowed_signers = ["nobody@example.com"]'
    )
    path.write_text(path.read_text().replace('issuer = "https://accounts.google.com"\n', "", 1))
    issue_and_forge(sb)
    async with open_monitor(load_config(path), clock=clock) as m:
        await sb.append("tiles", 1, IDENTITY, True)
        rekor = await m.poll("tiles")
        assert [a.kind.value for _, a in rekor.alerts] == ["unexpected_signer"]
        ct = await m.poll("ct-sandbox")
        (alert,) = [a for _, a in ct.alerts if a.kind.value == "unexpected_signer"]
        assert alert.log == "ct-sandbox"
        assert alert.details["certificate_id"] is not None


async def test_an_any_issuer_ct_certificate_is_keyed_by_its_entry(
    env: tuple[Sandbox, Clock, Path],  # noqa: F811
) -> None:
    """A self-signed certificate in a CT log that an any_issuer rule counts: alerted, but with
    no certificate id, keyed by its CT entry, and no unlogged_certificate check."""
    sb, clock, directory = env
    path = write_config(sb, directory, rule_extra="any_issuer = true")
    path.write_text(path.read_text().replace('issuer = "https://accounts.google.com"\n', "", 1))
    async with open_monitor(load_config(path), clock=clock) as m:
        await sb.append("ct", 1, IDENTITY, True, entry_type="x509")
        result = await m.poll("ct-sandbox")
        (alert,) = [a for _, a in result.alerts if a.kind.value == "certificate_issued"]
        assert alert.details["certificate_id"] is None
        assert alert.details["identity"]["certificate_id"] is None
        assert alert.dedup_key.startswith("certificate_issued:ct-sandbox:")
    assert checks(directory) == []
