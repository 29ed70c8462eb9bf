"""TLS is verified by default: a local HTTPS server with a self-signed certificate is refused by
the log client (through the daemon's own HTTP session) and by apprise deliveries, each with a
clear error; the same server is reachable by a client that trusts the certificate, so the
refusal is the certificate's doing."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from monitor.config.settings import NotifyChannel, load_config
from monitor.core.severity import Severity
from monitor.notify.notifier import NotifyError, send_test
from monitor.service.daemon import open_monitor
from tests.integration.receivers import LOCALHOST, free_port


@dataclass
class HttpsServer:
    """An aiohttp server on 127.0.0.1 behind a self-signed certificate; counts requests."""

    port: int
    cert_pem: bytes
    requests: int = 0


def _self_signed(tmp_path: Path) -> tuple[Path, Path, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LOCALHOST)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(IPv4Address(LOCALHOST))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_file, key_file = tmp_path / "server.crt", tmp_path / "server.key"
    cert_file.write_bytes(cert_pem)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file, cert_pem


@pytest.fixture
async def https(tmp_path: Path) -> AsyncIterator[HttpsServer]:
    cert_file, key_file, cert_pem = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    server = HttpsServer(free_port(), cert_pem)

    async def handle(request: web.Request) -> web.Response:
        server.requests += 1
        await request.read()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, LOCALHOST, server.port, ssl_context=context).start()
    try:
        yield server
    finally:
        await runner.cleanup()


async def test_server_is_reachable_when_its_certificate_is_trusted(https: HttpsServer) -> None:
    trusting = ssl.create_default_context(cadata=https.cert_pem.decode())
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"https://{LOCALHOST}:{https.port}/api/v1/log", ssl=trusting) as resp,
    ):
        assert resp.status == 200
    assert https.requests == 1


async def test_log_client_refuses_a_self_signed_certificate(
    https: HttpsServer, tmp_path: Path
) -> None:
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    config_path = tmp_path / "config.toml"
    config_path.write_text(
        f"""
[monitor]
database = "monitor.db"
http_listen = ""
error_grace = "0s"

[[log]]
name = "tls-log"
type = "rekor-v1"
url = "https://{LOCALHOST}:{https.port}"
public_key = {json.dumps(pem)}
"""
    )
    config_path.chmod(0o600)
    async with open_monitor(load_config(config_path)) as monitor:
        outcome = await monitor.check()
    [error] = outcome.errors
    assert "TLS certificate verification failed" in error, error
    assert "self-signed certificate" in error, error
    assert "(after" not in error, "a certificate failure must not be retried"
    assert [a.kind.value for _, a in outcome.alerts] == ["log_error"]
    assert https.requests == 0


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
async def test_apprise_delivery_refuses_a_self_signed_certificate(https: HttpsServer) -> None:
    url = f"jsons://{LOCALHOST}:{https.port}/hook"
    channel = NotifyChannel("tls", (url,), Severity.INFO, (), None)
    with pytest.raises(NotifyError) as failure:
        await send_test(channel, timeout=5)
    assert "tls#" in str(failure.value)
    assert https.requests == 0
    # Only an explicit opt-out in the URL itself skips verification (documented as unsafe).
    insecure = NotifyChannel("tls", (f"{url}?verify=no",), Severity.INFO, (), None)
    await send_test(insecure, timeout=5)
    assert https.requests == 1
