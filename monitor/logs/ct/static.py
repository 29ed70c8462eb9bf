"""A client for C2SP static-ct-api logs (Sunlight and other tiled CT logs).

A static-ct-api log is a tlog-tiles log whose entries are certificates (https://c2sp.org/static-ct-api).
Resources, under the log's prefix:

    checkpoint                     the signed note; its signature is an "RFC 6962 STH" note
                                   signature (verify it with `Rfc6962NoteVerifier`)
    tile/<L>/<N>[.p/<W>]           hash tiles, exactly as tlog-tiles (`TilesClient`)
    tile/data/<N>[.p/<W>]          data tiles: W TileLeaf entries back to back
    issuer/<hex SHA-256>           an issuer certificate (DER) named by its fingerprint

Hash tiles, checkpoints and proofs are `TilesClient`'s; this class adds data tiles (parsed by
`monitor.core.ct.parse_tile_leaves`: each entry yields the MerkleTreeLeaf whose RFC 6962 leaf
hash is the tree's) and issuers (checked against the fingerprint that names them). Nothing here
verifies a signature or proves an entry: the engine and the scanner do.
"""

from __future__ import annotations

import hashlib
from typing import Final

from monitor.core.ct import CtFormatError, TileLeaf, parse_tile_leaves
from monitor.logs.http import LogResponseError, get_bytes, safe_url
from monitor.logs.tiles.client import TILE_WIDTH, TilesClient, encode_index

__all__ = ["MAX_ISSUER_BYTES", "StaticCtClient", "data_path"]

MAX_ISSUER_BYTES: Final = 64 * 1024
"""An issuer certificate is 1-2 KiB; a larger answer is not one."""
_FINGERPRINT_LEN: Final = 32


def data_path(index: int, width: int | None = None) -> str:
    """``tile/data/<N>[.p/<W>]`` (no leading slash); ``width`` None or 256 means full."""
    if width is not None and (
        isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= TILE_WIDTH
    ):
        raise ValueError(f"tile width: expected 1 to {TILE_WIDTH}, got {width!r}")
    suffix = "" if width in (None, TILE_WIDTH) else f".p/{width}"
    return f"tile/data/{encode_index(index)}{suffix}"


class StaticCtClient(TilesClient):
    """Reads one static-ct-api log over HTTP: `TilesClient` (checkpoint, hash tiles, proofs)
    plus data tiles and issuers. Methods raise the ``monitor.logs.http`` errors, or ValueError
    for a caller's bad argument."""

    async def data_tile(self, index: int, width: int) -> list[TileLeaf]:
        """``GET tile/data/<N>[.p/<W>]``: the ``width`` entries (1-256) of one data tile.

        The body (at most the policy's ``max_body_bytes``: a TileLeaf has no size bound of its
        own) must hold exactly as many well-formed TileLeaf entries as the tile is wide, and
        nothing after them, else LogResponseError. If a partial tile is gone, the full tile is
        fetched and trimmed to ``width``.
        """
        full = data_path(index)
        path, got, body = await self._get_partial_or_full(
            data_path(index, width), full, width, self.policy.max_body_bytes
        )
        where = f"GET {safe_url(self._url(path))}"
        try:
            leaves = parse_tile_leaves(b"".join(body), where)
        except CtFormatError as e:
            raise LogResponseError(str(e)) from e
        if len(leaves) != got:
            raise LogResponseError(f"{where}: expected {got} entries, got {len(leaves)}")
        return leaves[:width]

    async def issuer(self, fingerprint: bytes) -> bytes:
        """``GET issuer/<hex fingerprint>``: the issuer certificate's DER, whose SHA-256 must
        be `fingerprint` (else LogResponseError), at most `MAX_ISSUER_BYTES`."""
        if len(fingerprint) != _FINGERPRINT_LEN:
            raise ValueError(f"issuer: expected a 32-byte fingerprint, got {len(fingerprint)}")
        url = self._url(f"issuer/{fingerprint.hex()}")
        body = await get_bytes(
            self.session,
            url,
            self.policy,
            max_bytes=min(MAX_ISSUER_BYTES, self.policy.max_body_bytes),
            budget=self.budget,
        )
        if hashlib.sha256(body).digest() != fingerprint:
            raise LogResponseError(
                f"GET {safe_url(url)}: the certificate served does not have the fingerprint "
                "that names it"
            )
        return body
