"""The sandbox's C2SP static-ct-api log: its entries, checkpoints and data tiles.

The log's tree is a :class:`~monitor.sandbox.trees.LeafLog` like the others; each stored body
is the entry's RFC 6962 ``MerkleTreeLeaf`` (so the tree's leaf hash is the CT leaf hash), whose
extensions hold the ``leaf_index`` extension static-ct-api requires. Entries are the sandbox
CA's certificates (`ctlog.ct_leaves`); a data tile's ``TileLeaf`` is rendered from the stored
leaf: the TimestampedEntry, for a precert_entry the precertificate the CA signed (for an entry
no CA signed, the TBSCertificate wrapped as a certificate with an empty signature), and the
chain's fingerprint (the CA root, served at ``issuer/<hex>``).

Routes (``<p>`` as in server.py), answering like Sunlight::

    GET <p>/static-ct/checkpoint                  RFC 6962 STH note signature, signed now
    GET <p>/static-ct/tile/<L>/<N>[.p/<W>]        hash tiles (as tlog-tiles)
    GET <p>/static-ct/tile/data/<N>[.p/<W>]       data tiles
    GET <p>/static-ct/issuer/<hex SHA-256>        the CA root's DER

Misbehaviours are the core's (fork, rollback, bad_signature, bad_proof, bad_entries, errors,
slow); the functions here apply the ones that change an answer's bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from typing import Final

from cryptography.hazmat.primitives.asymmetric import ec

from monitor.core.ct import (
    CtLeaf,
    EntryType,
    encode_merkle_tree_leaf,
    parse_merkle_tree_leaf,
    parse_sth_json,
    sth_note,
)
from monitor.core.note import Rfc6962NoteVerifier
from monitor.sandbox import ctlog
from monitor.sandbox.ca import LocalCA, SigningIdentity

DEFAULT_ORIGIN: Final = "sandbox.static-ct.local"
"""The static-ct log's origin and key name (its URL has a port chosen at start)."""
NOT_A_CERTIFICATE: Final = b"\x30\x03\x02\x01\x09"
"""A DER SEQUENCE that is no X.509 certificate: the `malformed` entries' certificate."""

_LEAF_INDEX_EXTENSION: Final = 0
# SEQUENCE { ecdsa-with-SHA256 } and an empty BIT STRING: the wrapped TBS's "signature".
_NO_SIGNATURE: Final = bytes.fromhex("300a06082a8648ce3d040302") + b"\x03\x01\x00"


def leaf_index_extension(index: int) -> bytes:
    """The CTExtensions holding static-ct-api's ``leaf_index`` (uint40) extension."""
    return bytes([_LEAF_INDEX_EXTENSION]) + (5).to_bytes(2, "big") + index.to_bytes(5, "big")


def with_leaf_index(leaves: list[bytes], first_index: int) -> list[bytes]:
    """MerkleTreeLeaf bodies re-encoded with their ``leaf_index`` extension from `first_index`."""
    out = []
    for i, body in enumerate(leaves):
        leaf = parse_merkle_tree_leaf(body)
        ext = leaf_index_extension(first_index + i)
        out.append(encode_merkle_tree_leaf(dataclasses.replace(leaf, extensions=ext)))
    return out


def leaves(
    ca: LocalCA,
    signer: SigningIdentity,
    count: int,
    first_ms: int,
    kinds: str,
    first_index: int,
    *,
    malformed: bool = False,
) -> list[bytes]:
    """`count` MerkleTreeLeaf bodies of entries `first_index`..., as `ctlog.ct_leaves`, or (with
    `malformed`) x509_entry leaves whose certificate is `NOT_A_CERTIFICATE`."""
    if malformed:
        bad = [
            encode_merkle_tree_leaf(
                CtLeaf(first_ms + i, EntryType.X509, NOT_A_CERTIFICATE, None, b"")
            )
            for i in range(count)
        ]
        return with_leaf_index(bad, first_index)
    return with_leaf_index(ctlog.ct_leaves(ca, signer, count, first_ms, kinds), first_index)


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def wrap_tbs(tbs: bytes) -> bytes:
    """A certificate DER around `tbs` with an empty signature (the sandbox's precertificate)."""
    inner = tbs + _NO_SIGNATURE
    return b"\x30" + _der_len(len(inner)) + inner


def tile_leaf(
    body: bytes, chain: tuple[bytes, ...], precertificates: Mapping[bytes, bytes]
) -> bytes:
    """The data tile entry of the MerkleTreeLeaf `body`, with the chain's fingerprints: for a
    precert_entry the precertificate the CA signed (`precertificates`, by logged TBS), else
    (an entry no CA signed) the TBSCertificate with an empty signature."""
    leaf = parse_merkle_tree_leaf(body)
    out = bytearray(body[2:])  # the TimestampedEntry (after version and leaf type)
    if leaf.entry_type is EntryType.PRECERT:
        pre = precertificates.get(leaf.certificate) or wrap_tbs(leaf.certificate)
        out += len(pre).to_bytes(3, "big") + pre
    fingerprints = b"".join(chain)
    out += len(fingerprints).to_bytes(2, "big") + fingerprints
    return bytes(out)


def tamper_leaf(body: bytes) -> bytes:
    """An altered MerkleTreeLeaf: one bit of its certificate's last byte flipped."""
    leaf = parse_merkle_tree_leaf(body)
    cert = leaf.certificate[:-1] + bytes([leaf.certificate[-1] ^ 0x01])
    return encode_merkle_tree_leaf(dataclasses.replace(leaf, certificate=cert))


def data_tile(
    bodies: list[bytes],
    chain: tuple[bytes, ...],
    precertificates: Mapping[bytes, bytes],
    *,
    tamper: bool,
) -> bytes:
    """A data tile of `bodies` (bad_entries: each leaf's certificate altered)."""
    if tamper:
        bodies = [tamper_leaf(b) for b in bodies]
    return b"".join(tile_leaf(b, chain, precertificates) for b in bodies)


def checkpoint(
    key: ec.EllipticCurvePrivateKey,
    origin: str,
    timestamp: int,
    size: int,
    root: bytes,
    *,
    hint_key: ec.EllipticCurvePrivateKey | None = None,
    corrupt: bool = False,
) -> str:
    """A checkpoint signed by `key` with an RFC 6962 STH note signature, under the key hint of
    `hint_key` (default `key`: another key's hint is the wrong_key drill); `corrupt` flips a
    bit of the signature."""
    sth = ctlog.sign_sth(key, timestamp, size, root)
    if corrupt:
        sth = ctlog.corrupt_sth(sth)
    hint = Rfc6962NoteVerifier(origin, (hint_key or key).public_key()).key_hint
    return sth_note(origin, parse_sth_json(sth), origin, hint).to_text()


def fingerprint(der: bytes) -> bytes:
    """SHA-256 of a certificate's DER: its name in a chain and under ``issuer/``."""
    return hashlib.sha256(der).digest()
