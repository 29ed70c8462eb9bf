"""A client for the Rekor v1 REST read API (rekor.sigstore.dev and private instances).

Responses are parsed once, here, by pure functions (``parse_log_info``, ``parse_entry_map``,
``parse_entries``, ``parse_consistency_proof``) into frozen dataclasses; every field's type and
shape is checked and raw dicts never leave this module. What the parsed values *mean* is not
trusted here: sizes and roots in the JSON are advisory (only a verified signed note counts) and
proofs are verified by the engine against checkpoints it holds.

Rekor v1 details handled here (see docs/DESIGN "Logs we speak"):

- ``/api/v1/log/proof`` answers with the server's *latest* root, not the root at lastSize;
  only the proof hashes are returned. A 400 on a proof means the (replica behind the) load
  balancer does not know lastSize yet: ``LogNotReady``, retry later, not tampering.
- ``inclusionProof.logIndex`` is the index within the shard (``V1Entry.tree_index``), while
  ``logIndex`` is global (``V1Entry.log_index``).
- ``entries/retrieve`` takes at most 10 indexes and silently drops missing entries: results
  are matched by logIndex and missing ones are absent from the returned dict.
- The last 64 hex characters of an entry UUID are its leaf hash SHA-256(0x00 || body); a
  mismatch raises ``EntryMismatch`` (a VerificationError: the log misbehaved).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Final, TypeGuard, TypeVar

from monitor.core.entry_proof import EntryEvidence
from monitor.core.errors import VerificationError
from monitor.core.fields import MAX_INT64, MAX_UNIX_TIME, JsonReader
from monitor.core.merkle import consistency_proof_size, leaf_hash
from monitor.logs.http import (
    HttpLogClient,
    LogNotFound,
    LogNotReady,
    LogResponseError,
    LogStatusError,
    excerpt,
    gather_bounded,
    get_json,
    post_json,
    safe_url,
)

__all__ = [
    "RETRIEVE_BATCH",
    "EntryMismatch",
    "RekorV1Client",
    "TreeHead",
    "V1Entry",
    "V1LogInfo",
    "check_uuid",
    "is_tree_id",
    "parse_consistency_proof",
    "parse_entries",
    "parse_entry_map",
    "parse_log_info",
    "parse_uuid_list",
    "read_log_entry",
]

log = logging.getLogger(__name__)

RETRIEVE_BATCH: Final = 10
"""Most log indexes Rekor accepts in one ``entries/retrieve`` request."""

_RETRIEVE_CONCURRENCY: Final = 4
_T = TypeVar("_T", int, str)
MAX_SEARCH_RESULTS: Final = 100_000
"""Most UUIDs accepted from one index search (the index has no pagination; public identities
with more entries than this should be searched by a narrower term)."""
_PUBLIC_KEY_MAX_BYTES: Final = 64 * 1024
_HEX_HASH = re.compile(r"[0-9a-fA-F]{64}")
_UUID = re.compile(r"(?:[0-9a-fA-F]{16})?[0-9a-fA-F]{64}")
_TREE_ID = re.compile(r"[0-9]{1,20}")


class EntryMismatch(VerificationError):
    """An entry's UUID does not end in the leaf hash of its body: the log misbehaved.

    Carries the global ``log_index``, the ``uuid`` as served and the ``computed`` leaf hash.
    """

    def __init__(self, message: str, *, log_index: int, uuid: str, computed: bytes) -> None:
        super().__init__(message)
        self.log_index = log_index
        self.uuid = uuid
        self.computed = computed


@dataclass(frozen=True)
class TreeHead:
    """One tree (shard) as ``/api/v1/log`` describes it.

    ``note`` is the signedTreeHead text exactly as served. ``size`` and ``root`` are what the
    JSON claims: advisory only, the engine trusts only the verified note.
    """

    tree_id: str
    note: str
    size: int
    root: bytes


@dataclass(frozen=True)
class V1LogInfo:
    """``/api/v1/log``: the active tree and the frozen (inactive) shards before it."""

    active: TreeHead
    inactive: tuple[TreeHead, ...]


@dataclass(frozen=True)
class V1Entry:
    """One Rekor v1 log entry as served (decoded, shape-checked, UUID checked against body).

    ``log_index`` is global; ``tree_index`` (inclusionProof.logIndex) is within the shard.
    The proof fields are None / empty when the log sent no inclusion proof.
    """

    uuid: str
    log_index: int
    body: bytes
    integrated_time: int
    log_id: str
    tree_index: int | None
    proof_tree_size: int | None
    proof_root: bytes | None
    proof_hashes: tuple[bytes, ...]
    checkpoint: str | None
    set: bytes | None

    @property
    def leaf_hash(self) -> bytes:
        """SHA-256(0x00 || body), the entry's Merkle leaf hash."""
        return leaf_hash(self.body)

    @property
    def evidence(self) -> EntryEvidence:
        """What the log served with the entry, for `monitor.core.entry_proof`'s checks."""
        return EntryEvidence(
            body=self.body,
            log_index=self.log_index,
            integrated_time=self.integrated_time,
            log_id=self.log_id,
            signed_entry_timestamp=self.set,
            tree_index=self.tree_index,
            proof_tree_size=self.proof_tree_size,
            proof_root=self.proof_root,
            proof_hashes=self.proof_hashes,
            checkpoint=self.checkpoint,
        )


# --- field readers (raise LogResponseError naming the field) ------------------------------------

_JSON: Final = JsonReader(LogResponseError, partial(excerpt, limit=80))
_fail = _JSON.fail
_obj = _JSON.obj
_field = _JSON.field
_str = _JSON.text
_hex_hash = _JSON.hex_hash
_hex_hashes = _JSON.hex_hashes
_base64 = _JSON.base64


def _int(value: object, where: str, *, minimum: int = 0, maximum: int = MAX_INT64) -> int:
    return _JSON.integer(value, where, lo=minimum, hi=maximum)


def _tree_id(value: object, where: str) -> str:
    if not is_tree_id(value):
        raise _fail(where, "a decimal tree ID from 0 to 2^63 - 1 as a string", value)
    return value


def is_tree_id(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a Rekor tree ID: a string of ASCII digits, at most 2^63 - 1
    (Trillian's tree IDs are int64)."""
    return isinstance(value, str) and bool(_TREE_ID.fullmatch(value)) and int(value) <= MAX_INT64


# --- pure parsers -------------------------------------------------------------------------------


def _parse_tree_head(obj: object, where: str) -> TreeHead:
    o = _obj(obj, where)
    note = _str(_field(o, "signedTreeHead", where), f"{where}.signedTreeHead")
    if not note:
        raise LogResponseError(f"{where}.signedTreeHead: expected a signed note, got ''")
    return TreeHead(
        tree_id=_tree_id(_field(o, "treeID", where), f"{where}.treeID"),
        note=note,
        size=_int(_field(o, "treeSize", where), f"{where}.treeSize"),
        root=_hex_hash(_field(o, "rootHash", where), f"{where}.rootHash"),
    )


def parse_log_info(obj: object, where: str = "log info") -> V1LogInfo:
    """Parse a ``GET /api/v1/log`` answer.

    ``treeID`` is required (a decimal string): the engine keeps state per tree, so a Rekor too
    old to name its tree (before sharding, 2022) cannot be monitored. ``inactiveShards`` may be
    absent or null. Raises LogResponseError.
    """
    where = f"{where}: $"
    o = _obj(obj, where)
    active = _parse_tree_head(o, where)
    shards = o.get("inactiveShards")
    inactive: tuple[TreeHead, ...] = ()
    if shards is not None:
        if not isinstance(shards, list):
            raise _fail(f"{where}.inactiveShards", "an array", shards)
        inactive = tuple(
            _parse_tree_head(s, f"{where}.inactiveShards[{i}]") for i, s in enumerate(shards)
        )
    ids = [active.tree_id, *(t.tree_id for t in inactive)]
    if len(set(ids)) != len(ids):
        raise LogResponseError(f"{where}: expected distinct tree IDs, got {ids}")
    # Global log indexes run on across the shards; they must stay storable too.
    total = active.size + sum(t.size for t in inactive)
    if total > MAX_INT64:
        raise LogResponseError(
            f"{where}: expected the trees' sizes to add up to at most 2^63 - 1, got {total}"
        )
    return V1LogInfo(active=active, inactive=inactive)


def parse_consistency_proof(obj: object, where: str = "consistency proof") -> list[bytes]:
    """Parse a ``GET /api/v1/log/proof`` answer and return only its hashes.

    The answer's ``rootHash`` is the server's latest root, not the root at lastSize: it is
    checked for shape and dropped. Verify the hashes against the roots of the two signed
    checkpoints you hold. Raises LogResponseError.
    """
    where = f"{where}: $"
    o = _obj(obj, where)
    _hex_hash(_field(o, "rootHash", where), f"{where}.rootHash")
    return list(_hex_hashes(_field(o, "hashes", where), f"{where}.hashes"))


def read_log_entry(uuid: str, obj: object, where: str) -> V1Entry:
    """One entry of a Rekor v1 ``LogEntry`` (``uuid`` and its object), every field's type and
    range checked: the one reading of a v1 entry, for the client and for ``inspect``.

    Whether the UUID names the body is ``check_uuid``'s to say. Raises LogResponseError.
    """
    if not _UUID.fullmatch(uuid):
        raise LogResponseError(
            f"{where}: expected an entry UUID of 64 or 80 hex digits, got {excerpt(uuid, 100)}"
        )
    o = _obj(obj, where)
    log_index = _int(_field(o, "logIndex", where), f"{where}.logIndex")
    where = f"{where} (logIndex {log_index})"
    body = _base64(_field(o, "body", where), f"{where}.body")
    integrated_time = _int(
        _field(o, "integratedTime", where), f"{where}.integratedTime", maximum=MAX_UNIX_TIME
    )
    log_id = _str(_field(o, "logID", where), f"{where}.logID")
    if not _HEX_HASH.fullmatch(log_id):
        raise _fail(f"{where}.logID", "64 hex digits", log_id)

    tree_index = proof_tree_size = None
    proof_root = checkpoint = None
    proof_hashes: tuple[bytes, ...] = ()
    set_: bytes | None = None
    verification = o.get("verification")
    if verification is not None:
        v = _obj(verification, f"{where}.verification")
        sw = f"{where}.verification"
        if v.get("signedEntryTimestamp") is not None:
            set_ = _base64(v["signedEntryTimestamp"], f"{sw}.signedEntryTimestamp")
        if v.get("inclusionProof") is not None:
            pw = f"{sw}.inclusionProof"
            p = _obj(v["inclusionProof"], pw)
            tree_index = _int(_field(p, "logIndex", pw), f"{pw}.logIndex")
            proof_tree_size = _int(_field(p, "treeSize", pw), f"{pw}.treeSize", minimum=1)
            if tree_index >= proof_tree_size:
                raise LogResponseError(
                    f"{pw}: expected logIndex < treeSize, got {tree_index} >= {proof_tree_size}"
                )
            if tree_index > log_index:
                raise LogResponseError(
                    f"{pw}: expected a shard index <= the global logIndex {log_index}, "
                    f"got {tree_index}"
                )
            proof_root = _hex_hash(_field(p, "rootHash", pw), f"{pw}.rootHash")
            proof_hashes = _hex_hashes(_field(p, "hashes", pw), f"{pw}.hashes")
            if p.get("checkpoint") is not None:
                checkpoint = _str(p["checkpoint"], f"{pw}.checkpoint")

    return V1Entry(
        uuid=uuid,
        log_index=log_index,
        body=body,
        integrated_time=integrated_time,
        log_id=log_id,
        tree_index=tree_index,
        proof_tree_size=proof_tree_size,
        proof_root=proof_root,
        proof_hashes=proof_hashes,
        checkpoint=checkpoint,
        set=set_,
    )


def check_uuid(entry: V1Entry, where: str = "log entry") -> None:
    """Raise EntryMismatch unless the entry's UUID ends in the leaf hash of its body."""
    computed = entry.leaf_hash
    if entry.uuid[-64:].lower() != computed.hex():
        raise EntryMismatch(
            f"{where} (logIndex {entry.log_index}): entry UUID {entry.uuid} does not end in the "
            f"leaf hash of its body {computed.hex()}",
            log_index=entry.log_index,
            uuid=entry.uuid,
            computed=computed,
        )


def _parse_entry(uuid: str, obj: object, where: str) -> V1Entry:
    entry = read_log_entry(uuid, obj, where)
    check_uuid(entry, where)
    return entry


def parse_entry_map(obj: object, where: str = "log entry") -> list[V1Entry]:
    """Parse one Rekor ``LogEntry``: an object mapping entry UUIDs to entries.

    Raises LogResponseError on any malformed field and EntryMismatch when a UUID does not
    match its body.
    """
    return _parse_entry_map(obj, f"{where}: $")


def _parse_entry_map(obj: object, where: str) -> list[V1Entry]:
    o = _obj(obj, where)
    return [_parse_entry(uuid, entry, f'{where}["{uuid[:16]}..."]') for uuid, entry in o.items()]


def parse_entries(obj: object, where: str = "entries") -> list[V1Entry]:
    """Parse an ``entries/retrieve`` answer: an array of ``LogEntry`` objects (see
    ``parse_entry_map``), flattened in order."""
    where = f"{where}: $"
    if not isinstance(obj, list):
        raise _fail(where, "an array of log entries", obj)
    out: list[V1Entry] = []
    for i, item in enumerate(obj):
        out.extend(_parse_entry_map(item, f"{where}[{i}]"))
    return out


def parse_uuid_list(
    obj: object, where: str = "index search", limit: int = MAX_SEARCH_RESULTS
) -> list[str]:
    """Parse a ``POST /api/v1/index/retrieve`` answer: an array of entry UUIDs, each 64 hex
    digits (the leaf hash) or 80 (a 16-hex-digit tree ID, then the leaf hash).

    Returns them lowercased, without duplicates (by leaf hash), in the log's order; more than
    ``limit`` raise LogResponseError, as does any malformed item.
    """
    where = f"{where}: $"
    if obj is None:  # Rekor answers null, not [], when nothing matches
        return []
    if not isinstance(obj, list):
        raise _fail(where, "an array of entry UUIDs", obj)
    if len(obj) > limit:
        raise LogResponseError(f"{where}: expected at most {limit} entry UUIDs, got {len(obj)}")
    out: dict[str, str] = {}
    for i, item in enumerate(obj):
        if not isinstance(item, str) or not _UUID.fullmatch(item):
            raise _fail(f"{where}[{i}]", "an entry UUID of 64 or 80 hex digits", item)
        out.setdefault(item[-64:].lower(), item.lower())
    return list(out.values())


# --- client -------------------------------------------------------------------------------------


class RekorV1Client(HttpLogClient):
    """Reads one Rekor v1 log over HTTP. Methods raise the ``monitor.logs.http`` errors,
    ``EntryMismatch``, or ValueError for arguments that are a caller's bug.

    ``base_url`` is the log's root, e.g. ``https://rekor.sigstore.dev``."""

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    async def log_info(self) -> V1LogInfo:
        """``GET /api/v1/log``: the active tree head and the inactive shards' heads."""
        url = self._url("/api/v1/log")
        obj = await get_json(self.session, url, self.policy, budget=self.budget)
        return parse_log_info(obj, f"GET {safe_url(url)}")

    async def consistency_proof(self, first_size: int, last_size: int, tree_id: str) -> list[bytes]:
        """``GET /api/v1/log/proof``: the hashes of the proof ``first_size -> last_size`` in the
        tree ``tree_id``.

        Only the hashes are returned: the answer's rootHash is the server's latest root, not
        the root at ``last_size``. ``first_size == 0`` or ``first_size == last_size`` need no
        proof and make no request (empty list). A 400 (a replica that does not know
        ``last_size`` yet) raises LogNotReady.
        """
        if first_size < 0 or last_size < first_size:
            raise ValueError(
                f"consistency proof: expected 0 <= first_size <= last_size, "
                f"got {first_size} -> {last_size}"
            )
        if not _TREE_ID.fullmatch(tree_id):
            raise ValueError(f"consistency proof: tree_id must be decimal digits, got {tree_id!r}")
        if first_size in (0, last_size):
            return []
        url = self._url(
            f"/api/v1/log/proof?firstSize={first_size}&lastSize={last_size}&treeID={tree_id}"
        )
        try:
            obj = await get_json(self.session, url, self.policy, budget=self.budget)
        except LogStatusError as e:
            if e.status == 400:
                raise LogNotReady(
                    f"{e} (the log does not serve this proof yet; retry later)"
                ) from e
            raise
        where = f"GET {safe_url(url)}"
        proof = parse_consistency_proof(obj, where)
        # A proof of the wrong length is garbage, not evidence: verified, it would fail and
        # read as a split view (found by the fault suite, tests/faults).
        expected = consistency_proof_size(first_size, last_size)
        if len(proof) != expected:
            raise LogResponseError(
                f"{where}: expected {expected} hashes for sizes {first_size} -> {last_size}, "
                f"got {len(proof)}"
            )
        return proof

    async def _retrieve(
        self, key: str, wanted: Sequence[_T]
    ) -> tuple[str, list[tuple[Sequence[_T], list[V1Entry]]]]:
        """``POST /api/v1/log/entries/retrieve`` with ``{key: batch}`` for each batch of 10 of
        ``wanted``, at most a few at once; (where, [(batch, its entries)])."""
        batches = [wanted[i : i + RETRIEVE_BATCH] for i in range(0, len(wanted), RETRIEVE_BATCH)]
        url = self._url("/api/v1/log/entries/retrieve")
        where = f"POST {safe_url(url)}"

        async def fetch(batch: Sequence[_T]) -> list[V1Entry]:
            body = {key: list(batch)}
            obj = await post_json(self.session, url, body, self.policy, budget=self.budget)
            return parse_entries(obj, where)

        results = await gather_bounded([partial(fetch, b) for b in batches], _RETRIEVE_CONCURRENCY)
        return where, list(zip(batches, results, strict=True))

    async def entries(self, log_indexes: Sequence[int]) -> dict[int, V1Entry]:
        """``POST /api/v1/log/entries/retrieve`` for global ``log_indexes``, 10 per request.

        Returns the entries found, keyed by logIndex; Rekor silently drops missing ones, so
        they are absent. An entry the log returns that was not asked for, or two different
        entries for one index, raise LogResponseError.
        """
        wanted = list(dict.fromkeys(log_indexes))
        for i in wanted:
            if isinstance(i, bool) or not isinstance(i, int) or i < 0:
                raise ValueError(f"entries: log indexes must be non-negative integers, got {i!r}")
        where, answers = await self._retrieve("logIndexes", wanted)
        found: dict[int, V1Entry] = {}
        for batch, got in answers:
            asked = set(batch)
            for entry in got:
                if entry.log_index not in asked:
                    raise LogResponseError(
                        f"{where}: expected entries for indexes {batch[0]}..{batch[-1]}, "
                        f"got an entry for index {entry.log_index}"
                    )
                seen = found.get(entry.log_index)
                if seen is not None and seen.uuid.lower() != entry.uuid.lower():
                    raise LogResponseError(
                        f"{where}: expected one entry for index {entry.log_index}, "
                        f"got two different ones ({seen.uuid}, {entry.uuid})"
                    )
                found[entry.log_index] = entry
        return found

    async def search_index(self, query: Mapping[str, object]) -> list[str]:
        """``POST /api/v1/index/retrieve`` with ``query`` (e.g. ``{"email": ...}``): the UUIDs
        of the entries the index lists for it (see ``parse_uuid_list``)."""
        url = self._url("/api/v1/index/retrieve")
        obj = await post_json(self.session, url, dict(query), self.policy, budget=self.budget)
        return parse_uuid_list(obj, f"POST {safe_url(url)}")

    async def entries_by_uuid(self, uuids: Sequence[str]) -> dict[str, V1Entry]:
        """``POST /api/v1/log/entries/retrieve`` by ``entryUUIDs``, 10 per request.

        Returns the entries found keyed by leaf hash (the UUID's last 64 hex digits, lowercase);
        missing ones are absent. An entry that was not asked for raises LogResponseError; one
        whose body does not hash to its UUID raises EntryMismatch.
        """
        wanted = list(dict.fromkeys(u.lower() for u in uuids))
        for u in wanted:
            if not _UUID.fullmatch(u):
                raise ValueError(f"entries_by_uuid: expected 64 or 80 hex digits, got {u!r}")
        where, answers = await self._retrieve("entryUUIDs", wanted)
        found: dict[str, V1Entry] = {}
        for batch, got in answers:
            asked = {u[-64:] for u in batch}
            for entry in got:
                leaf = entry.uuid[-64:].lower()
                if leaf not in asked:
                    raise LogResponseError(
                        f"{where}: expected entries {sorted(asked)[:3]}..., got entry {entry.uuid}"
                    )
                found[leaf] = entry
        return found

    async def entry(self, log_index: int) -> V1Entry | None:
        """``GET /api/v1/log/entries?logIndex=N``: the entry at global ``log_index``, or None
        when the log answers 404."""
        if isinstance(log_index, bool) or not isinstance(log_index, int) or log_index < 0:
            raise ValueError(f"entry: log index must be a non-negative integer, got {log_index!r}")
        url = self._url(f"/api/v1/log/entries?logIndex={log_index}")
        where = f"GET {safe_url(url)}"
        try:
            obj = await get_json(self.session, url, self.policy, budget=self.budget)
        except LogNotFound:
            return None
        got = parse_entry_map(obj, where)
        if len(got) != 1 or got[0].log_index != log_index:
            indexes = [e.log_index for e in got]
            raise LogResponseError(
                f"{where}: expected exactly the entry at index {log_index}, got indexes {indexes}"
            )
        return got[0]

    async def public_key(self, tree_id: str | None = None) -> bytes:
        """``GET /api/v1/log/publicKey[?treeID=]``: the log's public key as PEM bytes (checked
        to be PEM-armoured ASCII; parsing the key is the caller's job)."""
        path = "/api/v1/log/publicKey"
        if tree_id is not None:
            if not _TREE_ID.fullmatch(tree_id):
                raise ValueError(f"public key: tree_id must be decimal digits, got {tree_id!r}")
            path += f"?treeID={tree_id}"
        url = self._url(path)
        text = await self.get_text(
            url, encoding="ASCII", expected="a PEM public key", max_bytes=_PUBLIC_KEY_MAX_BYTES
        )
        if "-----BEGIN " not in text or "-----END " not in text:
            raise LogResponseError(
                f"GET {safe_url(url)}: expected a PEM public key, got {excerpt(text)}"
            )
        return text.encode("ascii")
