"""Identity monitoring on Rekor v1 through its search index.

Public Rekor v1 is too large to scan (billions of entries, 10 per request), so for the watched
identities the monitor asks the index instead, each poll, after the checkpoint is verified:

    for each term (email, subject, hash, public key) of the log's watch rules:
        POST /api/v1/index/retrieve --> every UUID the index lists for it
        minus those already dealt with (search_seen) --> new UUIDs (at most MAX_FETCH a round)
    the new UUIDs of all terms together, each once whichever terms listed it:
        POST /api/v1/log/entries/retrieve by entryUUIDs, 10 per request
        each entry: UUID = leaf hash of body (client), SET by the log key, inclusion proof
                    against its signed checkpoint, that checkpoint consistent with the verified
                    state of its tree (one proof per checkpoint size, cached for the round)
            fails --> bad_entry (alerted once; the entry is not fetched again), and a validly
                      signed checkpoint that does not fit the verified tree goes to the engine
                      as the view "entry-proof" (recorded; split_view with evidence)
            holds --> parse, match (scanner.examine_entry, as the scanner) --> matches, alerts
                      (unreadable_entry when the body or some signatures cannot be read)
        one transaction per batch: matches, alerts and "seen" marks together

The index is filled asynchronously and may lag or miss entries; there is no time filter and no
pagination, so each poll asks for every term's whole list and new arrivals, however late, are
simply UUIDs not seen before. An entry is alerted at most once whichever way it is found (the
alert's dedup key is the scanner's). Entries the log integrated before a term was first
searched (its baseline) are history: recorded as matches with source "backfill", not alerted;
an entry several terms list is history only if it came before each of their baselines.

Every request goes through the log's one RequestBudget (shared with polls, proofs and scans).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitor.config.settings import Config, LogConfig, LogType
from monitor.core.alerts import PRIMARY_VIEW, Alert, search_bad_entry_alert
from monitor.core.certs import spki_of
from monitor.core.decide import LogState
from monitor.core.entry_proof import (
    EntryProofError,
    consistency_sizes,
    integration_time,
    verify_entry,
)
from monitor.core.errors import ConfigError, NetworkError, ParseError, VerificationError
from monitor.core.instants import to_ms
from monitor.core.merkle import ProofError, verify_consistency
from monitor.core.note import Checkpoint, EcdsaNoteVerifier, verify_checkpoint
from monitor.core.watch.match import Matcher
from monitor.core.watch.rules import search_terms
from monitor.core.watch.terms import SearchTerm, TermKind
from monitor.logs.http import RequestBudget
from monitor.logs.rekor_v1.client import RETRIEVE_BATCH, EntryMismatch, V1Entry
from monitor.service.alert_log import raised
from monitor.service.engine import ENTRY_PROOF_VIEW, Head, LogMonitor, LogSpec
from monitor.service.scanner import (
    FoundMatch,
    examine_entry,
    match_alert,
    store_matches,
    unreadable_alert,
)
from monitor.service.sct_watch import SctWatch, match_promises
from monitor.service.wiring import RekorV1Source, trust_for_log
from monitor.store.database import AsyncStore, Store, parse_utc

log = logging.getLogger(__name__)

MAX_FETCH = 1000
"""Most new entries fetched in one round (100 requests); the rest wait for the next poll, so a
first search of a busy identity backfills over several polls instead of blocking one."""
BATCH = 4 * RETRIEVE_BATCH
"""Entries fetched, proven and committed together."""
MAX_LOOKUPS = 3
"""Most pending certificates looked up in the index a poll (one request each, after two that
locate the index), so a burst of certificates spreads over polls within the request budget."""


@dataclass
class SearchResult:
    """What one search round did."""

    terms: int = 0
    fetched: int = 0
    matches: int = 0
    alerts: list[tuple[int, Alert]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Outcome:
    """One fetched entry, dealt with: its tree, index in it, and what came of it."""

    leaf: bytes
    tree_id: str
    index: int
    seen: str
    found: list[FoundMatch] = field(default_factory=list)
    alert: Alert | None = None
    error: str | None = None


@dataclass
class _Found:
    """A new entry the index listed this round: its UUID, the terms that listed it (in order),
    and the earliest of their baselines (the entry is history only if it came before every
    one of them: a term that was already watching when it arrived makes it new)."""

    uuid: str
    terms: list[SearchTerm]
    baseline: int

    def also(self, term: SearchTerm, baseline: int) -> None:
        """Another term lists the entry."""
        if term not in self.terms:
            self.terms.append(term)
        self.baseline = min(self.baseline, baseline)


def _term_keys(found: Sequence[_Found]) -> str:
    """The distinct terms that listed `found`, for messages (the first few of them)."""
    keys = list(dict.fromkeys(t.key for f in found for t in f.terms))
    more = f" and {len(keys) - 3} more terms" if len(keys) > 3 else ""
    return ", ".join(keys[:3]) + more


def log_key(spec: LogSpec) -> EcdsaNoteVerifier:
    """The log's ECDSA key, which signs SETs; raises ConfigError for a log without one."""
    for verifier in spec.verifiers:
        if isinstance(verifier, EcdsaNoteVerifier):
            return verifier
    raise ConfigError(
        f"log {spec.name}: searching a rekor-v1 index needs the log's ECDSA P-256 key (it signs "
        "each entry's timestamp); the configured key is not one: remove the rule's search terms "
        "for this log or pin the log's ECDSA key with public_key"
    )


def searcher_for(
    config: Config,
    cfg: LogConfig,
    spec: LogSpec,
    log_id: int,
    source: object,
    store: AsyncStore,
    targets: Callable[[Alert], list[str]],
    clock: Callable[[], datetime],
    scts: SctWatch | None = None,
    *,
    unlogged: bool = False,
) -> Searcher | None:
    """The searcher of a configured log: a rekor-v1 log one of whose watch rules has search
    terms; None for other logs. `scts`: the monitored ct logs whose SCTs in matched
    certificates are kept as promises, as a scan keeps them. `unlogged`: a CT log is scanned,
    so pending `unlogged_certificate` checks of the log's rules are looked up in its index (a
    searcher then exists even for rules without search terms). Raises ConfigError (see
    `log_key`)."""
    if cfg.type is not LogType.REKOR_V1 or not isinstance(source, RekorV1Source):
        return None
    rules = config.rules_for(cfg)
    terms = search_terms(rules)
    windows = (
        {r.name: r.unlogged_after // timedelta(milliseconds=1) for r in rules if r.expect_rekor}
        if unlogged
        else {}
    )
    if not terms and not windows:
        return None
    matcher = Matcher(rules, trust_for_log(cfg))
    return Searcher(
        spec, log_id, source, matcher, terms, store, targets, clock, scts=scts, unlogged=windows
    )


def _tree_of_uuid(uuid: str) -> str | None:
    """The tree ID an 80-hex-digit UUID names (its first 16 hex digits), else None."""
    return str(int(uuid[:16], 16)) if len(uuid) == 80 else None


def _lookup_term(cert: bytes | None, evidence: Mapping[str, object]) -> SearchTerm | None:
    """The index term a pending certificate is looked up by: its public key (PEM of its
    SubjectPublicKeyInfo), else the first email SAN of its identity; None without either."""
    if cert is not None:
        try:
            spki = spki_of(cert)
        except ValueError:
            spki = None
        if spki is not None:
            body = base64.encodebytes(spki).decode("ascii")
            return SearchTerm(
                TermKind.PUBLIC_KEY, f"-----BEGIN PUBLIC KEY-----\n{body}-----END PUBLIC KEY-----"
            )
    identity = evidence.get("identity")
    sans = identity.get("sans") if isinstance(identity, dict) else None
    for san in sans if isinstance(sans, list) else []:
        if isinstance(san, str) and san.startswith("email:"):
            return SearchTerm(TermKind.EMAIL, san.removeprefix("email:").lower())
    return None


def _artifact_digest(body: bytes) -> str | None:
    """The "sha256:<hex>" of a hashedrekord body's artifact (the index's key), else None."""
    try:
        spec = json.loads(body)["spec"]["data"]["hash"]
        algorithm, value = spec["algorithm"], spec["value"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
    if algorithm != "sha256" or not isinstance(value, str) or len(value) != 64:
        return None
    if not all(c in "0123456789abcdef" for c in value.lower()):
        return None
    return f"sha256:{value.lower()}"


class Searcher:
    """Searches one Rekor v1 log's index for the watched identities' entries."""

    def __init__(
        self,
        spec: LogSpec,
        log_id: int,
        source: RekorV1Source,
        matcher: Matcher,
        terms: Sequence[SearchTerm],
        store: AsyncStore,
        targets: Callable[[Alert], list[str]],
        clock: Callable[[], datetime],
        *,
        max_fetch: int = MAX_FETCH,
        scts: SctWatch | None = None,
        unlogged: Mapping[str, int] | None = None,
    ) -> None:
        """Raises ConfigError when the log's key cannot check SETs. `unlogged`: the rules
        (name -> `unlogged_after` in ms) whose pending `unlogged_certificate` checks are looked
        up in this index (`_lookups`)."""
        self.scts = scts
        self.unlogged: dict[str, int] = dict(unlogged or {})
        self.spec = spec
        self.log_name = spec.name
        self.log_id = log_id
        self.source = source
        self.client = source.client
        self.matcher = matcher
        self.terms = tuple(terms)
        self.store = store
        self.targets = targets
        self.clock = clock
        self.budget: RequestBudget | None = source.client.budget
        """The log's request budget, shared with its polls; its figures go to `report status`."""
        self.max_fetch = max_fetch
        self.key = log_key(spec)
        self._proofs: dict[tuple[str, int, int], list[bytes]] = {}
        # The log's own endpoint is the primary: proofs for carried checkpoints come from it.
        self.engine = LogMonitor(spec, log_id, {PRIMARY_VIEW: source}, store, targets, clock)
        """Decides on checkpoints carried by entries (`_carried`), as a poll decides on heads."""

    async def search(self) -> SearchResult:
        """One round over every term; network and parse failures end a term's lookup (or the
        round, for network failures) and are reported, never mark an entry seen."""
        result = SearchResult()
        states = {s.tree_id: s for s in await self.store.state.log_states(self.log_id)}
        if not states:
            return result  # nothing verified yet to prove entries against
        baselines = await self.store.scan.search_baselines(
            self.log_id, [t.key for t in self.terms], self.clock()
        )
        self._proofs.clear()
        # Every term's new UUIDs are gathered before any is fetched, so entries share retrieve
        # requests (10 UUIDs each) whichever term found them; an entry two terms list is
        # fetched, proven and recorded once.
        found: dict[bytes, _Found] = {}
        fetch_left = self.max_fetch
        for term in self.terms:
            try:
                uuids = await self.client.search_index(term.request())
            except (NetworkError, ParseError) as e:
                message = f"search {term.key}: {type(e).__name__}: {e}"
                log.warning("%s: %s", self.log_name, message)
                result.errors.append(message)
                await self.store.scan.record_search(self.log_id, term.key, 0, message, self.clock())
                if isinstance(e, NetworkError):
                    break  # the log is unreachable or throttling: the next poll retries
                continue
            result.terms += 1
            await self.store.scan.record_search(
                self.log_id, term.key, len(uuids), None, self.clock()
            )
            baseline = int(parse_utc(baselines[term.key]).timestamp())
            leaves = [bytes.fromhex(u[-64:]) for u in uuids]
            seen = await self.store.scan.search_seen(self.log_id, leaves)
            new: dict[bytes, str] = {}
            for uuid, leaf in zip(uuids, leaves, strict=True):
                if leaf in found:
                    found[leaf].also(term, baseline)
                elif leaf not in seen:
                    new.setdefault(leaf, uuid)
            if len(new) > fetch_left:
                log.info(
                    "%s: %s lists %d new entries; fetching %d this round, the rest next poll",
                    self.log_name, term.key, len(new), fetch_left,
                )  # fmt: skip
                new = dict(list(new.items())[:fetch_left])
            fetch_left -= len(new)
            for leaf, uuid in new.items():
                found[leaf] = _Found(uuid, [term], baseline)
        pending = list(found.values())
        for i in range(0, len(pending), BATCH):
            batch = pending[i : i + BATCH]
            try:
                await self._batch(batch, states, result)
            except NetworkError as e:
                self._fetch_failed(batch, e, result)
                break  # the log is unreachable or throttling: the next poll retries
            except ParseError as e:
                # One unreadable answer must not hold back the other batches, every poll.
                self._fetch_failed(batch, e, result)
        if self.unlogged:
            await self._lookups(states, result)
        await self.store.scan.record_search_progress(
            self.log_id,
            terms=result.terms,
            fetched=result.fetched,
            requests_last_min=self.budget.recent() if self.budget else 0,
            requests_per_minute=round(self.budget.requests_per_minute) if self.budget else 0,
            now=self.clock(),
        )
        return result

    async def _lookups(self, states: dict[str, LogState], result: SearchResult) -> None:
        """Look pending `unlogged_certificate` checks up in the index (module docstring): at
        most MAX_LOOKUPS certificates a round, by their public key, after the index is shown
        to hold the newest verified entry (`_index_position`). Entries found are proven and
        matched as any search result (a trusted match with the certificate's id resolves the
        check as 'logged'); a lookup that completes and finds none is recorded as the index
        having been looked in, up to the verified tree."""
        now = self.clock()
        now_ms = to_ms(now)
        due = await self.store.run(
            lambda s: s.pending_unlogged_for_search(self.log_id, self.unlogged, now_ms)
        )
        if not due:
            return
        try:
            position = await self._index_position(states)
        except (NetworkError, ParseError, EntryProofError) as e:
            message = f"unlogged lookups: locating the index: {type(e).__name__}: {e}"
            log.warning("%s: %s", self.log_name, message)
            result.errors.append(message)
            return
        if position is None:
            log.info(
                "%s: the index does not hold the newest entry yet; lookups wait", self.log_name
            )
            return
        tree, size, covered_ms = position
        for check, cert in due[:MAX_LOOKUPS]:
            term = _lookup_term(cert, check.evidence)
            if term is None:
                continue
            try:
                uuids = await self.client.search_index(term.request())
            except (NetworkError, ParseError) as e:
                message = f"unlogged lookup {check.certificate_id}: {type(e).__name__}: {e}"
                log.warning("%s: %s", self.log_name, message)
                result.errors.append(message)
                if isinstance(e, NetworkError):
                    return
                continue
            leaves = list(dict.fromkeys(bytes.fromhex(u[-64:]) for u in uuids))
            by_leaf = {bytes.fromhex(u[-64:]): u for u in uuids}
            seen = await self.store.scan.search_seen(self.log_id, leaves)
            new = [_Found(by_leaf[leaf], [term], 0) for leaf in leaves if leaf not in seen]
            errors = len(result.errors)
            for i in range(0, len(new), BATCH):
                batch = new[i : i + BATCH]
                try:
                    await self._batch(batch, states, result)
                except (NetworkError, ParseError) as e:
                    self._fetch_failed(batch, e, result)
                    break
            if len(result.errors) != errors:
                continue
            if new and len(await self.store.scan.search_seen(self.log_id, leaves)) < len(leaves):
                continue  # an entry not provable yet: looked again next poll

            def record(store: Store, check_id: int = check.id) -> bool:
                return store.record_unlogged_search(
                    check_id, self.log_id, tree, size, covered_ms, now
                )

            await self.store.run(record)

    async def _index_position(self, states: dict[str, LogState]) -> tuple[str, int, int] | None:
        """(tree, verified size, when the log last served that tree, ms) when the index lists
        the newest entry of the active tree's verified checkpoint, proven into it; None while
        it does not (the index lags). Two requests: the entry, and an index search by its
        artifact's digest. Raises NetworkError, ParseError, EntryProofError."""
        live = [s for s in states.values() if s.verified_size > 0]
        if not live:
            return None
        active = max(live, key=lambda s: self.source.first_index(s.tree_id))
        entry = await self.client.entry(
            self.source.first_index(active.tree_id) + active.verified_size - 1
        )
        if entry is None:
            return None
        tree = None
        if entry.tree_index is not None:
            tree = self.source.tree_for(entry.log_index, entry.tree_index)
        if await self._prove(entry, tree, _tree_of_uuid(entry.uuid), states) != active.tree_id:
            return None
        digest = _artifact_digest(entry.body)
        if digest is None:
            return None
        listed = await self.client.search_index({"hash": digest})
        if entry.leaf_hash.hex() not in {u[-64:].lower() for u in listed}:
            return None

        def served(store: Store) -> datetime | None:
            with store.transaction() as conn:
                return store.first_seen_verified(conn, self.log_id, active, PRIMARY_VIEW)

        at = await self.store.run(served)
        if at is None:
            return None
        return active.tree_id, active.verified_size, to_ms(at)

    async def _fetch(self, uuids: Sequence[str]) -> list[V1Entry | tuple[str, EntryMismatch]]:
        """The entries of `uuids`; when a body does not match its UUID, each is fetched alone
        so the mismatch is pinned on the right entry."""
        try:
            return list((await self.client.entries_by_uuid(uuids)).values())
        except EntryMismatch:
            if len(uuids) == 1:
                raise
        out: list[V1Entry | tuple[str, EntryMismatch]] = []
        for uuid in uuids:
            try:
                out.extend((await self.client.entries_by_uuid([uuid])).values())
            except EntryMismatch as e:
                out.append((uuid, e))
        return out

    def _fetch_failed(
        self, batch: Sequence[_Found], error: Exception, result: SearchResult
    ) -> None:
        message = f"search {_term_keys(batch)}: fetching entries: {type(error).__name__}: {error}"
        log.warning("%s: %s", self.log_name, message)
        result.errors.append(message)

    async def _batch(
        self, batch: Sequence[_Found], states: dict[str, LogState], result: SearchResult
    ) -> None:
        by_leaf = {f.uuid[-64:].lower(): f for f in batch}
        got = await self._fetch([f.uuid for f in batch])
        result.fetched += sum(1 for e in got if isinstance(e, V1Entry))
        outcomes: list[_Outcome] = []
        returned: set[str] = set()
        for item in got:
            uuid = item[0] if isinstance(item, tuple) else item.uuid
            which = by_leaf.get(uuid[-64:].lower())
            if which is None:  # pragma: no cover - the client refuses entries not asked for
                continue
            returned.add(uuid[-64:].lower())
            if isinstance(item, tuple):
                _, mismatch = item
                tree = _tree_of_uuid(uuid) or ""
                outcomes.append(self._bad(uuid, tree, mismatch.log_index, mismatch, which.terms[0]))
                continue
            outcome = await self._examine(item, states, which.baseline, which.terms[0], result)
            if outcome is not None:
                outcomes.append(outcome)
        missing = [f for leaf, f in by_leaf.items() if leaf not in returned]
        if missing:
            result.errors.append(
                f"search {_term_keys(missing)}: the log returned {len(batch) - len(missing)} of "
                f"{len(batch)} entries the index listed; the others are retried next poll"
            )
        if outcomes:
            await self._commit(outcomes, result)

    async def _examine(
        self,
        entry: V1Entry,
        states: dict[str, LogState],
        baseline: int,
        term: SearchTerm,
        result: SearchResult,
    ) -> _Outcome | None:
        """Prove and match one entry; None when it cannot be proven yet (its tree has no
        verified checkpoint), so it is fetched again next poll. An entry that does not prove is
        a bad_entry, and its signed checkpoint, when that does not fit the verified tree, goes
        to the engine (`_carried`)."""
        leaf = entry.leaf_hash
        tree = None
        if entry.tree_index is not None:
            tree = self.source.tree_for(entry.log_index, entry.tree_index)
        named = _tree_of_uuid(entry.uuid)
        index = entry.tree_index if entry.tree_index is not None else entry.log_index
        try:
            proven = await self._prove(entry, tree, named, states)
        except EntryProofError as e:
            if tree is not None and tree in states:
                await self._carried(tree, entry.checkpoint, states[tree], result)
            return self._bad(entry.uuid, tree or named or "", index, e, term)
        if proven is None:
            return None
        tree = proven
        at = integration_time(entry.integrated_time)
        # An entry without a time cannot be placed before the baseline: it is new, and alerts.
        past = at is not None and entry.integrated_time < baseline
        matches, unreadable = examine_entry(self.matcher, entry.body, at=at)
        found = []
        for match in matches:
            alert = (
                None if past else match_alert(self.log_name, tree, index, match, entry.log_index)
            )
            channels = self.targets(alert) if alert is not None else []
            found.append(
                FoundMatch(
                    index, entry.log_index, match, alert, channels, "backfill" if past else "search"
                )
            )
        if unreadable is None:
            return _Outcome(leaf, tree, index, "verified", found=found)
        # History (before the term's baseline) is recorded, not alerted, as for matches.
        problem = (
            None
            if past
            else unreadable_alert(self.log_name, tree, index, entry.log_index, unreadable)
        )
        seen = "unparseable" if unreadable.error is not None else "verified"
        return _Outcome(leaf, tree, index, seen, found=found, alert=problem, error=unreadable.text)

    async def _prove(
        self, entry: V1Entry, tree: str | None, named: str | None, states: dict[str, LogState]
    ) -> str | None:
        """Prove `entry` (in `tree`; its UUID names `named`) into the verified tree: UUID,
        SET, inclusion proof, its checkpoint consistent with the verified one. Returns its tree,
        None when it cannot be proven yet (its tree has no verified checkpoint). Raises
        EntryProofError."""
        if named is not None and tree is not None and named != tree:
            raise EntryProofError(
                f"entry {entry.log_index}: its UUID names tree {named}, but its indexes "
                f"place it in tree {tree}"
            )
        if tree is None and entry.tree_index is not None:
            return None  # a shard the last poll did not list: wait for it
        state = states.get(tree) if tree is not None else None
        if tree is not None and state is None:
            return None
        origin = self.spec.expected_origin(tree) if tree is not None else None
        cp = verify_entry(entry.evidence, self.key, self.spec.verifiers, origin)
        if tree is None or state is None:  # pragma: no cover - verify_entry needs a proof
            return None
        await self._prove_consistent(tree, cp, state)
        return tree

    async def _carried(
        self, tree: str, note: str | None, state: LogState, result: SearchResult
    ) -> None:
        """The log's own signed checkpoint served with an entry, when it does not fit the
        verified tree, is decided on by the consistency engine as the view `entry-proof`: it is
        recorded, and a fork it proves is a split_view with evidence, not only a bad_entry."""
        if note is None:
            return
        try:
            cp = verify_checkpoint(note, self.spec.verifiers, self.spec.expected_origin(tree))
        except (VerificationError, ParseError):
            return  # not the log's statement: the entry's bad_entry says why
        try:
            await self._prove_consistent(tree, cp.checkpoint, state)
        except EntryProofError:
            log.warning(
                "%s: the checkpoint served with an entry (size %d) does not fit the verified "
                "tree %s; deciding on it as the view %s",
                self.log_name, cp.checkpoint.size, tree, ENTRY_PROOF_VIEW,
            )  # fmt: skip
            decided = await self.engine.observe_carried(
                ENTRY_PROOF_VIEW, Head(tree_id=tree, note=note)
            )
            result.alerts.extend(decided.alerts)
            result.errors.extend(decided.errors)

    async def _prove_consistent(self, tree: str, cp: Checkpoint, state: LogState) -> None:
        """The entry's checkpoint and the verified one must be one growing tree."""
        sizes = consistency_sizes(cp.size, state.verified_size)
        if sizes is None:
            if cp.root != state.verified_root:
                raise EntryProofError(
                    f"tree {tree}: the entry's checkpoint has root {cp.root.hex()} at size "
                    f"{cp.size}, the verified checkpoint {state.verified_root.hex()}"
                )
            return
        small, large = sizes
        if small == cp.size:
            roots = (cp.root, state.verified_root)
        else:
            roots = (state.verified_root, cp.root)
        key = (tree, small, large)
        if key not in self._proofs:
            self._proofs[key] = await self.source.consistency_proof(tree, small, large)
        try:
            verify_consistency(small, large, roots[0], roots[1], self._proofs[key])
        except ProofError as e:
            raise EntryProofError(
                f"tree {tree}: the entry's checkpoint (size {cp.size}) is not consistent with "
                f"the verified one (size {state.verified_size}): {e}"
            ) from e

    def _bad(
        self, uuid: str, tree: str, index: int, error: Exception, term: SearchTerm
    ) -> _Outcome:
        leaf_hex = uuid[-64:].lower()
        alert = search_bad_entry_alert(
            self.log_name, uuid, tree, log_index=index, found_by=term.key, error=str(error)
        )
        return _Outcome(bytes.fromhex(leaf_hex), tree, index, "bad_entry", alert=alert)

    async def _commit(self, outcomes: Sequence[_Outcome], result: SearchResult) -> None:
        now = self.clock()
        bad_targets = [self.targets(o.alert) if o.alert else [] for o in outcomes]
        found = ((f.log_index, f.match) for o in outcomes for f in o.found)
        promises = match_promises(self.scts, self.matcher.trust, self.log_name, found)

        def write(store: Store) -> list[tuple[int, Alert]]:
            created: list[tuple[int, Alert]] = []
            with store.transaction() as conn:
                SctWatch.record(store, conn, promises, now)
                for o, channels in zip(outcomes, bad_targets, strict=True):
                    if o.alert is not None:
                        alert_id = store.add_alert(conn, o.alert, self.log_id, channels, now)
                        if alert_id is not None:
                            created.append((alert_id, o.alert))
                    if o.error is not None:
                        store.add_scan_error(conn, self.log_id, o.tree_id, o.index, o.error, now)
                    created += store_matches(store, conn, self.log_id, o.tree_id, o.found, now)
                    store.mark_seen(conn, self.log_id, o.leaf, o.tree_id, o.index, o.seen, now)
            return created

        created = await self.store.run(write)
        result.matches += sum(len(o.found) for o in outcomes)
        raised(created, result.alerts)
