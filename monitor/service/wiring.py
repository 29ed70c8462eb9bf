"""Wiring between the configuration, the log clients and the consistency engine.

`log_spec` resolves a `[[log]]` table into what the engine verifies with (keys, expected
origins); `checkpoint_source` adapts a view's URL to the engine's `CheckpointSource`;
`trust_for_log` picks the Fulcio CAs a log's watch rules check certificates against.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Sequence
from datetime import timedelta

import aiohttp

from monitor.config.settings import Config, LogConfig, LogType
from monitor.config.trust_roots import find_trusted_ct_log, find_trusted_log, fulcio_trust
from monitor.core.bundle import BundlePart
from monitor.core.certs import parse_certificate, parse_tbs_certificate
from monitor.core.chain import CertificateTrust
from monitor.core.ct import (
    CtEntry,
    CtFormatError,
    EntryType,
    ct_leaf_hash,
    entry_precertificate,
    parse_merkle_tree_leaf,
    sth_note,
)
from monitor.core.errors import ConfigError, ParseError
from monitor.core.keys import rekor_v1_key_name, tiles_origin, verifier_from_der
from monitor.core.merkle import CompactRange, ProofError, frontier_from_inclusion_proof
from monitor.core.note import NoteVerifier, Rfc6962NoteVerifier
from monitor.core.watch.match import Match, Matcher
from monitor.logs.ct.client import CtClient
from monitor.logs.ct.static import StaticCtClient
from monitor.logs.http import HttpPolicy, LogResponseError, RequestBudget, gather_bounded
from monitor.logs.rekor_v1.client import RekorV1Client
from monitor.logs.tiles.client import TILE_WIDTH, TilesClient, parse_entry_bundle, tile_width
from monitor.service.engine import Head, LogSpec
from monitor.service.scanner import frontier_nodes

logger = logging.getLogger(__name__)

TILES_TREE = "tiles"
"""The tree id under which a tiled log's single tree is kept (it has no shards)."""


def trust_for_log(log: LogConfig) -> CertificateTrust | None:
    """The Fulcio CAs of a configured log: its `fulcio_roots` bundle, else its trust root's
    authorities, else None (a pinned `public_key` and no bundle: every certificate is untrusted
    unless a rule has `any_issuer`). Raises `TrustError` (or `KeyLoadError` for an unreadable
    trust root)."""
    if log.fulcio_roots_pem is not None:
        where = str(log.fulcio_roots_file) if log.fulcio_roots_file else "fulcio_roots"
        return CertificateTrust.from_pem_bundle(log.fulcio_roots_pem, source=where)
    if log.trust_root is not None:
        return fulcio_trust(log.trust_root.value)
    return None


def log_spec(config: Config, log: LogConfig) -> LogSpec:
    """Resolve the keys and expected origins of one log.

    Rekor v1 checkpoints are signed under the key name "<host>" and carry the origin
    "<host> - <treeID>"; `origin` in the config replaces "<host>" (for private deployments whose
    key name differs from their URL). A tiled log has one fixed origin: the configured one, or
    the trusted root's, or the URL without its scheme.
    """
    expected: Callable[[str], str | None]
    verifier: NoteVerifier
    if log.type.is_ct:
        ct_key = ct_verifier(log)
        verifier = ct_key
        expected = lambda _tree_id: ct_key.name  # noqa: E731
    elif log.trust_root is not None:
        trusted = find_trusted_log(log.trust_root.value, log.url)
        verifier = trusted.verifier
        if log.type is LogType.REKOR_V1:
            prefix = log.origin or trusted.key_name
            expected = lambda tree_id: f"{prefix} - {tree_id}"  # noqa: E731
        else:
            fixed = log.origin or trusted.expected_origin()
            expected = lambda _tree_id: fixed  # noqa: E731
    else:
        der = log_key_der(log)
        if log.type is LogType.REKOR_V1:
            name = log.origin or rekor_v1_key_name(log.url)
            verifier = verifier_from_der(name, der)
            expected = lambda tree_id: f"{name} - {tree_id}"  # noqa: E731
        else:
            origin = log.origin or tiles_origin(log.url)
            verifier = verifier_from_der(origin, der)
            expected = lambda _tree_id: origin  # noqa: E731
    return LogSpec(
        name=log.name,
        verifiers=(verifier,),
        expected_origin=expected,
        max_stale=log.max_stale,
        error_grace=config.monitor.error_grace,
        poll_deadline=poll_deadline(config, log),
        valid_until=log.valid_until,
    )


POLL_DEADLINE_REQUESTS = 4
"""A poll may last this many request timeouts (or the log's interval, if longer)."""


def log_key_der(log: LogConfig) -> bytes:
    """The DER SubjectPublicKeyInfo of a log's key, however it was configured: the pinned
    `public_key`, else the key its `trust_root` lists for its URL (`ctlogs` for a `ct` or
    `static-ct` log, `tlogs` for the others). Raises ConfigError (KeyLoadError) when the trust
    root lists no such log."""
    der = log.public_key_der
    if der is not None:
        return der
    if log.trust_root is None:
        raise ConfigError(f"log {log.name}: neither trust_root nor public_key is set")
    if log.type.is_ct:
        return find_trusted_ct_log(log.trust_root.value, log.url).key
    return find_trusted_log(log.trust_root.value, log.url).key


def ct_verifier(log: LogConfig) -> Rfc6962NoteVerifier:
    """The STH key of a `type = "ct"` or `"static-ct"` log (`log_key_der`) under the key name
    (and origin) `origin`, else the URL without its scheme, as for a tiled log. Raises
    ConfigError (NoteKeyError) for a key that is not ECDSA P-256, KeyLoadError for a trust root
    that lists no CT log at the URL."""
    return Rfc6962NoteVerifier.from_der(log.origin or tiles_origin(log.url), log_key_der(log))


def poll_deadline(config: Config, log: LogConfig) -> timedelta:
    """How long one poll of a log's views may take: the larger of its interval and
    `POLL_DEADLINE_REQUESTS` request timeouts (room for a retry or two of a slow answer)."""
    return max(log.interval, POLL_DEADLINE_REQUESTS * config.monitor.request_timeout)


def resolve_logs(config: Config) -> dict[str, LogSpec]:
    """Every log's keys and origins resolved; raises ConfigError naming the log that fails."""
    specs: dict[str, LogSpec] = {}
    for log in config.logs:
        try:
            specs[log.name] = log_spec(config, log)
        except ConfigError as e:
            raise ConfigError(f"{config.path.name}: log {log.name!r}: {e}") from e
    return specs


class RekorV1Source:
    """A Rekor v1 REST endpoint as the engine and scanner see it: the active tree and every
    frozen shard, entries addressed by tree and index within it."""

    def __init__(self, client: RekorV1Client) -> None:
        self.client = client
        self._offsets: dict[str, int] = {}

    async def heads(self) -> Sequence[Head]:
        """The active tree's checkpoint, then each inactive shard's final one."""
        info = await self.client.log_info()
        # Rekor numbers entries globally: each shard starts where the ones before it ended
        # (inactiveShards lists them oldest first).
        offset = 0
        for shard in info.inactive:
            self._offsets[shard.tree_id] = offset
            offset += shard.size
        self._offsets[info.active.tree_id] = offset
        heads = [Head(tree_id=info.active.tree_id, note=info.active.note)]
        heads.extend(Head(tree_id=t.tree_id, note=t.note, frozen=True) for t in info.inactive)
        return heads

    async def consistency_proof(self, tree_id: str, size1: int, size2: int) -> list[bytes]:
        """From the proof endpoint (its rootHash is ignored: roots come from signed notes)."""
        return await self.client.consistency_proof(size1, size2, tree_id)

    def first_index(self, tree_id: str) -> int:
        """The global log index of the shard's first entry (where the shards before it end);
        raises LogResponseError for a shard the last `heads()` did not list."""
        try:
            return self._offsets[tree_id]
        except KeyError:
            raise LogResponseError(
                f"tree {tree_id}: not listed by the log (active or inactive), so its entries' "
                "global indexes are unknown"
            ) from None

    def tree_for(self, log_index: int, tree_index: int) -> str | None:
        """The tree whose entry `tree_index` has the global index `log_index`, among those the
        last `heads()` listed; None when no tree starts at `log_index - tree_index`."""
        offset = log_index - tree_index
        return next((t for t, o in self._offsets.items() if o == offset), None)

    async def entries(self, tree_id: str, start: int, end: int, tree_size: int) -> list[bytes]:
        """Entries [start, end) of a shard, fetched by global index (10 per request)."""
        offset = self.first_index(tree_id)
        got = await self.client.entries(range(offset + start, offset + end))
        missing = [i - offset for i in range(offset + start, offset + end) if i not in got]
        if missing:
            raise LogResponseError(
                f"tree {tree_id}: the log did not return entries {missing[:5]}"
                f"{' ...' if len(missing) > 5 else ''} of {start}-{end - 1}"
            )
        return [got[offset + i].body for i in range(start, end)]

    async def frontier(self, tree_id: str, size: int, tree_size: int) -> list[bytes]:
        """The compact range at `size`, from the inclusion proof of entry `size - 1`."""
        offset = self.first_index(tree_id)
        entry = await self.client.entry(offset + size - 1)
        if entry is None or entry.proof_tree_size is None or entry.tree_index != size - 1:
            raise LogResponseError(
                f"tree {tree_id}: entry {size - 1} came without an inclusion proof at its index"
            )
        left = frontier_from_inclusion_proof(size - 1, entry.proof_tree_size, entry.proof_hashes)
        cr = CompactRange.from_hashes(size - 1, left)
        cr.append(entry.leaf_hash)
        return list(cr.hashes)


class TilesSource:
    """A tlog-tiles endpoint: one tree; proofs are computed from its hash tiles and entries read
    from its entry bundles."""

    def __init__(self, client: TilesClient) -> None:
        self.client = client

    async def heads(self) -> Sequence[Head]:
        """The log's one checkpoint."""
        return [Head(tree_id=TILES_TREE, note=await self.client.checkpoint())]

    async def consistency_proof(self, tree_id: str, size1: int, size2: int) -> list[bytes]:
        """Computed from the tiles of the tree at `size2`."""
        return await self.client.consistency_proof(size1, size2)

    def first_index(self, tree_id: str) -> int:
        """A tiled log is one tree: its entries' indexes are the log's."""
        return 0

    async def entries(self, tree_id: str, start: int, end: int, tree_size: int) -> list[bytes]:
        """Entries [start, end) from the bundles of a tree of `tree_size` entries (full bundles,
        and the partial one at the tree's right edge), fetched concurrently: `bundles`, each
        split (every entry checked) and trimmed to its part."""
        out: list[bytes] = []
        for pieces, part in await self.bundles(tree_id, start, end, tree_size):
            bodies = parse_entry_bundle(b"".join(pieces), part.entries, part.where)
            out.extend(bodies[part.skip : part.skip + part.take])
        return out

    async def bundles(
        self, tree_id: str, start: int, end: int, tree_size: int
    ) -> list[tuple[list[bytes], BundlePart]]:
        """`entries` unsplit: the bundles holding entries [start, end), each as the pieces it
        arrived in and with the part of it that falls in the range (for a backfill worker to
        split and check)."""
        first, last = start // TILE_WIDTH, (end - 1) // TILE_WIDTH
        jobs = [
            functools.partial(self.client.entry_bundle_pieces, n, tile_width(0, n, tree_size))
            for n in range(first, last + 1)
        ]
        fetched = await gather_bounded(jobs, self.client.concurrency)
        out: list[tuple[list[bytes], BundlePart]] = []
        for n, (pieces, part) in zip(range(first, last + 1), fetched, strict=True):
            lo = max(start, n * TILE_WIDTH) - n * TILE_WIDTH
            hi = min(end, n * TILE_WIDTH + part.take) - n * TILE_WIDTH
            out.append((pieces, dataclasses.replace(part, skip=lo, take=hi - lo)))
        return out

    async def frontier(self, tree_id: str, size: int, tree_size: int) -> list[bytes]:
        """The compact range at `size`, read from the hash tiles of the tree of `tree_size`."""
        nodes = frontier_nodes(size)
        node = await self.client.node_fn(nodes, tree_size)
        return [node(level, index) for level, index in nodes]


class CtSource:
    """An RFC 6962 CT log: one tree; each signed tree head is served to the engine as the
    checkpoint note carrying it (`monitor.core.ct.sth_note`), so it is verified, compared and
    kept as evidence like any checkpoint. Entries are MerkleTreeLeaf bytes."""

    def __init__(self, client: CtClient, key: Rfc6962NoteVerifier) -> None:
        self.client = client
        self.key = key

    async def heads(self) -> Sequence[Head]:
        """The log's current STH, as a note under the pinned key's name and hint (a signature
        by another key then fails to verify: bad_signature, never an unknown signer)."""
        sth = await self.client.get_sth()
        try:
            note = sth_note(self.key.name, sth, self.key.name, self.key.key_hint)
        except CtFormatError as e:
            raise LogResponseError(f"{self.client!r}: get-sth: {e}") from e
        return [Head(tree_id=TILES_TREE, note=note.to_text())]

    async def consistency_proof(self, tree_id: str, size1: int, size2: int) -> list[bytes]:
        """From get-sth-consistency."""
        return await self.client.consistency_proof(size1, size2)

    def first_index(self, tree_id: str) -> int:
        """A CT log is one tree: its entries' indexes are the log's."""
        return 0

    async def entries(self, tree_id: str, start: int, end: int, tree_size: int) -> list[bytes]:
        """The MerkleTreeLeaf bytes of entries [start, end) (their leaf hashes are the tree's)."""
        return await self.client.entries(start, end)

    async def frontier(self, tree_id: str, size: int, tree_size: int) -> list[bytes]:
        """The compact range at `size`, from the audit path of entry `size - 1` in the tree of
        `tree_size` (the scanner proves the result against the verified root)."""
        got = await self.client.entry_and_proof(size - 1, tree_size)
        try:
            left = frontier_from_inclusion_proof(size - 1, tree_size, got.audit_path)
        except ProofError as e:
            raise LogResponseError(f"{self.client!r}: get-entry-and-proof: {e}") from e
        cr = CompactRange.from_hashes(size - 1, left)
        cr.append(ct_leaf_hash(got.leaf_input))
        return list(cr.hashes)


class StaticCtSource(TilesSource):
    """A static-ct-api log: a tiled log (checkpoint, hash tiles, proofs: `TilesSource`) whose
    checkpoint carries an RFC 6962 note signature and whose entries are data tiles' TileLeaf
    entries, served to the scanner as their MerkleTreeLeaf bytes (whose leaf hashes are the
    tree's) carrying each precert_entry's precertificate (`CtEntry`). Issuers are not fetched:
    the monitor's own trust roots judge a precertificate."""

    client: StaticCtClient

    def __init__(self, client: StaticCtClient) -> None:
        super().__init__(client)

    async def entries(self, tree_id: str, start: int, end: int, tree_size: int) -> list[bytes]:
        """The MerkleTreeLeaf bytes of entries [start, end), from the data tiles of a tree of
        `tree_size` entries (full tiles, and the partial one at its right edge)."""
        first, last = start // TILE_WIDTH, (end - 1) // TILE_WIDTH
        jobs = [
            functools.partial(self.client.data_tile, n, tile_width(0, n, tree_size))
            for n in range(first, last + 1)
        ]
        tiles = await gather_bounded(jobs, self.client.concurrency)
        leaves: list[bytes] = [
            CtEntry(leaf.merkle_tree_leaf, pre_certificate=leaf.pre_certificate)
            for tile in tiles
            for leaf in tile
        ]
        skip = start - first * TILE_WIDTH
        return leaves[skip : skip + end - start]


def read_ct_leaf(matcher: Matcher, body: bytes) -> tuple[list[Match], str | None]:
    """Read one CT entry (a MerkleTreeLeaf) and match its certificate against the watch rules:
    the matches, and why the entry could not be read (None: it could).

    An x509_entry's certificate and a precert_entry's TBSCertificate are read as
    `monitor.core.certs` reads Rekor's certificates. A precert_entry is trusted only by the
    precertificate the log served with it (`body` a `CtEntry`; see
    `CertificateTrust.is_trusted_precert`). Never raises: an entry that cannot be read is a
    finding about that entry, not a reason to stop scanning the log.
    """
    try:
        leaf = parse_merkle_tree_leaf(body)
        if leaf.entry_type is EntryType.X509:
            cert = parse_certificate(leaf.certificate)
        else:
            cert = parse_tbs_certificate(leaf.certificate)
    except ParseError as e:
        return [], str(e)
    kind = "x509_entry" if leaf.entry_type is EntryType.X509 else "precert_entry"
    try:
        matches = matcher.match_certificate(
            cert,
            kind=kind,
            timestamp=leaf.timestamp,
            issuer_key_hash=leaf.issuer_key_hash,
            precertificate=entry_precertificate(body) if kind == "precert_entry" else None,
        )
    except Exception as e:
        # As in `examine_entry`: hostile content that still breaks matching is reported like
        # an unreadable entry rather than stopping the scan.
        logger.warning("matching a CT entry failed", exc_info=True)
        return [], f"matching failed: {type(e).__name__}: {str(e)[:200]}"
    return matches, None


def http_policy(config: Config) -> HttpPolicy:
    """The HTTP limits every log client uses."""
    return HttpPolicy(
        timeout=config.monitor.request_timeout.total_seconds(),
        max_body_bytes=config.monitor.max_response_bytes,
        user_agent=config.monitor.user_agent,
    )


def checkpoint_source(
    log: LogConfig,
    url: str,
    session: aiohttp.ClientSession,
    policy: HttpPolicy,
    budget: RequestBudget | None,
) -> RekorV1Source | TilesSource | CtSource:
    """The engine's view of the endpoint at `url` (the log's own URL or one of its views)."""
    if log.type is LogType.CT:
        return CtSource(CtClient(session, url, policy, budget), ct_verifier(log))
    if log.type is LogType.STATIC_CT:
        return StaticCtSource(StaticCtClient(session, url, policy, budget))
    if log.type is LogType.REKOR_V1:
        return RekorV1Source(RekorV1Client(session, url, policy, budget))
    return TilesSource(TilesClient(session, url, policy, budget))
