"""Rekor entry bodies: who signed what.

Pure: stdlib, ``cryptography`` (through ``monitor.core.certs``) and ``monitor.core.errors``; no IO.

``parse_entry`` takes the canonical JSON body of one log entry, as Rekor v1 serves it (the
base64-decoded ``body`` of ``/api/v1/log/entries`` or a bundle's ``canonicalizedBody``) or as a
Rekor v2 tiled log stores it (entry bundles), and returns a frozen ``Entry``: the kind, the
artifact digest and one ``Signer`` per signature with its certificate identity or key fingerprint.

Supported (kind, apiVersion) and where the signer and digest come from::

    hashedrekord 0.0.1  spec.signature.publicKey.content (b64 PEM)   spec.data.hash
    rekord       0.0.1  spec.signature.publicKey.content (b64, by     spec.data.hash
                        spec.signature.format: x509|pgp|minisign|ssh)
    intoto       0.0.1  spec.publicKey (b64 PEM)                      spec.content.payloadHash
    intoto       0.0.2  spec.content.envelope.signatures[].publicKey  spec.content.payloadHash
    dsse         0.0.1  spec.signatures[].verifier (b64 PEM)          spec.payloadHash
    hashedrekord 0.0.2  spec.hashedRekordV002.signature.verifier      spec.hashedRekordV002.data
    dsse         0.0.2  spec.dsseV002.signatures[].verifier           spec.dsseV002.payloadHash

(v2 verifiers are ``{"x509Certificate"|"publicKey": {"rawBytes": b64 DER}, "keyDetails"}``, and
v2 digests ``{"algorithm": "SHA2_256", "digest": b64}``.) The intoto payloadHash is absent from
the earliest intoto 0.0.1 entries: their ``artifact_digest`` is None rather than the envelope hash,
which would not be comparable with anything a rule names.

Every signature of a multi-signature entry (intoto 0.0.2, dsse) is read on its own: one whose
key material is malformed, over a limit (a certificate over 128 KiB or naming more than 256
SANs) or unparseable is skipped by itself and listed in ``Entry.skipped``, and the others are
still returned, each ``Signer`` with its ``position`` in the entry. A hostile signer cannot hide
a co-signer that way, and the entry says that it was not read whole. There is no cap on the
number of signatures beyond ``MAX_BODY_BYTES``, which bounds the work: a cap would let decoys
placed first push a real signer out of sight.

Every other failure raises ``EntryParseError``, whose message names the kind and the JSON path:
not JSON, not UTF-8, a missing or mistyped field, bad base64 or hex, an unparseable certificate
or key of a single-signature entry, no signature that can be read, a body over
``MAX_BODY_BYTES``. A kind this module does not know raises the subclass
``UnsupportedEntryError`` so a scanner can count such entries apart from malformed ones. No
other exception escapes: whatever a decoder raises on hostile bytes becomes an
``EntryParseError``. Duplicate JSON keys are resolved last-wins,
as Go's encoding/json, protojson's clients and sigstore-python do: the monitor then sees the
identity that verifiers see.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from monitor.core.certs import (
    CertificateIdentity,
    CertificateParseError,
    parse_certificate,
    parse_public_key,
    parse_verifier,
    public_key_fingerprint,
)
from monitor.core.errors import ParseError
from monitor.core.fields import MISSING, JsonReader, json_type, reject_constant, short

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_SKIPPED_KEPT",
    "SUPPORTED_KINDS",
    "Entry",
    "EntryParseError",
    "Signer",
    "SkippedSignature",
    "UnsupportedEntryError",
    "parse_entry",
]

#: Bodies larger than this are refused before decoding (real ones are a few KiB).
MAX_BODY_BYTES: Final = 1024 * 1024
#: At most this many skipped signatures are described in ``Entry.skipped`` (all are counted in
#: ``Entry.skipped_count``): the reasons of a body full of garbage signatures stay small.
MAX_SKIPPED_KEPT: Final = 32

# Hex digest lengths of the algorithms Rekor v1 schemas allow.
_V1_DIGEST_HEX_LEN: Final = {"sha256": 64, "sha384": 96, "sha512": 128}
# Rekor v2 / sigstore protobuf-specs HashAlgorithm names -> (our name, digest bytes).
_V2_DIGESTS: Final = {
    "SHA2_256": ("sha256", 32),
    "SHA2_384": ("sha384", 48),
    "SHA2_512": ("sha512", 64),
    "SHA3_256": ("sha3-256", 32),
    "SHA3_384": ("sha3-384", 48),
}
_HEX_DIGITS: Final = frozenset("0123456789abcdef")
_NON_X509_FORMATS: Final = frozenset({"pgp", "minisign", "ssh"})

# JSON objects after parsing; values are narrowed with isinstance at each use.
_Obj = dict[str, object]


class EntryParseError(ParseError):
    """An entry body is malformed: not JSON, missing or mistyped fields, unparseable keys."""


class UnsupportedEntryError(EntryParseError):
    """An entry body is well-formed JSON but of a kind or apiVersion this module does not parse."""


@dataclass(frozen=True, slots=True)
class Signer:
    """The verification material of one signature in an entry.

    ``key_format`` is "x509" for certificates and PKIX public keys, or the rekord signature format
    ("pgp", "minisign", "ssh") whose key bytes are kept and fingerprinted as they are.
    ``public_key_der`` holds the SubjectPublicKeyInfo DER of a bare x509 key, the raw key bytes of
    another format, and is None when there is a certificate (its key is in ``certificate``).
    ``public_key_sha256`` is the hex SHA-256 of the SPKI DER (x509) or of the raw key bytes.
    ``position`` is the signature's index in the entry's signature list (0 for single-signature
    kinds); it differs from the index in ``Entry.signers`` when signatures before it were skipped.
    """

    certificate: CertificateIdentity | None
    public_key_sha256: str
    public_key_der: bytes | None = field(repr=False)
    key_format: str
    position: int = 0


@dataclass(frozen=True, slots=True)
class SkippedSignature:
    """A signature of a multi-signature entry that could not be read, and why."""

    position: int
    """Its index in the entry's signature list."""
    reason: str


@dataclass(frozen=True, slots=True)
class Entry:
    """One parsed log entry.

    ``kind`` is "hashedrekord", "rekord", "intoto" or "dsse"; ``api_version`` the entry type
    version ("0.0.1", "0.0.2"; 0.0.2 hashedrekord and dsse are Rekor v2). ``artifact_digest`` is
    (algorithm, lowercase hex), e.g. ("sha256", "38dc..."): the signed data's digest for
    (hashed)rekord, the DSSE payload's digest for intoto and dsse; None only for intoto entries
    that predate payload hashes.

    ``signers`` are the signatures that could be read (never empty), in entry order; ``skipped``
    describes up to ``MAX_SKIPPED_KEPT`` that could not, ``skipped_count`` counts them all. An
    entry with ``skipped_count > 0`` was not read whole and must be reported as such.
    """

    kind: str
    api_version: str
    artifact_digest: tuple[str, str] | None
    signers: tuple[Signer, ...]
    skipped: tuple[SkippedSignature, ...] = ()
    skipped_count: int = 0


def parse_entry(body: bytes | bytearray) -> Entry:
    """Parse one canonical Rekor entry body (v1 or v2) into an ``Entry``.

    Raises ``EntryParseError`` (``UnsupportedEntryError`` for unknown kinds) and nothing else.
    """
    try:
        return _parse_entry(body)
    except EntryParseError:
        raise
    except Exception as e:
        # The contract is that a body can only parse or raise EntryParseError: the scanner
        # records such an entry and goes on. Every decoder below is bounded and its known
        # failures are caught where they arise; this is the backstop for one that raises
        # something undocumented on hostile bytes, so it can never stop a log's scan.
        raise EntryParseError(f"entry: unreadable ({type(e).__name__}: {short(e)})") from e


def _parse_entry(body: bytes | bytearray) -> Entry:
    if not isinstance(body, bytes | bytearray):
        raise EntryParseError(f"entry: expected bytes, got {type(body).__name__}")
    if len(body) > MAX_BODY_BYTES:
        raise EntryParseError(f"entry: expected at most {MAX_BODY_BYTES} bytes, got {len(body)}")
    try:
        # Decode explicitly: json.loads(bytes) would also accept UTF-16 and UTF-32.
        doc = json.loads(body.decode("utf-8"), parse_constant=reject_constant)
    except (ValueError, RecursionError) as e:
        # ValueError covers JSONDecodeError, UnicodeDecodeError and oversized integers;
        # RecursionError deeply nested arrays.
        raise EntryParseError(f"entry: expected a UTF-8 JSON object, got {short(e)}") from e
    if not isinstance(doc, dict):
        raise EntryParseError(f"entry: expected a JSON object, got {json_type(doc)}")
    kind = _str(doc, "kind", "entry")
    version = _str(doc, "apiVersion", "entry")
    parser = _PARSERS.get((kind, version))
    if parser is None:
        raise UnsupportedEntryError(
            f"entry: expected a kind/apiVersion among {', '.join(SUPPORTED_KINDS)},"
            f" got {kind[:40]!r} {version[:20]!r}"
        )
    spec = doc.get("spec", MISSING)
    if not isinstance(spec, dict):
        raise EntryParseError(f"{kind} {version}: spec: expected an object, got {json_type(spec)}")
    digest, signers, skipped = parser(spec, f"{kind} {version}: spec")
    return Entry(
        kind=kind,
        api_version=version,
        artifact_digest=digest,
        signers=signers,
        skipped=tuple(skipped[:MAX_SKIPPED_KEPT]),
        skipped_count=len(skipped),
    )


# --- one parser per (kind, apiVersion) ----------------------------------------------------------
# Each takes the spec object and the path prefix for messages, returns (digest, signers,
# skipped signatures).

_Parsed = tuple[tuple[str, str] | None, tuple[Signer, ...], list[SkippedSignature]]


def _hashedrekord_v001(spec: _Obj, where: str) -> _Parsed:
    digest = _v1_digest(
        _obj(_obj(spec, "data", where), "hash", f"{where}.data"), f"{where}.data.hash"
    )
    key = _obj(_obj(spec, "signature", where), "publicKey", f"{where}.signature")
    signer = _x509_signer(key, "content", f"{where}.signature.publicKey", {})
    return digest, (signer,), []


def _rekord_v001(spec: _Obj, where: str) -> _Parsed:
    digest = _v1_digest(
        _obj(_obj(spec, "data", where), "hash", f"{where}.data"), f"{where}.data.hash"
    )
    sig = _obj(spec, "signature", where)
    fmt = _str(sig, "format", f"{where}.signature")
    key = _obj(sig, "publicKey", f"{where}.signature")
    if fmt == "x509":
        return digest, (_x509_signer(key, "content", f"{where}.signature.publicKey", {}),), []
    if fmt in _NON_X509_FORMATS:
        raw = _b64_field(key, "content", f"{where}.signature.publicKey")
        # Only PKIX keys are parsed; other formats are identified by their bytes as logged.
        return digest, (Signer(None, hashlib.sha256(raw).hexdigest(), raw, fmt),), []
    raise EntryParseError(
        f"{where}.signature.format: expected x509, pgp, minisign or ssh, got {fmt[:40]!r}"
    )


def _intoto_v001(spec: _Obj, where: str) -> _Parsed:
    content = _obj(spec, "content", where)
    digest = _optional_v1_digest(content, "payloadHash", f"{where}.content")
    return digest, (_x509_signer(spec, "publicKey", where, {}),), []


def _intoto_v002(spec: _Obj, where: str) -> _Parsed:
    content = _obj(spec, "content", where)
    digest = _optional_v1_digest(content, "payloadHash", f"{where}.content")
    env_where = f"{where}.content.envelope"
    sigs = _signatures(_obj(content, "envelope", f"{where}.content"), env_where)
    return _each_signature(
        digest, sigs, env_where, lambda sig, at, seen: _x509_signer(sig, "publicKey", at, seen)
    )


def _dsse_v001(spec: _Obj, where: str) -> _Parsed:
    digest = _v1_digest(_obj(spec, "payloadHash", where), f"{where}.payloadHash")
    return _each_signature(
        digest,
        _signatures(spec, where),
        where,
        lambda sig, at, seen: _x509_signer(sig, "verifier", at, seen),
    )


def _hashedrekord_v002(spec: _Obj, where: str) -> _Parsed:
    body = _obj(spec, "hashedRekordV002", where)
    where = f"{where}.hashedRekordV002"
    digest = _v2_digest(_obj(body, "data", where), f"{where}.data")
    sig = _obj(body, "signature", where)
    signer = _v2_signer(_obj(sig, "verifier", f"{where}.signature"), f"{where}.signature", {})
    return digest, (signer,), []


def _dsse_v002(spec: _Obj, where: str) -> _Parsed:
    body = _obj(spec, "dsseV002", where)
    where = f"{where}.dsseV002"
    digest = _v2_digest(_obj(body, "payloadHash", where), f"{where}.payloadHash")
    return _each_signature(
        digest,
        _signatures(body, where),
        where,
        lambda sig, at, seen: _v2_signer(_obj(sig, "verifier", at), at, seen),
    )


_PARSERS: Final = {
    ("hashedrekord", "0.0.1"): _hashedrekord_v001,
    ("rekord", "0.0.1"): _rekord_v001,
    ("intoto", "0.0.1"): _intoto_v001,
    ("intoto", "0.0.2"): _intoto_v002,
    ("dsse", "0.0.1"): _dsse_v001,
    ("hashedrekord", "0.0.2"): _hashedrekord_v002,
    ("dsse", "0.0.2"): _dsse_v002,
}
#: The (kind, apiVersion) pairs ``parse_entry`` understands, as "kind/version" strings.
SUPPORTED_KINDS: Final = tuple(f"{k}/{v}" for k, v in _PARSERS)


# --- signers ------------------------------------------------------------------------------------


def _x509_signer(obj: _Obj, key: str, where: str, seen: dict[bytes, Signer]) -> Signer:
    """A signer from v1 x509 key material at ``obj[key]``: base64 of a PEM or DER certificate
    or public key."""
    raw = _b64_field(obj, key, where)
    # Multi-signature envelopes often repeat one key: parse each distinct value once.
    cached = seen.get(raw)
    if cached is not None:
        return cached
    try:
        parsed = parse_verifier(raw)
    except CertificateParseError as e:
        raise EntryParseError(f"{where}.{key}: {e}") from e
    seen[raw] = signer = _pkix_signer(parsed)
    return signer


def _pkix_signer(parsed: CertificateIdentity | bytes) -> Signer:
    """The signer of a parsed certificate or DER SubjectPublicKeyInfo."""
    if isinstance(parsed, CertificateIdentity):
        return Signer(parsed, parsed.public_key_sha256, None, "x509")
    return Signer(None, public_key_fingerprint(parsed), parsed, "x509")


def _v2_signer(verifier: _Obj, where: str, seen: dict[bytes, Signer]) -> Signer:
    """A signer from a Rekor v2 Verifier: exactly one of x509Certificate or publicKey (DER)."""
    where = f"{where}.verifier"
    has_cert = "x509Certificate" in verifier
    if has_cert == ("publicKey" in verifier):
        raise EntryParseError(
            f"{where}: expected exactly one of x509Certificate or publicKey, got "
            f"{'both' if has_cert else 'neither'}"
        )
    name = "x509Certificate" if has_cert else "publicKey"
    raw = _b64_field(_obj(verifier, name, where), "rawBytes", f"{where}.{name}")
    cached = seen.get(raw)
    if cached is not None:
        return cached
    try:
        parsed = parse_certificate(raw) if has_cert else parse_public_key(raw)
    except CertificateParseError as e:
        raise EntryParseError(f"{where}.{name}.rawBytes: {e}") from e
    seen[raw] = signer = _pkix_signer(parsed)
    return signer


def _signatures(obj: _Obj, where: str) -> list[object]:
    """The ``signatures`` array of ``obj``: not empty; its items are checked one by one."""
    sigs = obj.get("signatures", MISSING)
    if not isinstance(sigs, list):
        raise EntryParseError(f"{where}.signatures: expected an array, got {json_type(sigs)}")
    if not sigs:
        raise EntryParseError(f"{where}.signatures: expected at least one signature, got none")
    return sigs


def _each_signature(
    digest: tuple[str, str] | None,
    sigs: list[object],
    where: str,
    read: Callable[[_Obj, str, dict[bytes, Signer]], Signer],
) -> _Parsed:
    """The entry of a multi-signature parser: `digest` with every signature read on its own by
    `read` (the signature object, its path, and a cache of key material shared by the entry's
    signatures). One that fails is skipped by itself, never the entry, so a decoy (malformed,
    oversized, 300 SANs) cannot hide a real co-signer. Raises only when none can be read."""
    signers: list[Signer] = []
    skipped: list[SkippedSignature] = []
    seen: dict[bytes, Signer] = {}
    for i, s in enumerate(sigs):
        at = f"{where}.signatures[{i}]"
        try:
            signer = read(_JSON.obj(s, at), at, seen)
        except EntryParseError as e:
            problem = e
        except Exception as e:  # noqa: BLE001 - turned into this signature's EntryParseError
            # Not expected (see parse_entry's backstop), but whatever one hostile signature
            # makes a decoder raise must not cost its co-signers either.
            problem = EntryParseError(f"{at}: unreadable ({type(e).__name__}: {short(e)})")
            problem.__cause__ = e
        else:
            placed = signer if signer.position == i else dataclasses.replace(signer, position=i)
            signers.append(placed)
            continue
        if len(sigs) == 1:
            raise problem
        skipped.append(SkippedSignature(i, str(problem)))
    if not signers:
        first = skipped[0].reason
        more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
        raise EntryParseError(
            f"{where}.signatures: expected a readable signature, got none of {len(sigs)}: "
            f"{first}{more}"
        )
    return digest, tuple(signers), skipped


# --- digests ------------------------------------------------------------------------------------


def _v1_digest(h: _Obj, where: str) -> tuple[str, str]:
    """{"algorithm": "sha256", "value": "<hex>"} -> ("sha256", lowercase hex)."""
    algorithm = _str(h, "algorithm", where)
    value = _str(h, "value", where).lower()
    expected_len = _V1_DIGEST_HEX_LEN.get(algorithm)
    if expected_len is None:
        raise EntryParseError(
            f"{where}.algorithm: expected sha256, sha384 or sha512, got {algorithm[:40]!r}"
        )
    if len(value) != expected_len or not _HEX_DIGITS.issuperset(value):
        raise EntryParseError(
            f"{where}.value: expected {expected_len} hex digits for {algorithm}, got {value[:80]!r}"
        )
    return algorithm, value


def _optional_v1_digest(obj: _Obj, key: str, where: str) -> tuple[str, str] | None:
    if key not in obj:
        return None
    return _v1_digest(_obj(obj, key, where), f"{where}.{key}")


def _v2_digest(h: _Obj, where: str) -> tuple[str, str]:
    """{"algorithm": "SHA2_256", "digest": "<b64>"} -> ("sha256", lowercase hex)."""
    algorithm = _str(h, "algorithm", where)
    known = _V2_DIGESTS.get(algorithm)
    if known is None:
        raise EntryParseError(
            f"{where}.algorithm: expected one of {', '.join(_V2_DIGESTS)}, got {algorithm[:40]!r}"
        )
    name, size = known
    digest = _b64_field(h, "digest", where)
    if len(digest) != size:
        raise EntryParseError(
            f"{where}.digest: expected {size} bytes for {algorithm}, got {len(digest)}"
        )
    return name, digest.hex()


# --- typed field access ------------------------------------------------------------------------

# Messages name the type found, never the value: a body is the log's, and may be anything.
_JSON: Final = JsonReader(EntryParseError)


def _obj(obj: _Obj, key: str, where: str) -> _Obj:
    return _JSON.obj(obj.get(key, MISSING), f"{where}.{key}")


def _str(obj: _Obj, key: str, where: str) -> str:
    return _JSON.text(obj.get(key, MISSING), f"{where}.{key}")


def _b64_field(obj: _Obj, key: str, where: str) -> bytes:
    """A non-empty standard, padded base64 string field, decoded."""
    return _JSON.base64(_str(obj, key, where), f"{where}.{key}", non_empty=True)
