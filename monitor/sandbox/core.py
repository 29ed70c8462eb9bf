"""The sandbox's state and behaviour, independent of HTTP: logs, keys, misbehaviours.

:class:`SandboxCore` owns the two logs (a sharded Rekor v1 log and a C2SP tiled log), their
signing keys, the local CA, the misbehaviour table and the request counters, and renders
every API response as a :class:`Reply`. ``monitor.sandbox.server`` maps HTTP requests onto it.

Threading: appends run in a worker thread (bulk appends take seconds); every read or write
of log state holds ``self.lock``, and appends are serialized by ``self._append_lock``.

State directory layout::

    sandbox.json         names: v1 key name, tiles origin (fixed at creation)
    rekor.key            v1 log key, ECDSA P-256 PKCS#8 PEM (0600)
    rekor.pub.pem        its public key (also GET /api/v1/log/publicKey)
    tiles.key            tiles log key, Ed25519 PKCS#8 PEM (0600)
    tiles.vkey           its signed-note verifier key ("<name>+<hint>+<base64>")
    tiles.pub.pem        its public key, PEM (what a [[log]]'s public_key takes)
    ca.pem, ca.key       the local Fulcio-like root (ca.key 0600)
    v1/shards.json       tree IDs in order (the last one active) with frozen checkpoints
    v1/<treeID>.leaves   each v1 shard's entries (see storage.py for the record format)
    tiles/entries.leaves the tiled log's entries
    ct.key, ct.pub.pem   the RFC 6962 CT log's key, ECDSA P-256 (ct.key 0600), and its public key
    ct/entries.leaves    the CT log's entries (MerkleTreeLeaf bodies; see ctlog.py)
    static-ct/entries.leaves  the static-ct-api log's entries (MerkleTreeLeaf bodies, signed
                         with the CT key under its own origin; see staticct.py)
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO, Final, TypeVar

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from monitor.core.merkle import TreeRangeError, leaf_hash
from monitor.core.sct import Sct
from monitor.sandbox import ctlog, notes, staticct
from monitor.sandbox.bodies import BodyFactory, BodyKind
from monitor.sandbox.ca import Identity, IdentityError, LocalCA, SigningIdentity
from monitor.sandbox.index import IndexQueryError, SearchIndex
from monitor.sandbox.storage import encode_bundle, write_json_atomic, write_private
from monitor.sandbox.tilepath import (
    TILE_HEIGHT,
    TILE_WIDTH,
    TilePathError,
    parse_tile_path,
    tile_available,
)
from monitor.sandbox.trees import ForkTree, LeafLog, TreeSource

log = logging.getLogger(__name__)

DEFAULT_V1_NAME: Final = "sandbox.rekor.local"
DEFAULT_TILES_ORIGIN: Final = "sandbox.tiles.local"
#: Like Rekor: POST /api/v1/log/entries/retrieve takes at most this many logIndexes.
MAX_RETRIEVE: Final = 10
MAX_APPEND: Final = 10_000_000


class LogName(StrEnum):
    """The logs a sandbox serves."""

    V1 = "v1"
    TILES = "tiles"
    CT = "ct"
    STATIC_CT = "static-ct"


_CT_LOGS: Final = (LogName.CT, LogName.STATIC_CT)
"""The logs of certificates, whose entries are MerkleTreeLeafs and whose key is `ct_key`."""


class Mode(StrEnum):
    """Misbehaviour modes (see README.md)."""

    FORK = "fork"
    ROLLBACK = "rollback"
    BAD_SIGNATURE = "bad_signature"
    BAD_PROOF = "bad_proof"
    BAD_ENTRIES = "bad_entries"
    ERRORS = "errors"
    SLOW = "slow"
    UNINCORPORATED = "unincorporated"
    """CT log only: sign SCTs for the CA's precertificates but never add them to the tree."""


class SandboxError(ValueError):
    """A bad admin request (HTTP 400) or an impossible operation."""


@dataclass(frozen=True)
class Reply:
    """A rendered HTTP response."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    file: tuple[BinaryIO, int, int] | None = None
    """Instead of ``body``: (file, offset, length) of bytes to send from a file."""

    @classmethod
    def json(cls, data: object, status: int = 200) -> Reply:
        """A JSON reply."""
        return cls(status, json.dumps(data).encode())

    @classmethod
    def rekor_error(cls, status: int, message: str) -> Reply:
        """A Rekor-style error: ``{"code": status, "message": ...}``."""
        return cls.json({"code": status, "message": message}, status)

    @classmethod
    def text(cls, text: str, status: int = 200) -> Reply:
        """A text/plain reply."""
        return cls(status, text.encode(), "text/plain; charset=utf-8")


@dataclass(frozen=True)
class AppendResult:
    """What an append did: the (global) indexes of the first and last new entry."""

    log: LogName
    first: int
    last: int
    size: int

    def to_json(self) -> dict[str, object]:
        """The admin API's answer."""
        return {"log": str(self.log), "indexes": [self.first, self.last], "size": self.size}


@dataclass
class Misbehaviour:
    """One active misbehaviour of one log on one view (None = the main endpoints)."""

    log: LogName
    view: str | None
    mode: Mode
    params: dict[str, Any]
    remaining: int | None = None  # errors: how many more requests fail (None = until reset)
    fork: ForkTree | None = None
    fork_identity: Identity | None = None
    wrong_key: notes.NoteKey | None = None
    wrong_ct_key: ec.EllipticCurvePrivateKey | None = None

    def to_json(self) -> dict[str, object]:
        """The admin state's description of this misbehaviour."""
        out: dict[str, object] = {
            "log": str(self.log),
            "view": self.view,
            "mode": str(self.mode),
            "params": self.params,
        }
        if self.remaining is not None:
            out["remaining"] = self.remaining
        if self.fork is not None:
            out["fork_size"] = self.fork.size
            out["fork_root"] = self.fork.root().hex()
        return out


@dataclass
class Shard:
    """One v1 tree: its ID, entries and (once rotated out) its final signed checkpoint."""

    tree_id: int
    log: LeafLog
    final_checkpoint: str | None = None

    @property
    def active(self) -> bool:
        """True for the shard that takes new entries."""
        return self.final_checkpoint is None


def _new_tree_id() -> int:
    """A random 19-digit positive int64, like Trillian tree IDs."""
    return 10**18 + secrets.randbelow(2**63 - 1 - 10**18)


def _flip(h: bytes) -> bytes:
    """Corrupt a hash (or any bytes) by flipping one bit of its first byte."""
    return bytes([h[0] ^ 0x01]) + h[1:] if h else b"\x01"


def _tamper_body(body: bytes) -> bytes:
    """An altered entry body: the artifact digest changed, everything else kept."""
    try:
        obj = json.loads(body)
        spec = obj["spec"]
        if "hashedRekordV002" in spec:
            data = spec["hashedRekordV002"]["data"]
            data["digest"] = base64.b64encode(
                hashlib.sha256(base64.b64decode(data["digest"])).digest()
            ).decode()
        else:
            h = spec["data"]["hash"]
            h["value"] = hashlib.sha256(bytes.fromhex(h["value"])).hexdigest()
        return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, KeyError, TypeError):
        return body + b" "


def _opt_int(params: dict[str, Any], name: str, lo: int = 0) -> int | None:
    """An optional integer parameter ``>= lo`` (SandboxError otherwise)."""
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < lo:
        raise SandboxError(f"{name}: expected an integer >= {lo}, got {value!r}")
    return value


def _int(params: dict[str, Any], name: str, default: int, lo: int = 0) -> int:
    """An integer parameter ``>= lo`` with a default."""
    value = _opt_int(params, name, lo)
    return default if value is None else value


class SandboxCore:
    """Both logs, their keys, the CA and the misbehaviour table (see module docstring)."""

    def __init__(
        self,
        state_dir: Path | str,
        *,
        v1_name: str | None = None,
        tiles_origin: str | None = None,
        workers: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.clock = clock
        """Seconds since the epoch: the integratedTime of appended entries (tests inject one)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._append_lock = threading.Lock()
        self._load_names(v1_name, tiles_origin)
        self.v1_key = _stored_key(
            self.state_dir / "rekor.key",
            ec.EllipticCurvePrivateKey,  # type: ignore[type-abstract]  # only for isinstance
            lambda: ec.generate_private_key(ec.SECP256R1()),
        )
        self.tiles_key = self.load_ed25519_key(self.state_dir / "tiles.key")
        self.v1_note_key = notes.NoteKey.ecdsa(self.v1_name, self.v1_key)
        self.tiles_note_key = notes.NoteKey.ed25519(self.tiles_origin, self.tiles_key)
        spki = self.v1_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.v1_log_id = hashlib.sha256(spki).hexdigest()
        self.v1_public_pem = self.v1_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        (self.state_dir / "rekor.pub.pem").write_bytes(self.v1_public_pem)
        self.tiles_vkey = self.tiles_note_key.vkey()
        (self.state_dir / "tiles.vkey").write_text(self.tiles_vkey + "\n")
        # public_key takes PEM, not a vkey: write both so a config can pin the tiled log as is.
        self.tiles_public_pem = self.tiles_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        (self.state_dir / "tiles.pub.pem").write_bytes(self.tiles_public_pem)
        self.ca = LocalCA.load_or_create(self.state_dir)
        self.ct_key = _stored_key(
            self.state_dir / "ct.key",
            ec.EllipticCurvePrivateKey,  # type: ignore[type-abstract]  # only for isinstance
            lambda: ec.generate_private_key(ec.SECP256R1()),
        )
        self.ct_public_pem = self.ct_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        (self.state_dir / "ct.pub.pem").write_bytes(self.ct_public_pem)
        self.ct_extra_data = ctlog.extra_data(self.ca)
        self.ca.ct_log = self._ct_submit
        self.unincorporated: list[dict[str, object]] = []
        """SCTs the CT log signed but did not incorporate (mode "unincorporated")."""
        self.factory = BodyFactory(workers)
        self.shards = self._load_shards()
        (self.state_dir / "tiles").mkdir(exist_ok=True)
        self.tiles = LeafLog(self.state_dir / "tiles" / "entries.leaves", bundles=True)
        (self.state_dir / "ct").mkdir(exist_ok=True)
        self.ct = LeafLog(self.state_dir / "ct" / "entries.leaves")
        (self.state_dir / "static-ct").mkdir(exist_ok=True)
        self.static_ct = LeafLog(self.state_dir / "static-ct" / "entries.leaves")
        self.static_ct_origin = staticct.DEFAULT_ORIGIN
        root_der = self.ca.certificate.public_bytes(serialization.Encoding.DER)
        self.static_ct_chain = (staticct.fingerprint(root_der),)
        self.misbehaviours: list[Misbehaviour] = []
        self.requests: defaultdict[str, defaultdict[str, int]] = defaultdict(
            lambda: defaultdict(int)
        )
        self._tiles_cp_cache: tuple[int, bytes, str] | None = None
        self.search_index = SearchIndex()
        # (monotonic time, view or "main", endpoint) of recent requests, for rate checks.
        self.request_log: deque[tuple[float, str, str]] = deque(maxlen=100_000)

    # --- persistence ---------------------------------------------------------------------------

    def _load_names(self, v1_name: str | None, tiles_origin: str | None) -> None:
        path = self.state_dir / "sandbox.json"
        stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        self.v1_name = stored.get("v1_name") or v1_name or DEFAULT_V1_NAME
        self.tiles_origin = stored.get("tiles_origin") or tiles_origin or DEFAULT_TILES_ORIGIN
        for given, kept, what in (
            (v1_name, self.v1_name, "v1 key name"),
            (tiles_origin, self.tiles_origin, "tiles origin"),
        ):
            if given is not None and given != kept:
                log.warning("%s: keeping the stored %s %r, not %r", path, what, kept, given)
        if not stored:
            write_json_atomic(path, {"v1_name": self.v1_name, "tiles_origin": self.tiles_origin})

    @staticmethod
    def load_ed25519_key(path: Path) -> ed25519.Ed25519PrivateKey:
        """The Ed25519 private key stored at `path`, created (owner-only) on first use."""
        return _stored_key(
            path,
            ed25519.Ed25519PrivateKey,  # type: ignore[type-abstract]  # only for isinstance
            ed25519.Ed25519PrivateKey.generate,
        )

    def _load_shards(self) -> list[Shard]:
        v1_dir = self.state_dir / "v1"
        v1_dir.mkdir(exist_ok=True)
        meta_path = v1_dir / "shards.json"
        if meta_path.exists():
            meta = json.loads(meta_path.read_text())["shards"]
        else:
            meta = [{"treeID": str(_new_tree_id()), "finalCheckpoint": None}]
            write_json_atomic(meta_path, {"shards": meta})
        shards = []
        for m in meta:
            tree_id = int(m["treeID"])
            leaf_log = LeafLog(v1_dir / f"{tree_id}.leaves")
            shards.append(Shard(tree_id, leaf_log, m.get("finalCheckpoint")))
        return shards

    def _save_shards(self) -> None:
        meta = [
            {"treeID": str(s.tree_id), "finalCheckpoint": s.final_checkpoint} for s in self.shards
        ]
        write_json_atomic(self.state_dir / "v1" / "shards.json", {"shards": meta})

    def close(self) -> None:
        """Release files and threads."""
        self.factory.close()
        with self.lock:
            for s in self.shards:
                s.log.close()
            self.tiles.close()
            self.ct.close()
            self.static_ct.close()

    # --- log geometry --------------------------------------------------------------------------

    @property
    def active(self) -> Shard:
        """The v1 shard that takes new entries."""
        return self.shards[-1]

    def v1_offset(self, shard: Shard) -> int:
        """The global logIndex of a shard's first entry."""
        offset = 0
        for s in self.shards:
            if s is shard:
                return offset
            offset += s.log.size
        raise SandboxError(f"unknown shard {shard.tree_id}")

    def v1_global_size(self) -> int:
        """Entries in all v1 shards."""
        return sum(s.log.size for s in self.shards)

    def v1_origin(self, tree_id: int) -> str:
        """Checkpoint origin of a v1 shard: ``<name> - <treeID>``, like Rekor."""
        return f"{self.v1_name} - {tree_id}"

    def _log(self, name: LogName) -> LeafLog:
        if name is LogName.CT:
            return self.ct
        if name is LogName.STATIC_CT:
            return self.static_ct
        return self.active.log if name is LogName.V1 else self.tiles

    # --- misbehaviour --------------------------------------------------------------------------

    def _modes(self, name: LogName, view: str | None) -> dict[Mode, Misbehaviour]:
        return {m.mode: m for m in self.misbehaviours if m.log is name and m.view == view}

    def _source(self, name: LogName, view: str | None) -> TreeSource:
        """The tree a view serves for ``name`` (v1: the active shard)."""
        fork = self._modes(name, view).get(Mode.FORK)
        if fork is not None and fork.fork is not None:
            return fork.fork
        return self._log(name)

    def misbehave(
        self, log_name: str, mode: str, view: str | None = None, **params: Any
    ) -> dict[str, object]:
        """Start misbehaving (replaces an earlier misbehaviour of that mode on that view)."""
        try:
            name, m = LogName(log_name), Mode(mode)
        except ValueError as e:
            raise SandboxError(f"misbehave: {e}") from e
        if view is not None and (not isinstance(view, str) or not view or "/" in view):
            raise SandboxError(f"misbehave: view must be a non-empty name, got {view!r}")
        with self._append_lock, self.lock:
            mb = Misbehaviour(name, view, m, dict(params))
            base = self._log(name)
            if m is Mode.FORK:
                at = _int(params, "at", max(base.size - 1, 0))
                if at > base.size:
                    raise SandboxError(f"fork: 'at' {at} is beyond the log size {base.size}")
                mb.params["at"] = at
                mb.fork_identity = Identity.from_json(
                    params.get("identity", {"email": "fork@sandbox.invalid"})
                )
                mb.fork = ForkTree(base, at)
                self._grow_fork(mb)
            elif m is Mode.ROLLBACK:
                size = _int(params, "size", max(base.size - 1, 0))
                if size > base.size:
                    raise SandboxError(f"rollback: 'size' {size} is beyond the log size")
                mb.params["size"] = size
            elif m is Mode.BAD_SIGNATURE:
                how = params.get("how", "corrupt")
                if how not in ("corrupt", "wrong_key"):
                    raise SandboxError("bad_signature: 'how' must be 'corrupt' or 'wrong_key'")
                mb.params["how"] = how
                if how == "wrong_key" and name in _CT_LOGS:
                    mb.wrong_ct_key = ec.generate_private_key(ec.SECP256R1())
                elif how == "wrong_key":
                    key_name = self.v1_name if name is LogName.V1 else self.tiles_origin
                    mb.wrong_key = (
                        notes.NoteKey.ecdsa(key_name, ec.generate_private_key(ec.SECP256R1()))
                        if name is LogName.V1
                        else notes.NoteKey.ed25519(key_name, ed25519.Ed25519PrivateKey.generate())
                    )
            elif m is Mode.ERRORS:
                status = _int(params, "status", 500, lo=100)
                if not 400 <= status <= 599:
                    raise SandboxError(f"errors: 'status' must be 4xx or 5xx, got {status}")
                mb.params["status"] = status
                mb.remaining = _opt_int(params, "count", lo=1)
                endpoints = params.get("endpoints")
                if endpoints is not None and not (
                    isinstance(endpoints, list) and all(isinstance(e, str) for e in endpoints)
                ):
                    raise SandboxError("errors: 'endpoints' must be a list of endpoint names")
                _opt_int(params, "retry_after")
            elif m is Mode.UNINCORPORATED:
                if name is not LogName.CT or view is not None:
                    raise SandboxError("unincorporated: only the CT log itself (no view) does it")
            elif m is Mode.SLOW:
                delay = params.get("delay", 1.0)
                if not isinstance(delay, int | float) or isinstance(delay, bool) or delay < 0:
                    raise SandboxError(f"slow: 'delay' must be a number >= 0, got {delay!r}")
                mb.params["delay"] = float(delay)
            self.misbehaviours = [
                x for x in self.misbehaviours if (x.log, x.view, x.mode) != (name, view, m)
            ]
            self.misbehaviours.append(mb)
            log.info("misbehaving: %s", mb.to_json())
            return mb.to_json()

    def reset(
        self, log_name: str | None = None, view: str | None = None, mode: str | None = None
    ) -> int:
        """Stop misbehaving (all, or only matching log / view / mode); returns how many."""
        with self.lock:
            before = len(self.misbehaviours)
            self.misbehaviours = [
                m
                for m in self.misbehaviours
                if not (
                    (log_name is None or m.log == log_name)
                    and (view is None or m.view == view)
                    and (mode is None or m.mode == mode)
                )
            ]
            return before - len(self.misbehaviours)

    def _grow_fork(self, mb: Misbehaviour) -> None:
        """Append alternative entries until the fork is as large as its base."""
        fork, identity = mb.fork, mb.fork_identity
        if fork is None or identity is None or fork.missing == 0:
            return
        if mb.log in _CT_LOGS:
            leaves = ctlog.ct_leaves(
                self.ca, self.ca.signer(identity), fork.missing, self._ct_now_ms(), "mixed"
            )
            if mb.log is LogName.STATIC_CT:
                leaves = staticct.with_leaf_index(leaves, fork.size)
            fork.append(leaves, int(self.clock()))
            return
        kind = BodyKind.V1 if mb.log is LogName.V1 else BodyKind.V2
        signer = self.ca.signer(identity)
        for chunk in self.factory.bodies(kind, signer, fork.missing):
            fork.append(chunk, int(self.clock()))

    def before_request(
        self, name: LogName, view: str | None, endpoint: str
    ) -> tuple[float, Reply | None]:
        """Count a request; return (delay seconds, an injected error reply or None)."""
        with self.lock:
            self.requests[view or "main"][endpoint] += 1
            self.request_log.append((time.monotonic(), view or "main", endpoint))
            modes = self._modes(name, view)
            slow = modes.get(Mode.SLOW)
            delay = float(slow.params["delay"]) if slow is not None else 0.0
            err = modes.get(Mode.ERRORS)
            if err is None:
                return delay, None
            endpoints = err.params.get("endpoints")
            if endpoints is not None and endpoint not in endpoints:
                return delay, None
            if err.remaining is not None:
                err.remaining -= 1
                if err.remaining <= 0:
                    self.misbehaviours.remove(err)
            return delay, self._error_reply(name, err)

    @staticmethod
    def _error_reply(name: LogName, err: Misbehaviour) -> Reply:
        status = int(err.params["status"])
        headers: tuple[tuple[str, str], ...] = ()
        retry_after = err.params.get("retry_after", 1 if status in (429, 503) else None)
        if retry_after is not None:
            headers = (("Retry-After", str(retry_after)),)
        if status == 429:
            # Public Rekor's rate limiter answers with an HTML page, not Rekor's JSON errors.
            page = (
                "<html><head><title>429 Too Many Requests</title></head><body>"
                "<center><h1>429 Too Many Requests</h1></center></body></html>"
            )
            return Reply(status, page.encode(), "text/html", headers)
        if name is LogName.V1:
            r = Reply.rekor_error(status, f"sandbox: injected error {status}")
        else:
            r = Reply.text(f"sandbox: injected error {status}\n", status)
        return Reply(r.status, r.body, r.content_type, headers)

    # --- signing -------------------------------------------------------------------------------

    def _signed(self, name: LogName, view: str | None, origin: str, size: int, root: bytes) -> str:
        """A signed checkpoint, as the view serves it (bad_signature applied)."""
        key = self.v1_note_key if name is LogName.V1 else self.tiles_note_key
        bad = self._modes(name, view).get(Mode.BAD_SIGNATURE)
        if bad is None:
            return notes.sign_checkpoint(origin, size, root, key)
        if bad.wrong_key is not None:
            # Signed by another key of the same name, presented under the real key's hint.
            text = notes.sign_checkpoint(origin, size, root, bad.wrong_key)
            return notes.replace_hint(text, key.hint)
        return notes.corrupt_signature(notes.sign_checkpoint(origin, size, root, key))

    def _served_size(self, name: LogName, view: str | None, src: TreeSource) -> int:
        rb = self._modes(name, view).get(Mode.ROLLBACK)
        if rb is None:
            return src.size
        return min(int(rb.params["size"]), src.size)

    # --- Rekor v1 API --------------------------------------------------------------------------

    def v1_log_info(self, view: str | None) -> Reply:
        """GET /api/v1/log."""
        with self.lock:
            shard = self.active
            src = self._source(LogName.V1, view)
            size = self._served_size(LogName.V1, view, src)
            root = src.root(size)
            out: dict[str, object] = {
                "rootHash": root.hex(),
                "signedTreeHead": self._signed(
                    LogName.V1, view, self.v1_origin(shard.tree_id), size, root
                ),
                "treeID": str(shard.tree_id),
                "treeSize": size,
            }
            inactive = [self._inactive_info(s) for s in self.shards[:-1]]
            if inactive:
                out["inactiveShards"] = inactive
            return Reply.json(out)

    @staticmethod
    def _inactive_info(shard: Shard) -> dict[str, object]:
        return {
            "rootHash": shard.log.root().hex(),
            "signedTreeHead": shard.final_checkpoint,
            "treeID": str(shard.tree_id),
            "treeSize": shard.log.size,
        }

    def v1_proof(
        self, view: str | None, first: str | None, last: str | None, tree_id: str | None
    ) -> Reply:
        """GET /api/v1/log/proof?firstSize&lastSize&treeID.

        Like Rekor, ``rootHash`` is the tree's *latest* root, not the root at lastSize.
        """
        try:
            first_size = int(first) if first is not None else 1
            if last is None:
                return Reply.rekor_error(400, "lastSize in query is required")
            last_size = int(last)
        except ValueError:
            return Reply.rekor_error(400, "firstSize and lastSize must be integers")
        if first_size < 1 or last_size < 1:
            return Reply.rekor_error(400, "firstSize and lastSize must be >= 1")
        if first_size > last_size:
            return Reply.rekor_error(
                400, f"firstSize({first_size}) must be less than or equal to lastSize({last_size})"
            )
        with self.lock:
            shard = self.active
            if tree_id is not None:
                found = [s for s in self.shards if str(s.tree_id) == tree_id]
                if not found:
                    return Reply.rekor_error(400, f"unknown treeID {tree_id}")
                shard = found[0]
            src: TreeSource = self._source(LogName.V1, view) if shard.active else shard.log
            if last_size > src.size:
                return Reply.rekor_error(
                    400, f"lastSize({last_size}) is greater than the tree size ({src.size})"
                )
            proof = src.consistency_proof(first_size, last_size)
            if self._modes(LogName.V1, view).get(Mode.BAD_PROOF) is not None and shard.active:
                proof = [_flip(proof[0]), *proof[1:]] if proof else [hashlib.sha256().digest()]
            return Reply.json({"rootHash": src.root().hex(), "hashes": [h.hex() for h in proof]})

    def v1_entry(self, view: str | None, global_index: int) -> dict[str, object] | None:
        """The LogEntry map ``{uuid: entry}`` of a global logIndex, or None if absent."""
        with self.lock:
            offset = 0
            for shard in self.shards:
                if global_index < offset + shard.log.size:
                    break
                offset += shard.log.size
            else:
                return None
            local = global_index - offset
            modes = self._modes(LogName.V1, view) if shard.active else {}
            src = self._source(LogName.V1, view) if shard.active else shard.log
            if local >= src.size:
                return None
            size = src.size
            body = src.body(local)
            proof = src.inclusion_proof(local, size)
            if shard.active:
                root = src.root(size)
                checkpoint = self._signed(
                    LogName.V1, view, self.v1_origin(shard.tree_id), size, root
                )
            else:
                root = shard.log.root()
                checkpoint = str(shard.final_checkpoint)
            integrated = src.integrated_time(local)
            body_b64 = base64.b64encode(body).decode()
            set_payload = {
                "body": body_b64,
                "integratedTime": integrated,
                "logID": self.v1_log_id,
                "logIndex": global_index,
            }
            set_sig = self.v1_key.sign(
                json.dumps(set_payload, sort_keys=True, separators=(",", ":")).encode(),
                ec.ECDSA(hashes.SHA256()),
            )
            uuid = f"{shard.tree_id:016x}{leaf_hash(body).hex()}"
            if Mode.BAD_ENTRIES in modes:
                body_b64 = base64.b64encode(_tamper_body(body)).decode()
            if Mode.BAD_PROOF in modes:
                proof = [_flip(proof[0]), *proof[1:]] if proof else [hashlib.sha256().digest()]
            return {
                uuid: {
                    "body": body_b64,
                    "integratedTime": integrated,
                    "logID": self.v1_log_id,
                    "logIndex": global_index,
                    "verification": {
                        "inclusionProof": {
                            "checkpoint": checkpoint,
                            "hashes": [h.hex() for h in proof],
                            "logIndex": local,
                            "rootHash": root.hex(),
                            "treeSize": size,
                        },
                        "signedEntryTimestamp": base64.b64encode(set_sig).decode(),
                    },
                }
            }

    def v1_get_entry(self, view: str | None, log_index: str | None) -> Reply:
        """GET /api/v1/log/entries?logIndex=N."""
        try:
            index = int(log_index) if log_index is not None else -1
        except ValueError:
            index = -1
        if index < 0:
            return Reply.rekor_error(400, "logIndex in query must be an integer >= 0")
        entry = self.v1_entry(view, index)
        if entry is None:
            return Reply.rekor_error(404, f"no entry at logIndex {index}")
        return Reply.json(entry)

    def _v1_entry_at(self, global_index: int) -> tuple[str, bytes]:
        """The UUID and body of a global index of the real log (callers hold the lock)."""
        offset = 0
        for shard in self.shards:
            if global_index < offset + shard.log.size:
                body = shard.log.body(global_index - offset)
                return f"{shard.tree_id:016x}{leaf_hash(body).hex()}", body
            offset += shard.log.size
        raise IndexError(f"no v1 entry {global_index}")

    def v1_index_retrieve(self, query: object) -> Reply:
        """POST /api/v1/index/retrieve: UUIDs of the indexed entries matching the query."""
        with self.lock:
            try:
                found = self.search_index.search(query, self.v1_global_size(), self._v1_entry_at)
            except IndexQueryError as e:
                return Reply.rekor_error(400, f"index search: {e}")
        return Reply.json(found)

    def set_index(self, lag: int | None = None, paused: bool | None = None) -> dict[str, object]:
        """Make the search index lag ``lag`` entries behind the log, or pause it."""
        if lag is not None and (not isinstance(lag, int) or isinstance(lag, bool) or lag < 0):
            raise SandboxError(f"index: 'lag' must be an integer >= 0, got {lag!r}")
        if paused is not None and not isinstance(paused, bool):
            raise SandboxError(f"index: 'paused' must be true or false, got {paused!r}")
        with self.lock:
            if lag is not None:
                self.search_index.lag = lag
            if paused is not None:
                self.search_index.paused = paused
            return self.search_index.state()

    def _retrieve_by_uuid(self, view: str | None, uuids: list[object]) -> Reply:
        if len(uuids) > MAX_RETRIEVE:
            return Reply.rekor_error(
                422, f"entryUUIDs in body should have at most {MAX_RETRIEVE} items"
            )
        if not all(
            isinstance(u, str) and len(u) in (64, 80) and set(u.lower()) <= set("0123456789abcdef")
            for u in uuids
        ):
            return Reply.rekor_error(422, "entryUUIDs must be 64 or 80 hex digits")
        with self.lock:
            size = self.v1_global_size()
            found = [self.search_index.locate(str(u), size, self._v1_entry_at) for u in uuids]
        out = [e for e in (self.v1_entry(view, i) for i in found if i is not None) if e]
        return Reply.json(out)

    def v1_retrieve(self, view: str | None, query: object) -> Reply:
        """POST /api/v1/log/entries/retrieve {"logIndexes": [...]} or {"entryUUIDs": [...]};
        absent ones are dropped."""
        if isinstance(query, dict) and isinstance(query.get("entryUUIDs"), list):
            return self._retrieve_by_uuid(view, query["entryUUIDs"])
        if not isinstance(query, dict) or not isinstance(query.get("logIndexes"), list):
            return Reply.rekor_error(
                400,
                'the sandbox supports retrieval by {"logIndexes": [...]} or {"entryUUIDs": [...]}',
            )
        indexes = query["logIndexes"]
        if len(indexes) > MAX_RETRIEVE:
            return Reply.rekor_error(
                422, f"logIndexes in body should have at most {MAX_RETRIEVE} items"
            )
        if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in indexes):
            return Reply.rekor_error(422, "logIndexes must be integers >= 0")
        out = [e for e in (self.v1_entry(view, i) for i in indexes) if e is not None]
        return Reply.json(out)

    def v1_public_key(self) -> Reply:
        """GET /api/v1/log/publicKey (PEM)."""
        return Reply(200, self.v1_public_pem, "application/x-pem-file")

    # --- tiles API -----------------------------------------------------------------------------

    def tiles_checkpoint(self, view: str | None) -> Reply:
        """GET <prefix>/checkpoint."""
        with self.lock:
            src = self._source(LogName.TILES, view)
            size = self._served_size(LogName.TILES, view, src)
            root = src.root(size)
            modes = self._modes(LogName.TILES, view)
            cache = self._tiles_cp_cache
            if Mode.BAD_SIGNATURE not in modes and cache is not None and cache[:2] == (size, root):
                text = cache[2]
            else:
                text = self._signed(LogName.TILES, view, self.tiles_origin, size, root)
                if Mode.BAD_SIGNATURE not in modes:
                    self._tiles_cp_cache = (size, root, text)
        r = Reply.text(text)
        return Reply(r.status, r.body, r.content_type, (("Cache-Control", "no-store"),))

    def tiles_tile(self, view: str | None, path: str) -> Reply:
        """GET <prefix>/tile/<L>/<N>[.p/<W>] and <prefix>/tile/entries/<N>[.p/<W>]."""
        try:
            ref = parse_tile_path(path)
        except TilePathError as e:
            return Reply.text(f"{e}\n", 404)
        with self.lock:
            src = self._source(LogName.TILES, view)
            if not tile_available(ref, src.size):
                return Reply.text(f"tile not found: {path}\n", 404)
            modes = self._modes(LogName.TILES, view)
            start = ref.index * TILE_WIDTH
            if ref.level is None:
                span = None if Mode.BAD_ENTRIES in modes else src.bundle(start, start + ref.width)
                if span is not None:
                    return replace(_immutable(b""), file=span)
                bodies = src.bodies(start, start + ref.width)
                if Mode.BAD_ENTRIES in modes:
                    bodies = [_tamper_body(b) for b in bodies]
                data = encode_bundle(bodies)
            else:
                hashes = _hash_tile(src, ref.level, start, ref.width, Mode.BAD_PROOF in modes)
                if hashes is None:
                    return Reply.text(f"tile not found: {path}\n", 404)
                data = hashes
        return _immutable(data)

    # --- admin ---------------------------------------------------------------------------------

    def append_blocking(
        self,
        log_name: str,
        count: int = 1,
        identity: Identity | dict[str, Any] | None = None,
        self_signed: bool = False,
        *,
        entry_type: str = "mixed",
        malformed: bool = False,
    ) -> AppendResult:
        """Append ``count`` fresh entries (blocking; run it in a thread from async code).

        For the CT log, `entry_type` picks x509_entry leaves, precert_entry leaves or both
        ("mixed", alternating), and `malformed` appends leaves no reader accepts instead.
        """
        try:
            name = LogName(log_name)
        except ValueError as e:
            raise SandboxError(
                f"append: unknown log {log_name!r} (v1, tiles, ct or static-ct)"
            ) from e
        if entry_type not in ctlog.ENTRY_KINDS:
            raise SandboxError(f"append: entry_type must be one of {', '.join(ctlog.ENTRY_KINDS)}")
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_APPEND:
            raise SandboxError(f"append: count must be an integer in [1, {MAX_APPEND}]")
        try:
            ident = identity if isinstance(identity, Identity) else Identity.from_json(identity)
        except IdentityError as e:
            raise SandboxError(str(e)) from e
        try:
            signer = self.ca.signer(ident, self_signed=bool(self_signed))
        except ValueError as e:
            # An identity x509 cannot encode (e.g. a non-ASCII email) is the caller's error.
            raise SandboxError(f"append: cannot issue a certificate for this identity: {e}") from e
        kind = BodyKind.V1 if name is LogName.V1 else BodyKind.V2
        with self._append_lock:
            with self.lock:
                target = self._log(name)
                first = target.size + (self.v1_offset(self.active) if name is LogName.V1 else 0)
            chunks: Iterable[list[bytes]]
            if name is LogName.STATIC_CT:
                chunks = self._static_ct_chunks(signer, count, entry_type, malformed, first)
            elif name is LogName.CT:
                chunks = self._ct_chunks(signer, count, entry_type, malformed)
            else:
                chunks = self.factory.bodies(kind, signer, count)
            for chunk in chunks:
                when = int(self.clock())
                with self.lock:
                    target.append(chunk, when)
                    for mb in self.misbehaviours:
                        if mb.log is name and mb.fork is not None:
                            self._grow_fork(mb)
            target.sync()
            with self.lock:
                size = self.v1_global_size() if name is LogName.V1 else target.size
        return AppendResult(name, first, first + count - 1, size)

    def _ct_now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _ct_submit(self, tbs: bytes, issuer_spki: bytes) -> Sct:
        """The CT log's add-pre-chain for the CA: an SCT signed now, and the precert_entry
        appended to the tree (unless the log misbehaves "unincorporated")."""
        with self.lock:
            sct, leaf = ctlog.issue_sct(self.ct_key, self._ct_now_ms(), tbs, issuer_spki)
            if Mode.UNINCORPORATED in self._modes(LogName.CT, None):
                self.unincorporated.append({"timestamp": sct.timestamp, "leaf": leaf.hex()})
                return sct
            self.ct.append([leaf], int(self.clock()))
            for mb in self.misbehaviours:
                if mb.log is LogName.CT and mb.fork is not None:
                    self._grow_fork(mb)
            return sct

    def _static_ct_chunks(
        self, signer: SigningIdentity, count: int, entry_type: str, malformed: bool, first: int
    ) -> list[list[bytes]]:
        """The static-ct leaves of one append (entries `first`...), in chunks of at most 4096."""
        leaves = staticct.leaves(
            self.ca, signer, count, self._ct_now_ms(), entry_type, first, malformed=malformed
        )
        return [leaves[i : i + 4096] for i in range(0, len(leaves), 4096)]

    def _ct_chunks(
        self, signer: SigningIdentity, count: int, entry_type: str, malformed: bool
    ) -> list[list[bytes]]:
        """The CT leaves of one append, in chunks of at most 4096."""
        first_ms = self._ct_now_ms()
        if malformed:
            leaves = [ctlog.malformed_leaf(first_ms + i) for i in range(count)]
        else:
            leaves = ctlog.ct_leaves(self.ca, signer, count, first_ms, entry_type)
        return [leaves[i : i + 4096] for i in range(0, len(leaves), 4096)]

    # --- RFC 6962 CT API (ctlog.py renders the answers) ---------------------------------------

    def ct_get_sth(self, view: str | None) -> Reply:
        """GET <p>/ct/v1/get-sth, signed now (a CTFE signs a fresh STH every so often)."""
        with self.lock:
            src = self._source(LogName.CT, view)
            size = self._served_size(LogName.CT, view, src)
            root = src.root(size)
            bad = self._modes(LogName.CT, view).get(Mode.BAD_SIGNATURE)
            key = bad.wrong_ct_key if bad is not None and bad.wrong_ct_key else self.ct_key
            sth = ctlog.sign_sth(key, self._ct_now_ms(), size, root)
            if bad is not None and bad.wrong_ct_key is None:
                sth = ctlog.corrupt_sth(sth)
        return Reply.json(sth)

    def ct_consistency(self, view: str | None, first: str | None, second: str | None) -> Reply:
        """GET <p>/ct/v1/get-sth-consistency?first&second."""
        with self.lock:
            src = self._source(LogName.CT, view)
            bad = Mode.BAD_PROOF in self._modes(LogName.CT, view)
            status, data = ctlog.render_consistency(src, first, second, bad_proof=bad, flip=_flip)
        return Reply.json(data, status)

    def ct_entries(self, view: str | None, start: str | None, end: str | None) -> Reply:
        """GET <p>/ct/v1/get-entries?start&end."""
        with self.lock:
            src = self._source(LogName.CT, view)
            tamper = (
                ctlog.tamper_leaf if Mode.BAD_ENTRIES in self._modes(LogName.CT, view) else None
            )
            status, data = ctlog.render_entries(src, start, end, self._ct_extra, tamper=tamper)
        return Reply.json(data, status)

    def _ct_extra(self, body: bytes) -> bytes:
        return ctlog.entry_extra_data(self.ca, body)

    def ct_entry_and_proof(
        self, view: str | None, leaf_index: str | None, tree_size: str | None
    ) -> Reply:
        """GET <p>/ct/v1/get-entry-and-proof?leaf_index&tree_size."""
        with self.lock:
            src = self._source(LogName.CT, view)
            bad = Mode.BAD_PROOF in self._modes(LogName.CT, view)
            status, data = ctlog.render_entry_and_proof(
                src, leaf_index, tree_size, self._ct_extra, bad_proof=bad, flip=_flip
            )
        return Reply.json(data, status)

    # --- C2SP static-ct-api (staticct.py renders the answers) ---------------------------------

    def static_ct_checkpoint(self, view: str | None) -> Reply:
        """GET <p>/static-ct/checkpoint, signed now (RFC 6962 STH note signature)."""
        with self.lock:
            src = self._source(LogName.STATIC_CT, view)
            size = self._served_size(LogName.STATIC_CT, view, src)
            root = src.root(size)
            bad = self._modes(LogName.STATIC_CT, view).get(Mode.BAD_SIGNATURE)
            wrong = bad.wrong_ct_key if bad is not None else None
            text = staticct.checkpoint(
                wrong or self.ct_key,
                self.static_ct_origin,
                self._ct_now_ms(),
                size,
                root,
                hint_key=self.ct_key,
                corrupt=bad is not None and wrong is None,
            )
        r = Reply.text(text)
        return Reply(r.status, r.body, r.content_type, (("Cache-Control", "no-store"),))

    def static_ct_tile(self, view: str | None, path: str) -> Reply:
        """GET <p>/static-ct/tile/<L>/<N>[.p/<W>] and <p>/static-ct/tile/data/<N>[.p/<W>]."""
        data = path.startswith("tile/data/")
        try:
            # Data tiles are addressed like tlog-tiles entry bundles, under "data".
            ref = parse_tile_path("tile/entries/" + path[10:] if data else path)
        except TilePathError as e:
            return Reply.text(f"{e}\n", 404)
        if ref.level is None and not data:
            return Reply.text(f"not a static-ct-api tile: {path}\n", 404)
        with self.lock:
            src = self._source(LogName.STATIC_CT, view)
            if not tile_available(ref, src.size):
                return Reply.text(f"tile not found: {path}\n", 404)
            modes = self._modes(LogName.STATIC_CT, view)
            start = ref.index * TILE_WIDTH
            if ref.level is None:
                body = staticct.data_tile(
                    src.bodies(start, start + ref.width),
                    self.static_ct_chain,
                    self.ca.precertificates,
                    tamper=Mode.BAD_ENTRIES in modes,
                )
            else:
                hashes = _hash_tile(src, ref.level, start, ref.width, Mode.BAD_PROOF in modes)
                if hashes is None:
                    return Reply.text(f"tile not found: {path}\n", 404)
                body = hashes
        return _immutable(body)

    def static_ct_issuer(self, name: str) -> Reply:
        """GET <p>/static-ct/issuer/<hex SHA-256>: the CA root's DER (the only issuer)."""
        if name != self.static_ct_chain[0].hex():
            return Reply.text(f"issuer not found: {name[:80]}\n", 404)
        der = self.ca.certificate.public_bytes(serialization.Encoding.DER)
        r = _immutable(der)
        return Reply(r.status, r.body, "application/pkix-cert", r.headers)

    def rotate(self) -> dict[str, object]:
        """Freeze the active v1 shard (final checkpoint kept) and start a new tree.

        v1 misbehaviours that depend on the old tree (fork, rollback) are dropped.
        """
        with self._append_lock, self.lock:
            old = self.active
            root = old.log.root()
            old.final_checkpoint = notes.sign_checkpoint(
                self.v1_origin(old.tree_id), old.log.size, root, self.v1_note_key
            )
            old.log.sync()
            tree_id = _new_tree_id()
            self.shards.append(Shard(tree_id, LeafLog(self.state_dir / "v1" / f"{tree_id}.leaves")))
            self._save_shards()
            self.misbehaviours = [
                m
                for m in self.misbehaviours
                if not (m.log is LogName.V1 and m.mode in (Mode.FORK, Mode.ROLLBACK))
            ]
            log.info("rotated v1: %s frozen at %d, new tree %s", old.tree_id, old.log.size, tree_id)
            return {
                "treeID": str(tree_id),
                "previous": self._inactive_info(old),
                "offset": self.v1_offset(self.active),
            }

    def state(self) -> dict[str, object]:
        """GET /admin/state."""
        with self.lock:
            return {
                "v1": {
                    "keyName": self.v1_name,
                    "origin": self.v1_origin(self.active.tree_id),
                    "treeID": str(self.active.tree_id),
                    "treeSize": self.active.log.size,
                    "globalSize": self.v1_global_size(),
                    "rootHash": self.active.log.root().hex(),
                    "logID": self.v1_log_id,
                    "publicKey": self.v1_public_pem.decode(),
                    "shards": [
                        {
                            "treeID": str(s.tree_id),
                            "treeSize": s.log.size,
                            "offset": self.v1_offset(s),
                            "active": s.active,
                        }
                        for s in self.shards
                    ],
                },
                "tiles": {
                    "origin": self.tiles_origin,
                    "treeSize": self.tiles.size,
                    "rootHash": self.tiles.root().hex(),
                    "vkey": self.tiles_vkey,
                },
                "ct": {
                    "treeSize": self.ct.size,
                    "rootHash": self.ct.root().hex(),
                    "publicKey": self.ct_public_pem.decode(),
                },
                "static-ct": {
                    "origin": self.static_ct_origin,
                    "treeSize": self.static_ct.size,
                    "rootHash": self.static_ct.root().hex(),
                    "publicKey": self.ct_public_pem.decode(),
                },
                "misbehaviours": [m.to_json() for m in self.misbehaviours],
                "index": self.search_index.state(),
                "requests": {v: dict(c) for v, c in self.requests.items()},
            }


def _hash_tile(src: TreeSource, level: int, start: int, width: int, bad: bool) -> bytes | None:
    """The hashes of a hash tile at tile `level` from node `start` (None: not in the tree);
    `bad` (bad_proof) corrupts the first."""
    try:
        nodes = [src.node(TILE_HEIGHT * level, start + i) for i in range(width)]
    except TreeRangeError:
        return None
    if bad:
        nodes[0] = _flip(nodes[0])
    return b"".join(nodes)


def _immutable(data: bytes) -> Reply:
    """A tile's reply: binary, cacheable forever."""
    return Reply(
        200,
        data,
        "application/octet-stream",
        (("Cache-Control", "public, max-age=31536000, immutable"),),
    )


_Key = TypeVar("_Key", ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)


def _stored_key(path: Path, kind: type[_Key], generate: Callable[[], _Key]) -> _Key:
    """The private key of `kind` stored at `path` (PEM, PKCS#8), generated and written
    owner-only on first use, so the sandbox keeps its identity across restarts."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, kind):
            raise SandboxError(f"{path}: expected a {kind.__name__}, got {type(key).__name__}")
        return key
    key = generate()
    write_private(
        path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    return key
