"""A client for the RFC 6962 read API of a certificate transparency log (a CTFE).

    GET <url>/ct/v1/get-sth                              -> SignedTreeHead (unverified)
    GET <url>/ct/v1/get-sth-consistency?first&second     -> proof hashes (unverified)
    GET <url>/ct/v1/get-entries?start&end                -> MerkleTreeLeaf bytes, in order
    GET <url>/ct/v1/get-entry-and-proof?leaf_index&tree_size -> leaf bytes, audit path

Answers are parsed here, every field's type, size and count checked; nothing here verifies a
signature or a proof (``monitor.core.note.Rfc6962NoteVerifier`` and ``monitor.core.merkle``
do). ``get-entries`` may return fewer entries than asked (logs cap a batch); the client asks
again from where the answer ended, and refuses an empty answer, more entries than asked, or an
entry whose ``leaf_input`` is not base64. ``extra_data`` (the chain) is checked for shape only.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final

from monitor.core.ct import CtEntry, CtFormatError, SignedTreeHead, parse_sth_json
from monitor.core.fields import JsonReader
from monitor.core.merkle import HASH_SIZE, consistency_proof_size
from monitor.logs.http import (
    HttpLogClient,
    LogNotReady,
    LogResponseError,
    LogStatusError,
    excerpt,
    gather_bounded,
    get_json,
    safe_url,
)

__all__ = ["ENTRIES_PER_REQUEST", "CtClient", "EntryAndProof"]

ENTRIES_PER_REQUEST: Final = 256
"""Entries asked for in one get-entries request (CTFEs commonly cap batches at 256 or 1000)."""
_CONCURRENCY: Final = 4
_MAX_PROOF_HASHES: Final = 63
"""An audit path in a tree of at most 2^63 leaves has at most 63 hashes (its exact length is
checked where it is used, `monitor.core.merkle.frontier_from_inclusion_proof`)."""

_JSON: Final = JsonReader(LogResponseError, functools.partial(excerpt, limit=80))


@dataclass(frozen=True)
class EntryAndProof:
    """A get-entry-and-proof answer: the MerkleTreeLeaf bytes and the audit path."""

    leaf_input: bytes
    audit_path: tuple[bytes, ...]


def _hashes(value: object, where: str, expected: int | None) -> tuple[bytes, ...]:
    """Base64 hashes: exactly `expected` of them, or (None) at most `_MAX_PROOF_HASHES`."""
    if not isinstance(value, list):
        raise _JSON.fail(where, "an array of base64 hashes", value)
    if expected is not None and len(value) != expected:
        # A proof of the wrong length is garbage, not evidence: verified, it would fail and
        # read as misbehaviour (as for Rekor v1, tests/faults).
        raise LogResponseError(f"{where}: expected {expected} hashes, got {len(value)}")
    if len(value) > _MAX_PROOF_HASHES:
        raise LogResponseError(
            f"{where}: expected at most {_MAX_PROOF_HASHES} hashes, got {len(value)}"
        )
    out = []
    for i, item in enumerate(value):
        raw = _JSON.base64(item, f"{where}[{i}]")
        if len(raw) != HASH_SIZE:
            raise LogResponseError(
                f"{where}[{i}]: expected a {HASH_SIZE}-byte hash, got {len(raw)} bytes"
            )
        out.append(raw)
    return tuple(out)


class CtClient(HttpLogClient):
    """Reads one RFC 6962 log over HTTP; ``base_url`` is the log's prefix (before ``/ct/v1``).

    Methods raise the ``monitor.logs.http`` errors, or ValueError for a caller's bad range.
    """

    batch: int = ENTRIES_PER_REQUEST
    concurrency: int = _CONCURRENCY

    def _url(self, path: str) -> str:
        return f"{self.base_url}/ct/v1/{path}"

    async def _get(self, path: str) -> tuple[dict[str, object], str]:
        url = self._url(path)
        obj = await get_json(self.session, url, self.policy, budget=self.budget)
        where = f"GET {safe_url(url)}"
        return _JSON.obj(obj, where), where

    async def get_sth(self) -> SignedTreeHead:
        """The log's current signed tree head, shape-checked but not verified."""
        obj, where = await self._get("get-sth")
        try:
            return parse_sth_json(obj, where)
        except CtFormatError as e:
            raise LogResponseError(str(e)) from e

    async def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """The proof hashes ``first -> second``; none (and no request) when first is 0 or
        equals second. A 400 (a replica that does not have ``second`` yet) is LogNotReady."""
        if not 0 <= first <= second:
            raise ValueError(
                f"consistency proof: expected 0 <= first <= second, got {first}, {second}"
            )
        if first in (0, second):
            return []
        try:
            obj, where = await self._get(f"get-sth-consistency?first={first}&second={second}")
        except LogStatusError as e:
            if e.status == 400:
                raise LogNotReady(f"{e} (the log does not serve this proof yet)") from e
            raise
        expected = consistency_proof_size(first, second)
        return list(
            _hashes(_JSON.field(obj, "consistency", where), f"{where}: $.consistency", expected)
        )

    async def _batch(self, start: int, end: int) -> list[bytes]:
        """get-entries for [start, end), asking again where a short answer stopped."""
        out: list[bytes] = []
        while start + len(out) < end:
            first = start + len(out)
            obj, where = await self._get(f"get-entries?start={first}&end={end - 1}")
            entries = _JSON.field(obj, "entries", where)
            if not isinstance(entries, list):
                raise _JSON.fail(f"{where}: $.entries", "an array", entries)
            wanted = end - first
            if not 1 <= len(entries) <= wanted:
                raise LogResponseError(
                    f"{where}: expected 1 to {wanted} entries, got {len(entries)}"
                )
            for i, item in enumerate(entries):
                at = f"{where}: $.entries[{i}]"
                entry = _JSON.obj(item, at)
                leaf = _JSON.base64(
                    _JSON.field(entry, "leaf_input", at), f"{at}.leaf_input", non_empty=True
                )
                extra = _JSON.base64(_JSON.field(entry, "extra_data", at), f"{at}.extra_data")
                # Kept for a precert_entry's precertificate: the leaf alone proves no CA signed it.
                out.append(CtEntry(leaf, extra_data=extra))
        return out

    async def entries(self, start: int, end: int) -> list[bytes]:
        """The MerkleTreeLeaf bytes of entries [start, end), in order."""
        if not 0 <= start <= end:
            raise ValueError(f"entries: expected 0 <= start <= end, got {start}, {end}")
        jobs = [
            functools.partial(self._batch, s, min(end, s + self.batch))
            for s in range(start, end, self.batch)
        ]
        batches = await gather_bounded(jobs, self.concurrency) if jobs else []
        return [leaf for batch in batches for leaf in batch]

    async def entry_and_proof(self, leaf_index: int, tree_size: int) -> EntryAndProof:
        """Entry ``leaf_index`` and its audit path in the tree of ``tree_size`` entries."""
        if not 0 <= leaf_index < tree_size:
            raise ValueError(
                f"entry and proof: expected 0 <= index < size, got {leaf_index}, {tree_size}"
            )
        obj, where = await self._get(
            f"get-entry-and-proof?leaf_index={leaf_index}&tree_size={tree_size}"
        )
        leaf = _JSON.base64(
            _JSON.field(obj, "leaf_input", where), f"{where}: $.leaf_input", non_empty=True
        )
        path = _hashes(_JSON.field(obj, "audit_path", where), f"{where}: $.audit_path", None)
        return EntryAndProof(leaf_input=leaf, audit_path=path)
