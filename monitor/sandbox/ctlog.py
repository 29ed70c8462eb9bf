"""The sandbox's RFC 6962 certificate transparency log: its entries and its API answers.

The CT log's tree is a :class:`~monitor.sandbox.trees.LeafLog` like the others; each stored
body is an RFC 6962 ``MerkleTreeLeaf`` (so the tree's leaf hash, SHA-256(0x00 || body), is the
CT leaf hash). Entries are the sandbox CA's certificates, as ``x509_entry`` leaves (the
certificate) or ``precert_entry`` leaves (its TBSCertificate and the CA key's hash).

Routes (``<p>`` as in server.py), answering like a CTFE::

    GET <p>/ct/v1/get-sth
    GET <p>/ct/v1/get-sth-consistency?first&second
    GET <p>/ct/v1/get-entries?start&end          (end inclusive, at most MAX_GET_ENTRIES)
    GET <p>/ct/v1/get-entry-and-proof?leaf_index&tree_size

Misbehaviours are the core's (fork, rollback, bad_signature, bad_proof, bad_entries, errors,
slow); `render_*` apply the ones that change an answer's bytes.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Final

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from monitor.core.ct import (
    CtFormatError,
    CtLeaf,
    EntryType,
    encode_merkle_tree_leaf,
    parse_merkle_tree_leaf,
)
from monitor.core.note import encode_digitally_signed, tree_head_signature_input
from monitor.core.sct import Sct, SctParseError, precert_signed_data, precert_tbs
from monitor.sandbox.ca import LocalCA, SigningIdentity
from monitor.sandbox.trees import TreeSource

MAX_GET_ENTRIES: Final = 256
"""Most entries one get-entries answer holds (real CTFEs cap it too; clients must loop)."""

JsonReply = tuple[int, dict[str, object]]


ENTRY_KINDS: Final = ("x509", "precert", "mixed")
"""Which entry types an append makes: only x509_entry, only precert_entry, or alternating."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def ct_leaves(
    ca: LocalCA, signer: SigningIdentity, count: int, first_ms: int, kinds: str
) -> list[bytes]:
    """`count` MerkleTreeLeaf bodies for `signer`'s certificate, timestamps from `first_ms`.

    Each leaf's timestamp differs (one millisecond apart), so leaves of one certificate still
    have distinct hashes, like a CA logging several certificates for one identity.
    """
    # A self-signed certificate's issuer is itself: a log names its own key as the issuer's.
    issuer = signer.certificate if signer.self_signed else ca.certificate
    issuer_spki = issuer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    issuer_key_hash = hashlib.sha256(issuer_spki).digest()
    try:
        # The TBSCertificate the CA logged as a precertificate: the final one minus its SCTs.
        tbs = precert_tbs(signer.cert_der)
    except SctParseError:
        tbs = signer.certificate.tbs_certificate_bytes
    out: list[bytes] = []
    for i in range(count):
        precert = kinds == "precert" or (kinds == "mixed" and i % 2 == 1)
        leaf = CtLeaf(
            timestamp=first_ms + i,
            entry_type=EntryType.PRECERT if precert else EntryType.X509,
            certificate=tbs if precert else signer.cert_der,
            issuer_key_hash=issuer_key_hash if precert else None,
            extensions=b"",
        )
        out.append(encode_merkle_tree_leaf(leaf))
    return out


def issue_sct(
    key: ec.EllipticCurvePrivateKey, timestamp: int, tbs: bytes, issuer_spki: bytes
) -> tuple[Sct, bytes]:
    """The SCT `key`'s log signs at `timestamp` for the precertificate TBSCertificate `tbs`
    issued by `issuer_spki`, and the precert_entry MerkleTreeLeaf that keeps its promise."""
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signature = key.sign(
        precert_signed_data(timestamp, issuer_spki, tbs, b""), ec.ECDSA(hashes.SHA256())
    )
    sct = Sct(
        log_id=hashlib.sha256(spki).digest(),
        timestamp=timestamp,
        extensions=b"",
        hash_algorithm=4,  # sha256
        signature_algorithm=3,  # ecdsa
        signature=signature,
    )
    leaf = CtLeaf(
        timestamp=timestamp,
        entry_type=EntryType.PRECERT,
        certificate=tbs,
        issuer_key_hash=hashlib.sha256(issuer_spki).digest(),
        extensions=b"",
    )
    return sct, encode_merkle_tree_leaf(leaf)


def malformed_leaf(timestamp: int) -> bytes:
    """A MerkleTreeLeaf no reader accepts (entry type 9), for unreadable_entry drills."""
    return b"\x00\x00" + timestamp.to_bytes(8, "big") + b"\x00\x09" + b"\x00\x00\x01\x30\x00\x00"


def extra_data(ca: LocalCA) -> bytes:
    """The ``extra_data`` of an x509_entry: the chain (the CA root), as ``ASN.1Cert<..>`` list."""
    root = ca.certificate.public_bytes(serialization.Encoding.DER)
    chain = len(root).to_bytes(3, "big") + root
    return len(chain).to_bytes(3, "big") + chain


def entry_extra_data(ca: LocalCA, body: bytes) -> bytes:
    """The ``extra_data`` of the entry `body`: for a precert_entry a PrecertChainEntry (the
    precertificate the CA signed, then the chain), else the chain (`extra_data`)."""
    chain = extra_data(ca)
    try:
        leaf = parse_merkle_tree_leaf(body)
    except CtFormatError:
        return chain
    pre = ca.precertificates.get(leaf.certificate) if leaf.entry_type is EntryType.PRECERT else None
    if pre is None:
        return chain
    return len(pre).to_bytes(3, "big") + pre + chain


def sign_sth(
    key: ec.EllipticCurvePrivateKey, timestamp: int, size: int, root: bytes
) -> dict[str, object]:
    """A get-sth answer signed by `key`."""
    message = tree_head_signature_input(timestamp, size, root)
    signature = encode_digitally_signed(key.sign(message, ec.ECDSA(hashes.SHA256())))
    return {
        "tree_size": size,
        "timestamp": timestamp,
        "sha256_root_hash": _b64(root),
        "tree_head_signature": _b64(signature),
    }


def corrupt_sth(sth: dict[str, object]) -> dict[str, object]:
    """`sth` with one bit of its signature's last byte flipped (still well-formed TLS)."""
    raw = bytearray(base64.b64decode(str(sth["tree_head_signature"])))
    raw[-1] ^= 0x01
    return {**sth, "tree_head_signature": _b64(bytes(raw))}


def _int_param(value: str | None) -> int | None:
    if value is None or not value.isdigit():
        return None
    number = int(value)
    return number if number <= (1 << 63) - 1 else None


def _error(message: str, status: int = 400) -> JsonReply:
    return status, {"error_message": message, "success": False}


def render_consistency(
    src: TreeSource,
    first: str | None,
    second: str | None,
    *,
    bad_proof: bool,
    flip: Callable[[bytes], bytes],
) -> JsonReply:
    """GET get-sth-consistency: ``{"consistency": [base64 hashes]}``."""
    size1, size2 = _int_param(first), _int_param(second)
    if size1 is None or size2 is None:
        return _error("first and second must be decimal integers")
    if not 0 < size1 <= size2 or size2 > src.size:
        return _error(f"invalid range first={size1} second={size2} (tree size {src.size})")
    proof = src.consistency_proof(size1, size2)
    if bad_proof:
        proof = [flip(proof[0]), *proof[1:]] if proof else [hashlib.sha256().digest()]
    return 200, {"consistency": [_b64(h) for h in proof]}


def render_entries(
    src: TreeSource,
    start: str | None,
    end: str | None,
    extra: Callable[[bytes], bytes],
    *,
    tamper: Callable[[bytes], bytes] | None,
) -> JsonReply:
    """GET get-entries: at most `MAX_GET_ENTRIES` entries from `start` (end inclusive)."""
    first, last = _int_param(start), _int_param(end)
    if first is None or last is None or last < first:
        return _error("start and end must be decimal integers with start <= end")
    if first >= src.size:
        return _error(f"start {first} is beyond the tree size {src.size}")
    last = min(last, src.size - 1, first + MAX_GET_ENTRIES - 1)
    bodies = src.bodies(first, last + 1)
    if tamper is not None:
        bodies = [tamper(b) for b in bodies]
    return 200, {"entries": [{"leaf_input": _b64(b), "extra_data": _b64(extra(b))} for b in bodies]}


def render_entry_and_proof(
    src: TreeSource,
    leaf_index: str | None,
    tree_size: str | None,
    extra: Callable[[bytes], bytes],
    *,
    bad_proof: bool,
    flip: Callable[[bytes], bytes],
) -> JsonReply:
    """GET get-entry-and-proof: the leaf and its audit path in the tree of `tree_size`."""
    index, size = _int_param(leaf_index), _int_param(tree_size)
    if index is None or size is None:
        return _error("leaf_index and tree_size must be decimal integers")
    if not index < size <= src.size:
        return _error(f"invalid leaf_index {index} for tree_size {size} (tree size {src.size})")
    proof = src.inclusion_proof(index, size)
    if bad_proof:
        proof = [flip(proof[0]), *proof[1:]] if proof else [hashlib.sha256().digest()]
    return 200, {
        "leaf_input": _b64(src.body(index)),
        "extra_data": _b64(extra(src.body(index))),
        "audit_path": [_b64(h) for h in proof],
    }


def tamper_leaf(body: bytes) -> bytes:
    """An altered MerkleTreeLeaf: one bit of its last certificate byte flipped."""
    if len(body) < 4:
        return body + b"\x00"
    # The extensions' 2-byte length ends the leaf; the byte before it is the certificate's.
    at = len(body) - 3
    return body[:at] + bytes([body[at] ^ 0x01]) + body[at + 1 :]
