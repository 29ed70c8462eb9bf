"""The sandbox's Rekor v1 search index: `POST /api/v1/index/retrieve` over its own entries.

Like Rekor's Redis index, it maps lowercased keys to entry UUIDs and is filled after the entries
are in the log, so it can lag:

    key                         from the entry body (hashedrekord 0.0.1)
    email:<email>               each email SAN of the certificate
    subject:<uri or email>      each URI or email SAN of the certificate
    hash:sha256:<hex>           the signed artifact's digest
    key:<hex>                   SHA-256 of the signing key's DER SubjectPublicKeyInfo

`lag` keeps the newest entries out of the index and `paused` stops it where it is, so tests can
show a monitor coping with an index that is behind the log. Looking entries up by UUID (for
`entries/retrieve`) is never behind: that is the log itself, not the index.

Bodies are read with the `cryptography` package directly, not with the monitor's own parsers,
so the index is an independent reading of the entries.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from monitor.core.merkle import leaf_hash

__all__ = ["IndexQueryError", "SearchIndex", "body_keys", "query_keys"]

_HEX = frozenset("0123456789abcdef")


class IndexQueryError(ValueError):
    """A search request the index cannot answer (answered with 400)."""


def _spki_key(public_key: object) -> str:
    der = public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "key:" + hashlib.sha256(der).hexdigest()


def body_keys(body: bytes) -> list[str]:
    """The index keys of one entry body; none for bodies it cannot read."""
    try:
        spec = json.loads(body)["spec"]
        keys = [f"hash:{spec['data']['hash']['algorithm']}:{spec['data']['hash']['value']}"]
        pem = base64.b64decode(spec["signature"]["publicKey"]["content"])
    except (ValueError, KeyError, TypeError):
        return []
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return keys
    keys.append(_spki_key(cert.public_key()))
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return keys
    for email in san.get_values_for_type(x509.RFC822Name):
        keys += [f"email:{email}", f"subject:{email}"]
    keys += [f"subject:{uri}" for uri in san.get_values_for_type(x509.UniformResourceIdentifier)]
    return [k.lower() for k in dict.fromkeys(keys)]


def _public_key_key(query: object) -> str:
    if not isinstance(query, dict) or query.get("format") != "x509":
        raise IndexQueryError('publicKey: expected {"format": "x509", "content": <base64 PEM>}')
    try:
        pem = base64.b64decode(str(query.get("content", "")), validate=True)
    except ValueError as e:
        raise IndexQueryError("publicKey.content: expected base64") from e
    try:
        if b"CERTIFICATE" in pem:
            return _spki_key(x509.load_pem_x509_certificate(pem).public_key())
        return _spki_key(serialization.load_pem_public_key(pem))
    except ValueError as e:
        raise IndexQueryError(f"publicKey.content: not a PEM key or certificate: {e}") from e


def query_keys(query: object) -> tuple[list[str], str]:
    """The keys a search request asks for and how to combine them ("and" / "or")."""
    if not isinstance(query, dict):
        raise IndexQueryError("expected a JSON object")
    keys: list[str] = []
    for field in ("email", "subject"):
        value = query.get(field)
        if value is not None:
            if not isinstance(value, str) or not value:
                raise IndexQueryError(f"{field}: expected a non-empty string")
            keys.append(f"{field}:{value}".lower())
    value = query.get("hash")
    if value is not None:
        text = str(value).lower()
        if ":" not in text:
            text = f"sha256:{text}"
        algorithm, _, digits = text.partition(":")
        if algorithm not in ("sha256", "sha384", "sha512") or not set(digits) <= _HEX:
            raise IndexQueryError("hash: expected [sha256:]<hex>")
        keys.append(f"hash:{text}")
    if query.get("publicKey") is not None:
        keys.append(_public_key_key(query["publicKey"]))
    if not keys:
        raise IndexQueryError("expected at least one of email, subject, hash, publicKey")
    operator = query.get("operator", "and")
    if operator not in ("and", "or"):
        raise IndexQueryError('operator: expected "and" or "or"')
    return keys, str(operator)


class SearchIndex:
    """Keys -> entries, filled on demand up to (log size - lag) unless paused.

    ``entry_at(i)`` returns (the 80-hex UUID, body) of global entry ``i``; callers hold the
    sandbox lock.
    """

    def __init__(self) -> None:
        self._keys: defaultdict[str, list[int]] = defaultdict(list)
        self._uuids: list[str] = []
        self._by_leaf: dict[str, int] = {}
        self._indexed = 0
        self.lag = 0
        self.paused = False

    def _map(self, size: int, entry_at: Callable[[int], tuple[str, bytes]]) -> None:
        while len(self._uuids) < size:
            i = len(self._uuids)
            uuid, body = entry_at(i)
            self._uuids.append(uuid)
            self._by_leaf[leaf_hash(body).hex()] = i

    def _catch_up(self, size: int, entry_at: Callable[[int], tuple[str, bytes]]) -> None:
        self._map(size, entry_at)
        if self.paused:
            return
        target = max(self._indexed, size - self.lag)
        for i in range(self._indexed, target):
            for key in body_keys(entry_at(i)[1]):
                self._keys[key].append(i)
        self._indexed = target

    def search(
        self, query: object, size: int, entry_at: Callable[[int], tuple[str, bytes]]
    ) -> list[str]:
        """The UUIDs of the indexed entries matching ``query``, oldest first."""
        keys, operator = query_keys(query)
        self._catch_up(size, entry_at)
        sets = [set(self._keys.get(k, ())) for k in keys]
        found = set.intersection(*sets) if operator == "and" else set.union(*sets)
        return [self._uuids[i] for i in sorted(found)]

    def locate(
        self, uuid: str, size: int, entry_at: Callable[[int], tuple[str, bytes]]
    ) -> int | None:
        """The global index of the entry with this UUID (64 or 80 hex), or None."""
        self._map(size, entry_at)
        return self._by_leaf.get(uuid[-64:].lower())

    def state(self) -> dict[str, object]:
        """Settings and progress, for /admin/state."""
        return {"lag": self.lag, "paused": self.paused, "indexed": self._indexed}
