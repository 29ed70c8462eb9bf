"""`tlog-monitor inspect`: verify one log entry offline and explain what the watch rules make of it.

Input: a Rekor v1 LogEntry response (``{uuid: {body, integratedTime, logID, logIndex,
verification: {inclusionProof, signedEntryTimestamp}}}``, or a one-element array of those, as
``/api/v1/log/entries`` and ``/entries/retrieve`` answer), a Rekor v2 TransparencyLogEntry
(``{logIndex, logId, kindVersion, inclusionProof, canonicalizedBody}``, as a Rekor v2 write
answers) or a Sigstore bundle (v0.1 to v0.3, JSON; its first ``tlogEntries`` item). No network:
keys come from the trusted roots embedded in sigstore ("production", "staging") and from the
configured logs.

Flow::

    file --load_input--> LoadedEntry (body, proof, checkpoint, SET, log ID)   [InputError: exit 2]
         --find the log--> by log ID, else by the checkpoint's key name and hint
         --verify--> steps: leaf hash vs UUID, inclusion proof -> root, checkpoint signature,
                     origin, size and root, inclusion promise (SET) signature
         --parse_entry--> signers: identity, Fulcio extensions, fingerprints, chain to Fulcio CAs
         --embedded SCTs--> each certificate's SCTs checked with the known CT logs' keys
         --Matcher.explain--> each rule: match (outcome, reasons) or the first matcher that failed

An entry is verified when every check that applies passes and something signed by the log
covers it: a checkpoint whose root the inclusion proof reproduces, or a valid inclusion promise.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from monitor.config.trust_roots import (
    TrustedCtLog,
    fulcio_trust,
    trusted_ct_logs,
    trusted_logs,
)
from monitor.core.certs import tbs_parts
from monitor.core.entries import Entry, EntryParseError, parse_entry
from monitor.core.entry_proof import (
    EntryEvidence,
    EntryProofError,
    check_inclusion,
    check_proof_checkpoint,
    integration_time,
    verify_set,
)
from monitor.core.errors import ConfigError, MonitorError, ParseError
from monitor.core.fields import MAX_UNIX_TIME, JsonReader, echo
from monitor.core.keys import REKOR_V1_LEGACY_ORIGIN, LogApi
from monitor.core.merkle import leaf_hash
from monitor.core.note import EcdsaNoteVerifier, NoteVerifier, parse_signed_note
from monitor.core.sct import Sct, SctParseError, SctVerificationError, embedded_scts, verify_sct
from monitor.core.watch.match import Evaluation, Matcher, identity_summary
from monitor.core.watch.matchers import FULCIO_EXTENSIONS
from monitor.logs.http import LogResponseError
from monitor.logs.rekor_v1.client import EntryMismatch, V1Entry, check_uuid, read_log_entry

if TYPE_CHECKING:
    from monitor.config.settings import Config
    from monitor.core.certs import CertificateIdentity
    from monitor.core.chain import CertificateTrust

__all__ = [
    "MAX_INPUT_BYTES",
    "InputError",
    "LoadedEntry",
    "Report",
    "inspect_entry",
    "load_input",
]

#: Inputs larger than this are refused (a bundle is a few KiB; an entry at most 1 MiB + proof).
MAX_INPUT_BYTES = 8 * 1024 * 1024
_TRUST_ROOTS = ("production", "staging")
_DECIMAL = re.compile(r"[0-9]{1,20}")


class InputError(ParseError):
    """The input is not a LogEntry or a Sigstore bundle, or a field of it is malformed."""


_JSON = JsonReader(InputError, echo)


# --- input ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proof:
    """An inclusion proof as the input states it (nothing verified yet)."""

    index: int
    """Index of the entry within its tree (a Rekor v1 shard), not the global log index."""
    size: int
    root: bytes
    hashes: tuple[bytes, ...]
    checkpoint: str | None
    """The signed checkpoint the proof is for, when the input carries one."""


@dataclass(frozen=True)
class LoadedEntry:
    """One log entry as an input file states it."""

    source: str
    """What the input was: "Rekor v1 LogEntry" or "Sigstore bundle (<media type>)"."""
    body: bytes
    uuid: str | None
    log_index: int | None
    """The global log index."""
    integrated_time: int
    """Seconds since the epoch as the input states it; 0 when absent (Rekor v2 entries carry
    none). `integration_time` says what it means."""
    log_id: bytes | None
    kind_version: tuple[str, str] | None
    """The bundle's claim about the body's kind and version."""
    proof: Proof | None
    signed_entry_timestamp: bytes | None
    notes: tuple[str, ...] = ()
    v1: V1Entry | None = None
    """The Rekor v1 entry as `monitor.logs.rekor_v1` reads it, for a LogEntry input."""

    def evidence(self, log_id: str) -> EntryEvidence:
        """The entry's evidence for `monitor.core.entry_proof`; ``log_id`` (hex) stands in for
        a log ID the input does not state."""
        proof = self.proof
        return EntryEvidence(
            body=self.body,
            log_index=self.log_index if self.log_index is not None else 0,
            integrated_time=self.integrated_time,
            log_id=self.log_id.hex() if self.log_id is not None else log_id,
            signed_entry_timestamp=self.signed_entry_timestamp,
            tree_index=proof.index if proof else None,
            proof_tree_size=proof.size if proof else None,
            proof_root=proof.root if proof else None,
            proof_hashes=proof.hashes if proof else (),
            checkpoint=proof.checkpoint if proof else None,
        )


def _field(obj: object, key: str, where: str) -> object:
    return _JSON.field(_JSON.obj(obj, where), key, where)


def _str_field(obj: object, key: str, where: str) -> str:
    return _JSON.text(_field(obj, key, where), f"{where}.{key}")


def _int_field(obj: object, key: str, where: str, maximum: int | None = None) -> int:
    """An integer, or a decimal string (protobuf JSON writes int64 as strings)."""
    value = _field(obj, key, where)
    if maximum is None:
        return _JSON.integer(value, f"{where}.{key}", decimal=True)
    return _JSON.integer(value, f"{where}.{key}", hi=maximum, decimal=True)


def _b64(text: str, where: str) -> bytes:
    return _JSON.base64(text, where)


def load_input(data: bytes) -> LoadedEntry:
    """Parse a LogEntry response or a Sigstore bundle. Raises `InputError`."""
    if len(data) > MAX_INPUT_BYTES:
        raise InputError(f"input: expected at most {MAX_INPUT_BYTES} bytes, got {len(data)}")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise InputError(f"input: expected JSON, got {e}") from e
    if isinstance(doc, list) and len(doc) == 1:
        doc = doc[0]
    if not isinstance(doc, dict):
        raise InputError(
            "input: expected a JSON object (a Rekor LogEntry or a Sigstore bundle), "
            f"got {type(doc).__name__}"
        )
    material = doc.get("verificationMaterial")
    if isinstance(material, dict) and "tlogEntries" in material:
        return _load_bundle(doc, material)
    if "canonicalizedBody" in doc:
        # A bare TransparencyLogEntry: what Rekor v2 answers to a write, and what a bundle
        # carries in tlogEntries.
        return _load_tlog_entry(doc, "entry", "Rekor v2 TransparencyLogEntry", ())
    if len(doc) == 1:
        ((uuid, entry),) = doc.items()
        if isinstance(entry, dict) and "body" in entry:
            return _load_log_entry(uuid, entry)
    raise InputError(
        "input: expected a Rekor v1 LogEntry ({uuid: {body, ...}}), a Rekor v2 "
        "TransparencyLogEntry ({canonicalizedBody, inclusionProof, ...}) or a Sigstore bundle "
        f"(verificationMaterial.tlogEntries), got an object with keys {sorted(doc)[:6]}"
    )


def _load_log_entry(uuid: str, entry: object) -> LoadedEntry:
    """A Rekor v1 LogEntry, read exactly as the monitor reads the log's answers."""
    try:
        v1 = read_log_entry(uuid, entry, "entry")
    except LogResponseError as e:
        raise InputError(str(e)) from e
    proof = None
    if v1.tree_index is not None and v1.proof_tree_size is not None and v1.proof_root is not None:
        proof = Proof(
            index=v1.tree_index,
            size=v1.proof_tree_size,
            root=v1.proof_root,
            hashes=v1.proof_hashes,
            checkpoint=v1.checkpoint,
        )
    return LoadedEntry(
        source="Rekor v1 LogEntry",
        body=v1.body,
        uuid=v1.uuid,
        log_index=v1.log_index,
        integrated_time=v1.integrated_time,
        log_id=bytes.fromhex(v1.log_id),
        kind_version=None,
        proof=proof,
        signed_entry_timestamp=v1.set,
        v1=v1,
    )


def _load_bundle(doc: dict[str, object], material: dict[str, object]) -> LoadedEntry:
    media = doc.get("mediaType")
    entries = material["tlogEntries"]
    if not isinstance(entries, list) or not entries:
        raise InputError("bundle: verificationMaterial.tlogEntries: expected a non-empty array")
    notes: tuple[str, ...] = ()
    if len(entries) > 1:
        notes = (f"the bundle holds {len(entries)} log entries; inspecting the first",)
    source = f"Sigstore bundle ({media})" if isinstance(media, str) else "Sigstore bundle"
    return _load_tlog_entry(entries[0], "bundle: tlogEntries[0]", source, notes)


def _load_tlog_entry(entry: object, where: str, source: str, notes: tuple[str, ...]) -> LoadedEntry:
    """A TransparencyLogEntry (protobuf JSON), alone or from a bundle's tlogEntries."""
    body = _b64(_str_field(entry, "canonicalizedBody", where), f"{where}.canonicalizedBody")
    log_id = None
    if isinstance(entry, dict) and isinstance(entry.get("logId"), dict):
        log_id = _b64(_str_field(entry["logId"], "keyId", f"{where}.logId"), f"{where}.logId")
    kind_version = None
    if isinstance(entry, dict) and isinstance(entry.get("kindVersion"), dict):
        kv = entry["kindVersion"]
        kind_version = (
            _str_field(kv, "kind", f"{where}.kindVersion"),
            _str_field(kv, "version", f"{where}.kindVersion"),
        )
    integrated = 0
    if isinstance(entry, dict) and entry.get("integratedTime") is not None:
        integrated = _int_field(entry, "integratedTime", where, MAX_UNIX_TIME)
    sig = None
    promise = entry.get("inclusionPromise") if isinstance(entry, dict) else None
    if isinstance(promise, dict) and "signedEntryTimestamp" in promise:
        sig = _b64(
            _str_field(promise, "signedEntryTimestamp", f"{where}.inclusionPromise"),
            f"{where}.inclusionPromise.signedEntryTimestamp",
        )
    proof = None
    raw_proof = entry.get("inclusionProof") if isinstance(entry, dict) else None
    if raw_proof is not None:
        pwhere = f"{where}.inclusionProof"
        hashes = _field(raw_proof, "hashes", pwhere)
        if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
            raise InputError(f"{pwhere}.hashes: expected an array of base64 strings")
        checkpoint = None
        if isinstance(raw_proof, dict) and isinstance(raw_proof.get("checkpoint"), dict):
            checkpoint = _str_field(raw_proof["checkpoint"], "envelope", f"{pwhere}.checkpoint")
        proof = Proof(
            index=_int_field(raw_proof, "logIndex", pwhere),
            size=_int_field(raw_proof, "treeSize", pwhere),
            root=_b64(_str_field(raw_proof, "rootHash", pwhere), f"{pwhere}.rootHash"),
            hashes=tuple(_b64(h, f"{pwhere}.hashes[{i}]") for i, h in enumerate(hashes)),
            checkpoint=checkpoint,
        )
    log_index = _int_field(entry, "logIndex", where) if isinstance(entry, dict) else None
    return LoadedEntry(
        source=source,
        body=body,
        uuid=None,
        log_index=log_index,
        integrated_time=integrated,
        log_id=log_id,
        kind_version=kind_version,
        proof=proof,
        signed_entry_timestamp=sig,
        notes=notes,
    )


# --- logs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _KnownLog:
    label: str
    api: LogApi
    verifier: NoteVerifier
    log_id: bytes | None
    origin_ok: Callable[[str], str | None]
    """None when the checkpoint origin is acceptable, else what was expected."""
    trust: Callable[[], CertificateTrust | None]
    trust_label: str
    config_log: str | None = None


def _fixed_origin(expected: str) -> Callable[[str], str | None]:
    return lambda origin: None if origin == expected else repr(expected)


def _rekor_v1_origin(key_name: str) -> Callable[[str], str | None]:
    prefix = f"{key_name} - "

    def check(origin: str) -> str | None:
        tree = origin.removeprefix(prefix)
        ok = origin == REKOR_V1_LEGACY_ORIGIN or (
            tree != origin and _DECIMAL.fullmatch(tree) is not None
        )
        return None if ok else f'"{prefix}<tree ID>"'

    return check


def _spec_origin(
    expected_origin: Callable[[str], str | None], *, tiles: bool
) -> Callable[[str], str | None]:
    def check(origin: str) -> str | None:
        if not tiles and origin == REKOR_V1_LEGACY_ORIGIN:
            return None
        want = expected_origin("tiles" if tiles else origin.rpartition(" - ")[2])
        return None if want is None or origin == want else repr(want)

    return check


def _trusted_root_logs() -> list[_KnownLog]:

    known: list[_KnownLog] = []
    for root in _TRUST_ROOTS:
        for log in trusted_logs(root):
            known.append(
                _KnownLog(
                    label=f"{log.base_url} ({root} trust root)",
                    api=log.api,
                    verifier=log.verifier,
                    log_id=log.log_id,
                    origin_ok=(
                        _fixed_origin(log.expected_origin())
                        if log.api is LogApi.TILES
                        else _rekor_v1_origin(log.key_name)
                    ),
                    trust=functools.partial(fulcio_trust, root),
                    trust_label=f"the {root} trust root's Fulcio CAs",
                )
            )
    return known


def _config_logs(config: Config) -> list[_KnownLog]:
    from monitor.service.wiring import log_spec, trust_for_log  # noqa: PLC0415

    known: list[_KnownLog] = []
    for log in config.logs:
        if log.type.is_ct:  # holds certificates, not entries: its key checks SCTs
            continue
        spec = log_spec(config, log)
        api = LogApi(log.type.value)
        for verifier in spec.verifiers:
            roots = (
                f"fulcio_roots {log.fulcio_roots_file}"
                if log.fulcio_roots_file
                else f"the {log.trust_root.value} trust root's Fulcio CAs"
                if log.trust_root
                else "no Fulcio CAs (public_key pinned, no fulcio_roots)"
            )
            known.append(
                _KnownLog(
                    label=f"log {log.name!r} of {config.path.name} ({log.url})",
                    api=api,
                    verifier=verifier,
                    log_id=getattr(verifier, "key_id", None),
                    origin_ok=_spec_origin(spec.expected_origin, tiles=api is LogApi.TILES),
                    trust=functools.partial(trust_for_log, log),
                    trust_label=roots,
                    config_log=log.name,
                )
            )
    return known


def _find_log(loaded: LoadedEntry, candidates: Sequence[_KnownLog]) -> tuple[_KnownLog | None, str]:
    """The log the entry claims, by log ID, else by the checkpoint's signature (name, hint)."""
    if loaded.log_id is not None:
        for log in candidates:
            if log.log_id == loaded.log_id:
                return log, f"by log ID {loaded.log_id.hex()[:16]}..."
    checkpoint = loaded.proof.checkpoint if loaded.proof else None
    if checkpoint is not None:
        try:
            note = parse_signed_note(checkpoint)
        except MonitorError:
            note = None
        if note is not None:
            for sig in note.signatures:
                for log in candidates:
                    v = log.verifier
                    if (sig.name, sig.key_hint) == (v.name, v.key_hint):
                        return log, f"by the checkpoint's signature {sig.key_id}"
    wanted = loaded.log_id.hex() if loaded.log_id is not None else "none given"
    return None, (
        f"unknown log: log ID {wanted} is not a log of the production or staging trust root"
        + (" or of the configuration" if any(c.config_log for c in candidates) else "")
        + ", and no checkpoint signature names a known key"
    )


# --- verification -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One verification check: passed (True), failed (False) or not applicable (None)."""

    name: str
    ok: bool | None
    detail: str


def _verify(
    loaded: LoadedEntry, log: _KnownLog, extra_checkpoint: str | None
) -> tuple[list[Step], bool]:
    """The checks that apply, and whether something the log signed covers the entry. Each
    check is the one the scanner and the search path make (`check_uuid`,
    `monitor.core.entry_proof`), its error shown as the step's detail."""
    steps: list[Step] = []
    leaf = leaf_hash(loaded.body)
    if loaded.v1 is not None:
        try:
            check_uuid(loaded.v1, "entry")
        except EntryMismatch:
            steps.append(
                Step(
                    "uuid",
                    False,
                    f"the UUID {loaded.uuid} does not end in the body's leaf hash {leaf.hex()}",
                )
            )
        else:
            steps.append(Step("uuid", True, f"the UUID ends in the body's leaf hash {leaf.hex()}"))
    key_id = log.log_id.hex() if log.log_id is not None else ""
    evidence = loaded.evidence(key_id)
    covered = False
    proof = loaded.proof
    if proof is None:
        steps.append(Step("inclusion proof", None, "the input carries no inclusion proof"))
    else:
        proof_ok = False
        try:
            check_inclusion(evidence)
        except EntryProofError as e:
            steps.append(Step("inclusion proof", False, str(e)))
        else:
            proof_ok = True
            steps.append(
                Step(
                    "inclusion proof",
                    True,
                    f"leaf {proof.index} of a tree of {proof.size} hashes to root "
                    f"{proof.root.hex()}",
                )
            )
        notes = [("checkpoint", proof.checkpoint)] if proof.checkpoint else []
        if extra_checkpoint is not None:
            notes.append(("--checkpoint", extra_checkpoint))
        if not notes:
            steps.append(
                Step("checkpoint", None, "no checkpoint: the proof's root is not signed here")
            )
        for name, text in notes:
            step = _verify_checkpoint(name, text, evidence, log)
            steps.append(step)
            covered = covered or (step.ok is True and proof_ok)
    if loaded.signed_entry_timestamp is not None:
        step = _verify_set(evidence, log)
        steps.append(step)
        covered = covered or step.ok is True
    else:
        steps.append(Step("inclusion promise", None, "the input carries no signed entry timestamp"))
    return steps, covered


def _verify_checkpoint(name: str, text: str, evidence: EntryEvidence, log: _KnownLog) -> Step:
    # The origin is the log's own rule here (any tree of a Rekor v1 log), checked below.
    try:
        verified = check_proof_checkpoint(evidence, text, [log.verifier], None)
    except EntryProofError as e:
        return Step(name, False, f"{e}")
    cp = verified.checkpoint
    want = log.origin_ok(cp.origin)
    if want is not None:
        return Step(name, False, f"origin {cp.origin!r} is not the log's: expected {want}")
    signers = ", ".join(verified.signers)
    return Step(
        name,
        True,
        f"signed by {signers} ({log.verifier.key_hint.hex()}), origin {cp.origin!r}, "
        f"size {cp.size}, root matches the proof",
    )


def _verify_set(evidence: EntryEvidence, log: _KnownLog) -> Step:
    name = "inclusion promise"
    key = log.verifier
    if not isinstance(key, EcdsaNoteVerifier):
        return Step(
            name, False, "the log's key signs no entry timestamps (only Rekor v1 ECDSA keys do)"
        )
    try:
        verify_set(evidence, key)
    except EntryProofError as e:
        return Step(name, False, f"{e}")
    at = integration_time(evidence.integrated_time)
    return Step(
        name,
        True,
        f"signed entry timestamp verifies with the log's key: index {evidence.log_index}, "
        f"integrated {_when(at) if at else 'at no time (0)'}",
    )


def _when(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


# --- embedded SCTs ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _KnownCtLog:
    label: str
    log: TrustedCtLog


@functools.cache
def _known_ct_logs() -> dict[bytes, _KnownCtLog]:
    """The CT logs of the trusted roots the monitor knows, by log ID (first root wins)."""
    known: dict[bytes, _KnownCtLog] = {}
    for root in _TRUST_ROOTS:
        for ct in trusted_ct_logs(root):
            known.setdefault(ct.log_id, _KnownCtLog(f"{ct.base_url} ({root} trust root)", ct))
    return known


def _ct_logs(config: Config | None) -> dict[bytes, _KnownCtLog]:
    """The CT logs whose SCTs inspect checks: the `ct` and `static-ct` logs of `config` (their
    keys however configured), then those of the trusted roots; the first with a log ID wins.
    Raises ConfigError for a configured log whose key cannot be resolved."""
    from monitor.service.wiring import log_key_der  # noqa: PLC0415

    if config is None:
        return _known_ct_logs()
    known: dict[bytes, _KnownCtLog] = {}
    for log in config.logs:
        if not log.type.is_ct:
            continue
        key = log_key_der(log)
        ct = TrustedCtLog(log.url, hashlib.sha256(key).digest(), key, None, log.valid_until)
        label = f"log {log.name!r} of {config.path.name} ({log.url})"
        known.setdefault(ct.log_id, _KnownCtLog(label, ct))
    for log_id, trusted in _known_ct_logs().items():
        known.setdefault(log_id, trusted)
    return known


def _named_fulcio_trusts() -> list[CertificateTrust]:
    # Only to find a certificate's issuer key for the precertificate form; whether the
    # certificate is trusted is the chain line's business, with the log's own CAs.
    return [fulcio_trust(root) for root in _TRUST_ROOTS]


def _sct_when(sct: Sct) -> str:
    return sct.time.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _sct_checks(
    entry: Entry, trusts: Sequence[CertificateTrust], ct_logs: Mapping[bytes, _KnownCtLog]
) -> tuple[list[Step], list[list[dict[str, object]]]]:
    """One verification line per SCT embedded in a signer's certificate (and one saying a
    certificate embeds none), and per signer the SCTs as JSON-ready dicts; `ct_logs` are the
    CT logs known by log ID (`_ct_logs`)."""
    steps: list[Step] = []
    views: list[list[dict[str, object]]] = []
    several = len(entry.signers) > 1
    for index, signer in enumerate(entry.signers):
        found: list[dict[str, object]] = []
        views.append(found)
        cert = signer.certificate
        if cert is None:
            continue
        prefix = f"signer {index} " if several else ""
        try:
            scts = embedded_scts(cert.der)
        except SctParseError as e:
            steps.append(Step(f"{prefix}SCT", False, f"FAILED: embedded SCT list: {e}"))
            found.append({"status": "failed", "detail": f"embedded SCT list: {e}"})
            continue
        if not scts:
            steps.append(Step(f"{prefix}SCT", None, "the certificate embeds no SCTs"))
            continue
        issuers = _issuer_spkis(cert, trusts)
        for n, sct in enumerate(scts):
            name = f"{prefix}SCT" + (f" {n}" if len(scts) > 1 else "")
            known = ct_logs.get(sct.log_id)
            ok, status, label, why = _check_sct(sct, cert.der, issuers, known)
            head = f"log ID {sct.log_id.hex()}" + (f" = {label}" if label else "")
            steps.append(Step(name, ok, f"{head}, time {_sct_when(sct)}: {why}"))
            found.append(
                {
                    "log_id": sct.log_id.hex(),
                    "log": label,
                    "time": _sct_when(sct),
                    "timestamp_ms": sct.timestamp,
                    "status": status,
                    "detail": why,
                }
            )
    return steps, views


def _issuer_spkis(
    cert: CertificateIdentity, trusts: Sequence[CertificateTrust]
) -> tuple[bytes, ...]:
    """The DER SubjectPublicKeyInfos, exactly as their certificates hold them (the bytes CT
    hashes), of the Fulcio CA that signed `cert`; failing that, of every known CA with the name
    `cert` gives as its issuer. The fallback matters for an altered certificate: its CA's
    signature no longer holds, but its SCT still tells whether the CT log saw these bytes."""
    for trust in trusts:
        issuer = trust.issuer_of(cert)
        if issuer is not None:
            return _spkis([issuer])
    try:
        issuer_name = x509.load_der_x509_certificate(cert.der).issuer
    except ValueError:
        return ()
    return _spkis([ca for t in trusts for ca in t.authorities if ca.subject == issuer_name])


def _spkis(cas: Sequence[x509.Certificate]) -> tuple[bytes, ...]:
    found: list[bytes] = []
    for ca in cas:
        try:
            spki = tbs_parts(ca.public_bytes(Encoding.DER))[2]
        except ValueError:
            continue
        if spki not in found:
            found.append(spki)
    return tuple(found)


def _check_sct(
    sct: Sct, cert: bytes, issuers: Sequence[bytes], known: _KnownCtLog | None
) -> tuple[bool | None, str, str | None, str]:
    """(step mark, status, the known log's label, what to say) for one embedded SCT of
    `cert`, signed by `known` (None: a log no trusted root lists) over one of `issuers`' keys."""
    if known is None:
        roots = " or ".join(_TRUST_ROOTS)
        return None, "unknown_log", None, f"unknown log: not a CT log of the {roots} trust root"
    if not issuers:
        return (
            None,
            "not_checked",
            known.label,
            "not checked: the certificate's issuer is not a Fulcio CA the monitor knows, and "
            "the signed precertificate names the issuer's key",
        )
    error: MonitorError | None = None
    for issuer in issuers:
        try:
            verify_sct(sct, cert, issuer, known.log.key)
        except (SctParseError, SctVerificationError) as e:
            error = error or e
        else:
            error = None
            break
    if error is not None:
        return False, "failed", known.label, f"FAILED: {error}"
    if not known.log.valid_at(sct.time):
        start, end = known.log.valid_from, known.log.valid_until
        window = f"{start.isoformat() if start else '...'} .. {end.isoformat() if end else '...'}"
        return (
            False,
            "failed",
            known.label,
            f"FAILED: signed at a time outside the log key's validity in the trust root ({window})",
        )
    return True, "verified", known.label, "verified"


# --- the report -------------------------------------------------------------------------------


@dataclass
class Report:
    """What `inspect` found; `to_json()` and `to_text()` render it."""

    source: str
    log: str | None
    log_found_by: str
    steps: list[Step]
    verified: bool
    failure: str | None
    entry: Entry | None
    parse_error: str | None
    loaded: LoadedEntry
    signers: list[dict[str, object]] = field(default_factory=list)
    rules_note: str = ""
    evaluations: list[Evaluation] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        """A JSON-ready view."""
        loaded = self.loaded
        at = integration_time(loaded.integrated_time)
        return {
            "input": self.source,
            "log": self.log,
            "log_found_by": self.log_found_by,
            "uuid": loaded.uuid,
            "log_index": loaded.log_index,
            "integrated_time": _when(at) if at else None,
            "leaf_hash": leaf_hash(loaded.body).hex(),
            "verified": self.verified,
            "failure": self.failure,
            "checks": [{"check": s.name, "ok": s.ok, "detail": s.detail} for s in self.steps],
            "entry": (
                {
                    "kind": self.entry.kind,
                    "api_version": self.entry.api_version,
                    "skipped_count": self.entry.skipped_count,
                    "skipped_signatures": [
                        {"position": k.position, "reason": k.reason} for k in self.entry.skipped
                    ],
                }
                if self.entry
                else None
            ),
            "parse_error": self.parse_error,
            "signers": self.signers,
            "rules_note": self.rules_note,
            "rules": [
                {
                    "rule": ev.rule,
                    "signer_index": ev.signer_index,
                    "matched": ev.match is not None,
                    "outcome": ev.match.outcome.value if ev.match else None,
                    "reasons": list(ev.match.reasons) if ev.match else [],
                    "first_failure": (
                        {"matcher": ev.first_failure.matcher, "detail": ev.first_failure.detail}
                        if ev.first_failure
                        else None
                    ),
                    "checks": [
                        {"matcher": c.matcher, "passed": c.passed, "detail": c.detail}
                        for c in ev.checks
                    ],
                }
                for ev in self.evaluations
            ],
            "notes": list(loaded.notes),
        }

    def to_text(self) -> str:
        """Readable text, one fact per line."""
        loaded = self.loaded
        out: list[str] = [f"input:     {self.source}"]
        out.append(
            f"log:       {self.log or 'unknown'}"
            + (f" (found {self.log_found_by})" if self.log else "")
        )
        if loaded.uuid:
            out.append(f"uuid:      {loaded.uuid}")
        if loaded.log_index is not None:
            out.append(f"log index: {loaded.log_index}")
        at = integration_time(loaded.integrated_time)
        if at is not None:
            out.append(f"integrated: {_when(at)}")
        out.extend(f"note:      {n}" for n in loaded.notes)
        out.append("")
        out.append("verification:")
        for step in self.steps:
            mark = {True: "ok  ", False: "FAIL", None: "--  "}[step.ok]
            out.append(f"  {mark} {step.name}: {step.detail}")
        out.append(
            "  result: verified" if self.verified else f"  result: NOT VERIFIED: {self.failure}"
        )
        out.append("")
        if self.entry is None:
            out.append(f"entry: not parsed: {self.parse_error}")
        else:
            digest = self.entry.artifact_digest
            out.append(f"entry: {self.entry.kind} {self.entry.api_version}")
            out.append(
                "artifact digest: " + (f"{digest[0]}:{digest[1]}" if digest else "none recorded")
            )
            for i, signer in enumerate(self.signers):
                out.append(f"signer {i}:")
                out.extend(f"  {line}" for line in _signer_lines(signer))
            # Signatures that could not be read are not signers above: say so, or a decoy
            # that was skipped would be invisible here.
            out.extend(
                f"skipped signature at position {k.position}: {k.reason}"
                for k in self.entry.skipped
            )
            if self.entry.skipped_count > len(self.entry.skipped):
                more = self.entry.skipped_count - len(self.entry.skipped)
                out.append(f"... and {more} more skipped signatures")
        out.append("")
        out.append(f"rules: {self.rules_note}")
        for ev in self.evaluations:
            who = (
                f" (signer {ev.signer_index})" if self.entry and len(self.entry.signers) > 1 else ""
            )
            if ev.match is not None:
                out.append(f"  MATCH {ev.rule}{who}: {ev.match.outcome.value}")
                out.extend(f"        - {r}" for r in ev.match.reasons)
            else:
                first = ev.first_failure
                assert first is not None  # no match means a failed matcher
                out.append(f"  no    {ev.rule}{who}: {first.matcher}: {first.detail}")
                out.extend(
                    f"        {'+' if c.passed else '-'} {c.matcher}: {c.detail}"
                    for c in ev.checks
                    if c is not first
                )
        return "\n".join(out) + "\n"


def _signer_lines(signer: dict[str, object]) -> list[str]:
    lines: list[str] = []
    cert = signer.get("certificate")
    if isinstance(cert, dict):
        for san in cert.get("sans", []):
            lines.append(f"SAN:               {san}")
        lines.append(f"OIDC issuer:       {cert.get('issuer') or 'none'}")
        exts = cert.get("extensions")
        if isinstance(exts, dict):
            for name, value in exts.items():
                lines.append(f"  {name}: {value}")
        for oid in cert.get("unparseable_extensions", []):
            lines.append(f"  {oid}: (not decodable)")
        lines.append(f"certificate sha256: {cert.get('fingerprint_sha256')}")
        lines.append(f"issued by:         {cert.get('issuer_dn')}")
        lines.append(f"valid:             {cert.get('not_before')} .. {cert.get('not_after')}")
        lines.append(f"chains to Fulcio:  {signer.get('chain')}")
    else:
        lines.append(f"no certificate: a bare {signer.get('key_format')} public key")
    lines.append(f"key sha256:        {signer.get('key_fingerprint')}")
    return lines


def _signer_view(
    entry: Entry,
    index: int,
    trust: CertificateTrust | None,
    trust_label: str,
    at: datetime | None,
) -> dict[str, object]:
    signer = entry.signers[index]
    view: dict[str, object] = {
        "identity": identity_summary(entry, index),
        "key_format": signer.key_format,
        "key_fingerprint": signer.public_key_sha256,
    }
    cert = signer.certificate
    if cert is not None:
        # Both spellings a rule may use: the config name (if any) and the dotted OID.
        named = {
            (f"{_OID_NAMES[oid]} ({oid})" if oid in _OID_NAMES else oid): value
            for oid, value in sorted(cert.extension_oids.items(), key=lambda kv: _oid_key(kv[0]))
        }
        view["certificate"] = {
            "sans": [f"{s.kind}:{s.value}" for s in cert.sans],
            "issuer": cert.issuer,
            "extensions": named,
            "unparseable_extensions": list(cert.unparseable_extensions),
            "fingerprint_sha256": cert.fingerprint_sha256,
            "issuer_dn": cert.issuer_dn,
            "not_before": cert.not_before.isoformat(),
            "not_after": cert.not_after.isoformat(),
        }
        view["chain"] = _chain_text(cert, trust, trust_label, at)
        view["trusted"] = trust is not None and trust.is_trusted(cert, at)
    return view


_OID_NAMES = {oid: name for name, oid in FULCIO_EXTENSIONS.items()}


def _oid_key(oid: str) -> tuple[int, ...]:
    return tuple(int(arc) for arc in oid.split("."))


def _chain_text(
    cert: CertificateIdentity, trust: CertificateTrust | None, label: str, at: datetime | None
) -> str:
    if trust is None:
        return f"no: {label}"
    issuer = trust.issuer_of(cert)
    if issuer is None:
        return f"no: not issued by {label}"
    name = issuer.subject.rfc4514_string()
    if trust.is_trusted(cert, at):
        return f"yes: issued by {name} ({label})"
    return (
        f"no: issued by {name} ({label}), but not valid at the integration time "
        f"{at.isoformat() if at else '?'}"
    )


def inspect_entry(
    data: bytes,
    *,
    config: Config | None = None,
    config_note: str = "",
    log_name: str | None = None,
    checkpoint: str | None = None,
) -> Report:
    """Verify and explain one entry. Raises `InputError` for unusable input, `ConfigError` for
    an unknown `log_name`."""
    loaded = load_input(data)
    candidates: list[_KnownLog] = []
    if config is not None:
        candidates.extend(_config_logs(config))
        if log_name is not None:
            candidates = [c for c in candidates if c.config_log == log_name]
            if not candidates:
                known = ", ".join(repr(log.name) for log in config.logs)
                raise ConfigError(f"--log: no [[log]] named {log_name!r} (configured: {known})")
    if log_name is None:
        candidates.extend(_trusted_root_logs())
    log, found_by = _find_log(loaded, candidates)

    steps: list[Step] = []
    verified = False
    failure: str | None = None
    if log is None:
        failure = found_by
        steps.append(Step("log", False, found_by))
    else:
        steps, covered = _verify(loaded, log, checkpoint)
        failed = [s for s in steps if s.ok is False]
        if failed:
            failure = "; ".join(f"{s.name}: {s.detail}" for s in failed)
        elif not covered:
            failure = (
                "nothing signed by the log covers this entry: no checkpoint for the proof's root "
                "and no signed entry timestamp"
            )
        else:
            verified = True

    entry = None
    parse_error = None
    try:
        entry = parse_entry(loaded.body)
    except EntryParseError as e:
        parse_error = str(e)
    if (
        entry is not None
        and loaded.kind_version is not None
        and loaded.kind_version != (entry.kind, entry.api_version)
    ):
        steps.append(
            Step(
                "kind",
                False,
                f"the bundle says {'/'.join(loaded.kind_version)}, the body is "
                f"{entry.kind}/{entry.api_version}",
            )
        )
        verified = False
        failure = "; ".join(f"{s.name}: {s.detail}" for s in steps if s.ok is False)

    at = integration_time(loaded.integrated_time)
    trust = log.trust() if log is not None else None
    trust_label = log.trust_label if log is not None else "no log identified"
    scts: list[list[dict[str, object]]] = []
    if entry is not None:
        issuers = [trust] if trust is not None else []
        sct_steps, scts = _sct_checks(entry, issuers + _named_fulcio_trusts(), _ct_logs(config))
        steps.extend(sct_steps)
        if any(s.ok is False for s in sct_steps):
            verified = False
            failure = "; ".join(f"{s.name}: {s.detail}" for s in steps if s.ok is False)
    report = Report(
        source=loaded.source,
        log=log.label if log else None,
        log_found_by=found_by if log else "",
        steps=steps,
        verified=verified,
        failure=failure,
        entry=entry,
        parse_error=parse_error,
        loaded=loaded,
    )
    if entry is None:
        report.rules_note = "not evaluated: the entry did not parse"
        return report
    report.signers = [
        _signer_view(entry, i, trust, trust_label, at) for i in range(len(entry.signers))
    ]
    for view, found in zip(report.signers, scts, strict=True):
        if "certificate" in view:
            view["scts"] = found
    if config is None:
        report.rules_note = config_note or "no configuration: no rules evaluated"
        return report
    rule_log = log_name or (log.config_log if log else None)
    if rule_log is not None:
        rules = config.rules_for_log(rule_log)
        report.rules_note = f"{len(rules)} rule(s) of {config.path.name} apply to log {rule_log!r}"
    else:
        rules = config.watches
        report.rules_note = (
            f"the entry's log is not configured in {config.path.name}; all {len(rules)} rule(s) "
            "shown"
        )
    report.evaluations = Matcher(rules, trust).explain(entry, at=at)
    return report
