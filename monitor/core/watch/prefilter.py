"""The pre-filter: proves from an entry's raw body, before parsing it, that no rule can match.

A rule's pre-filter is the list of conditions its matchers give (`RuleMatcher.conditions`); each
condition holds whenever the matcher matches some signer of the body's entry, and is cheap to
test on the raw bytes. `PreFilter.might_match` answers False only when, for every rule, some
condition fails: provable from the body's bytes. `PreFilter.select` answers the same for a whole
chunk of bodies at once (what the scanner calls).

* Every certificate `parse_entry` reads is a JSON string of the body holding strict base64 of a
  DER certificate or of a PEM (whose first block is the certificate). So each body string of at
  least `_MIN_CERT_BASE64` characters whose first digit can start one (`_CERT_DIGITS`: a DER
  SEQUENCE or a PEM's first byte) is decoded once (lenient base64, which equals the strict
  decoding wherever that succeeds), and so is the first PEM block in each: the *decoded view*.
  A certificate's bytes are all in it.
* Bytes a certificate must contain for a rule to match (literal parts of `issuer`, `email`,
  globs, and the literals every match of a `san_regex` contains, read by a conservative scan of
  RE2 syntax, `_LiteralScan`) are searched in the decoded view, with `in`. A regex alternation
  gives a condition that holds when one of its branches' literals all occur; an alternation of
  plain texts is first joined to the literal text around it (`_required`).
* Case-insensitive literals are searched in the decoded view's ASCII lowercase. Letters i, k and
  s are left out of case-insensitive literals (the literal is split there): Unicode has
  non-ASCII characters (U+0130, U+0131, U+017F, U+212A) that equal them case-insensitively,
  with other bytes.
* `san` and `san_regex` also read the subject alternative names straight from the DER of each
  decoded string (`_san_values`, superset of what the certificate parser returns, or "unsure")
  and run the rule's own pattern on them: a rule with no literal at all (`san_regex =
  ".*[0-9]{7}.*"` with `any_issuer`) is still decided without parsing the entry. In a body
  without a PEM, only the base64 around each place the extension's OID can be is decoded
  (`_base64_sans`).
* A body with a backslash (a JSON escape could hide a byte) passes, as does every body when a
  rule has no condition (e.g. `san = "*"` with `any_issuer`: it matches every certificate).
  Fingerprint-only rules hash every base64 string of the body (slower, still cheaper than
  parsing); digest rules search the hex (any case) and base64 forms in the raw body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from abc import ABC, abstractmethod
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

import re2

from monitor.core.der import read_tlv

if TYPE_CHECKING:
    from monitor.core.watch.patterns import Pattern

_UNSAFE_FOLD: Final = frozenset("iks")
"""ASCII letters that a non-ASCII character equals case-insensitively (str.lower or re's
IGNORECASE): U+0130 and U+0131 (i), U+212A (k), U+017F (s). Case-insensitive literals are
split there."""
_MIN_FRAGMENT: Final = 4
"""Shorter literals reject too little to be worth a search."""
_PEM_HEADER: Final = b"-----BEGIN "
_MIN_CERT_BASE64: Final = 64
"""Body strings shorter than this are not decoded: 64 base64 digits are 48 bytes, and no
certificate is that small (a P-256 SubjectPublicKeyInfo alone is 91 bytes)."""


_B64: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _b64_digits(data: bytes, *, fold: bool) -> tuple[list[bytes], ...]:
    """The base64 digits that `data`, or with `fold` any ASCII case variant of it, alone
    determines at each of the three byte alignments, as the digits each position allows (one,
    or two where case matters): when such a text occurs in a byte string, the digits of one
    alignment (`_b64_render` makes them an RE2 pattern) occur in that string's base64.

    A byte's ASCII case is bit 0x20, which lands in exactly one base64 digit (value bit 3 in the
    first digit of a quad, bit 1 in the second, bit 5 in the fourth; the third holds none), and
    each digit holds the case bit of at most one byte. So the digits of every case variant are
    those of the lowercase and the uppercase text, each digit independently: two digits where
    they differ, the digit itself elsewhere.
    """
    lower = _b64_cores(data.lower() if fold else data)
    upper = _b64_cores(data.upper()) if fold else lower
    return tuple(
        [bytes([a]) if a == b else bytes([a, b]) for a, b in zip(lo, up, strict=True)]
        for lo, up in zip(lower, upper, strict=True)
    )


def _b64_render(digits: Sequence[bytes]) -> bytes:
    """The RE2 pattern of `_b64_digits` positions: a digit, or a class of two."""
    return b"".join(re.escape(d) if len(d) == 1 else b"[" + re.escape(d) + b"]" for d in digits)


def _b64_cores(data: bytes) -> tuple[bytes, ...]:
    """The base64 digits that `data` alone determines, at each of the three byte alignments.

    When `data` occurs in a byte string, one of these occurs in its base64 (digits that mix in
    neighbouring bytes are left off each end).
    """
    cores: list[bytes] = []
    for align in range(3):
        text = base64.b64encode(bytes(align) + data)
        # Digit i covers bits [6i, 6i + 6); data covers [8 * align, 8 * (align + len)).
        cores.append(text[(8 * align + 5) // 6 : (8 * (align + len(data))) // 6])
    return tuple(cores)


def _runs(text: str, keep: Any) -> list[str]:
    runs: list[str] = []
    current: list[str] = []
    for ch in text:
        if keep(ch):
            current.append(ch)
        else:
            runs.append("".join(current))
            current = []
    runs.append("".join(current))
    return [r for r in runs if len(r) >= _MIN_FRAGMENT]


def _fold_fragments(literal: str) -> list[str]:
    """Lowercase ASCII pieces of a case-insensitive literal that any match must contain."""
    return _runs(literal.lower(), lambda ch: ch.isascii() and ch not in _UNSAFE_FOLD)


def _exact_fragments(literal: str) -> list[str]:
    """ASCII pieces of a case-sensitive literal."""
    return _runs(literal, str.isascii)


def _glob_literals(glob: str) -> list[str]:
    return [part for part in re.split(r"\*+", glob) if part]


class Required:
    """What every match of a regex contains: all of `runs`, and for each of `choices` one of its
    branches' requirements."""

    __slots__ = ("choices", "runs")

    def __init__(self, runs: list[str], choices: list[list[Required]]) -> None:
        self.runs = runs
        self.choices = choices


_MAX_LITERAL_SET: Final = 16
"""At most this many texts stand for one place in a regex (`_required`): past it, a literal
run and the alternation next to it are required apart, as a run and a choice."""


def _literal_set(items: list[Any]) -> list[str] | None:
    """Every text the items match (they are only characters and alternations of such, at most
    `_MAX_LITERAL_SET` texts), else None."""
    texts: list[str] | None = [""]
    for item in items:
        if texts is None:
            return None
        texts = _followed(texts, item)
    return texts


def _followed(texts: list[str], item: Any) -> list[str] | None:
    """`texts`, each followed by each text `item` matches (a character, or an alternation of
    plain texts) when that is at most `_MAX_LITERAL_SET` texts, else None."""
    if isinstance(item, str):
        return [t + item for t in texts]
    options = _alternation_set(item) if isinstance(item, list) else None
    if options is None or len(texts) * len(options) > _MAX_LITERAL_SET:
        return None
    return [t + o for t in texts for o in options]


def _alternation_set(branches: list[list[Any]]) -> list[str] | None:
    """`_literal_set` of an unquantified alternation: the union of its branches'."""
    texts: list[str] = []
    for branch in branches:
        found = _literal_set(branch)
        if found is None:
            return None
        texts.extend(found)
    texts = list(dict.fromkeys(texts))
    return texts if len(texts) <= _MAX_LITERAL_SET else None


def _required(items: list[Any]) -> Required:
    """What every match of the concatenation `items` (`_LiteralScan.sequence`) contains.

    A literal run is extended across an alternation of plain texts next to it, as RE2's own
    prefilter does: `https://github\\.com/(acme|initech)/` requires one of
    "https://github.com/acme/" and "https://github.com/initech/", each longer (rarer) than the
    run or a branch alone. Sound because those characters are consecutive in every match: each
    match holds the run, then exactly one branch's text, then the characters after.
    """
    runs: list[str] = []
    choices: list[list[Required]] = []
    current = [""]  # the texts ending here, consecutive in every match: one is in each match

    def close() -> None:
        if len(current) == 1:
            runs.append(current[0])
        else:  # empty text requires nothing: `_required_conditions` drops the choice
            choices.append([Required([t] if t else [], []) for t in current])

    for item in items:
        followed = _followed(current, item)
        if followed is not None:
            current = followed
            continue
        close()
        options = _alternation_set(item) if isinstance(item, list) else None
        current = [""]
        if options is not None:
            current = options  # too many together: the alternation starts a new set
        elif isinstance(item, list):
            choices.append([_required(branch) for branch in item])
    close()
    return Required([r for r in runs if r], choices)


def _regex_requirement(regex: str) -> tuple[Required, bool]:
    """(what every match of `regex` contains, whether its literals may match in any case).

    `regex` has compiled with RE2. A conservative scan of its syntax (`_LiteralScan`), not any
    engine's internals: anything the scan does not follow requires nothing, which only costs
    speed.
    """
    scan = _LiteralScan(regex)
    try:
        items = scan.sequence()
        if scan.pos != len(regex):
            raise _Opaque  # a stray ")": RE2 refuses it, so never here
    except _Opaque:
        return Required([], []), True
    return _required(items), scan.fold


def _regex_literals(regex: str) -> tuple[list[str], bool]:
    """(literal runs every match of `regex` must contain, whether they may match in any case):
    the runs of `_regex_requirement` outside any alternation (and not joined to one)."""
    required, fold = _regex_requirement(regex)
    return required.runs, fold


class _Opaque(Exception):
    """The literal scan met syntax it does not follow."""


_REPEAT: Final = re.compile(r"\{[0-9]+(?:,[0-9]*)?\}")
"""RE2's counted repetition; any other "{" is a literal."""
_GROUP_OPEN: Final = re.compile(r"\?(?:P?<[A-Za-z0-9_]+>|:|([imsU-]+)([:)]))")
_SINGLE_ESCAPES: Final = frozenset("dDsSwWbBAzafnrtvC")


class _LiteralScan:
    """Reads RE2 syntax for the characters every match must contain, in order.

    `sequence` returns the items of a concatenation: a character every match contains at that
    point, None for anything else (a class, `.`, an anchor, a quantified atom), or for an
    unquantified alternation the items of each branch. An unquantified group without
    alternation contributes its own items, as in `(?:https://github\\.com/org)/.*`. `fold`
    becomes True when an `i` flag appears anywhere (searching a literal in any case is always
    sound, only weaker).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.fold = False

    def sequence(self) -> list[Any]:
        """Items up to an unmatched ")" or the end; one alternation item when it has a "|"."""
        branches: list[list[Any]] = [[]]
        text = self.text
        while self.pos < len(text) and text[self.pos] != ")":
            if text[self.pos] == "|":
                branches.append([])
                self.pos += 1
                continue
            atom = self.atom()
            branches[-1].extend([None] if self.quantifier() else atom)
        return branches[0] if len(branches) == 1 else [branches]

    def atom(self) -> list[Any]:
        text, ch = self.text, self.text[self.pos]
        if ch == "(":
            return self.group()
        if ch == "[":
            self.char_class()
            return [None]
        if ch == "\\":
            return [self.escape()]
        if ch in "*+?" or (ch == "{" and _REPEAT.match(text, self.pos)):
            raise _Opaque  # a repetition of nothing: RE2 refuses it
        self.pos += 1
        return [None] if ch in ".^$" else [ch]

    def quantifier(self) -> bool:
        """Consume the repetition operators after an atom; whether there were any."""
        text, found = self.text, False
        while self.pos < len(text):
            repeat = _REPEAT.match(text, self.pos)
            if repeat is not None:
                self.pos = repeat.end()
            elif text[self.pos] in "*+?":
                self.pos += 1
            else:
                break
            found = True
        return found

    def group(self) -> list[Any]:
        self.pos += 1  # "("
        if self.text.startswith("?", self.pos):
            head = _GROUP_OPEN.match(self.text, self.pos)
            if head is None:
                raise _Opaque
            self.pos = head.end()
            flags, close = head.group(1), head.group(2)
            if flags is not None and "i" in flags:
                self.fold = True
            if close == ")":
                return [None]  # flags for the rest of the enclosing group: zero-width
        inner = self.sequence()
        if not self.text.startswith(")", self.pos):
            raise _Opaque
        self.pos += 1
        return inner

    def char_class(self) -> None:
        """Skip a bracketed class as RE2 reads it: "]" first is a member, "[:name:]" nests."""
        text = self.text
        self.pos += 1
        if text.startswith("^", self.pos):
            self.pos += 1
        first = True
        while self.pos < len(text) and (text[self.pos] != "]" or first):
            first = False
            if text.startswith("[:", self.pos):
                end = text.find(":]", self.pos + 2)
                if end >= 0:
                    self.pos = end + 2
                    continue
            if text[self.pos] == "\\":
                self.escape()
            else:
                self.pos += 1
        if self.pos >= len(text):
            raise _Opaque
        self.pos += 1

    def escape(self) -> str | None:
        """Consume one escape; the character it stands for when it is literal punctuation."""
        text = self.text
        if self.pos + 1 >= len(text):
            raise _Opaque
        ch = text[self.pos + 1]
        self.pos += 2
        if ch.isascii() and not ch.isalnum():
            return ch  # RE2: a backslash before any ASCII non-word character is that character
        if ch in "pPx" and text.startswith("{", self.pos):
            end = text.find("}", self.pos)
            if end < 0:
                raise _Opaque
            self.pos = end + 1
        elif ch in "pP":
            self.pos += 1
        elif ch == "x":
            self.pos += 2
        elif ch in "01234567":
            last = self.pos + 2  # RE2 reads at most three octal digits
            while self.pos < min(last, len(text)) and text[self.pos] in "01234567":
                self.pos += 1
        elif ch not in _SINGLE_ESCAPES:
            raise _Opaque  # e.g. \\Q...\\E
        return None


class Views:
    """Lazily computed forms of one raw body, shared by every condition (and every rule)."""

    __slots__ = (
        "_decoded",
        "_folded",
        "_hashes",
        "_lower",
        "_pieces",
        "_sans",
        "_sans_read",
        "body",
    )

    def __init__(self, body: bytes) -> None:
        self.body = body
        self._lower: bytes | None = None
        self._pieces: list[bytes] | None = None
        self._decoded: bytes | None = None
        self._folded: bytes | None = None
        self._sans: list[str] | None = None
        self._sans_read = False
        self._hashes: frozenset[str] | None = None

    def lower(self) -> bytes:
        """The raw body, ASCII lowercase."""
        if self._lower is None:
            self._lower = self.body.lower()
        return self._lower

    def pieces(self) -> list[bytes]:
        """Each body string `_CERT_STRING` finds, base64-decoded, and the DER of the first PEM
        block of each that holds one: every certificate `parse_entry` can read from the body is
        one of them (the module docstring says why)."""
        if self._pieces is None:
            self._pieces = _decode_strings(self.body)
        return self._pieces

    def decoded(self) -> bytes:
        """`pieces`, joined by newlines (a literal found across two only costs speed)."""
        if self._decoded is None:
            self._decoded = b"\n".join(self.pieces())
        return self._decoded

    def folded(self) -> bytes:
        """`decoded` in ASCII lowercase."""
        if self._folded is None:
            self._folded = self.decoded().lower()
        return self._folded

    def sans(self) -> list[str] | None:
        """The identity SAN values (email, URI, DNS) of every certificate among `pieces`, or
        None when some piece may hold one that `_san_values` cannot read (an otherName, odd
        DER): then nothing can be ruled out by SAN."""
        if self._sans_read:
            return self._sans
        if self._pieces is None and _PEM_HINT not in self.body:
            # No PEM: every certificate is DER in base64, read where its SAN extension is
            # rather than decoding every string (`pieces` when a literal needed them first).
            self._sans = _base64_sans(self.body)
        else:
            found: list[str] = []
            for piece in self.pieces():
                values = _san_values(piece)
                if values is None:
                    break
                found.extend(values)
            else:
                self._sans = found
        self._sans_read = True
        return self._sans

    def hashes(self) -> frozenset[str]:
        """SHA-256 (hex) of every base64 string of the body decoded, of the first PEM block in
        each, and of the SubjectPublicKeyInfo of each that is a certificate: every certificate
        and key fingerprint the entry can have."""
        if self._hashes is None:
            from monitor.core.certs import tbs_parts  # noqa: PLC0415 - keep `watch` import light

            found: set[str] = set()
            # Without backslashes (checked first), odd pieces are exactly the JSON strings.
            for piece in self.body.split(b'"')[1::2]:
                try:
                    raw = binascii.a2b_base64(piece)
                except (binascii.Error, ValueError):
                    continue
                candidates = [raw]
                block = _first_pem_block(raw)
                if block is not None:
                    candidates.append(block)
                for der in candidates:
                    found.add(hashlib.sha256(der).hexdigest())
                    try:
                        spki = tbs_parts(der)[2]
                    except (ValueError, IndexError):
                        continue
                    found.add(hashlib.sha256(spki).hexdigest())
            self._hashes = frozenset(found)
        return self._hashes


_CERT_FIRST_BYTES: Final = b"0 \t\n\r\x0b\x0c-"
"""What the bytes of a certificate `parse_entry` reads start with: a DER SEQUENCE (0x30), or a
PEM, which `monitor.core.certs` reads when its first 64 bytes, ASCII whitespace stripped, start
with "-----BEGIN "."""
_CERT_DIGITS: Final = bytes(sorted({_B64[b >> 2] for b in _CERT_FIRST_BYTES}))
"""The first base64 digit of a string holding a certificate (its first byte's top six bits)."""
_CERT_STRING: Final = re.compile(b'"([' + _CERT_DIGITS + b'][^"]{%d,})' % (_MIN_CERT_BASE64 - 1))
"""A body string that may hold a certificate. Every one is found without pairing quotes: in
JSON a letter right after a '"' is a string's first character, and with no backslash the
string ends at the next '"'."""


def _decode_strings(body: bytes) -> list[bytes]:
    """See `Views.pieces`: the strings `_CERT_STRING` finds (the body has no backslash)."""
    out: list[bytes] = []
    a2b = binascii.a2b_base64
    for piece in _CERT_STRING.findall(body):
        try:
            raw = a2b(piece)
        except (binascii.Error, ValueError):
            continue  # not base64: parse_entry's strict decoding refuses it too
        out.append(raw)
        if _PEM_HEADER in raw:
            block = _first_pem_block(raw)
            if block is not None:
                out.append(block)
    return out


def _first_pem_block(data: bytes) -> bytes | None:
    """The DER of the first PEM block, located exactly as `monitor.core.certs` does; None if
    none."""
    begin = data.find(_PEM_HEADER)
    if begin < 0:
        return None
    label_end = data.find(b"-----", begin + 11)
    if label_end < 0:
        return None
    end = data.find(b"-----END " + data[begin + 11 : label_end] + b"-----", label_end + 5)
    if end < 0:
        return None
    try:
        return binascii.a2b_base64(data[label_end + 5 : end])
    except (binascii.Error, ValueError):
        return None


_PEM_NEEDLES: Final = _b64_cores(_PEM_HEADER)
_PEM_HINT: Final = b"LS0t"
"""In the base64 of "-----" at every alignment (a test checks it against `_PEM_NEEDLES`): a body
without it holds no PEM in a base64 string."""


# --- subject alternative names straight from the DER ------------------------------------------

_SAN_OID: Final = b"\x06\x03\x55\x1d\x11"
"""The DER of the OID 2.5.29.17 (subjectAltName)."""
_SAN_ARC: Final = _SAN_OID[2:]
_IDENTITY_TAGS: Final = frozenset({0x81, 0x82, 0x86})
"""GeneralName choices `identity_values` reads that are plain IA5Strings: rfc822Name, dNSName,
uniformResourceIdentifier. An otherName (0xA0) is also read there, decoded from several string
types: met, it makes the answer "unsure"."""
_OTHER_TAGS: Final = frozenset({0x87, 0x88, 0xA3, 0xA4, 0xA5})
"""GeneralName choices that are never identity values (IP address, registered ID, x400Address,
directoryName, ediPartyName)."""


def _san_values(der: bytes) -> list[str] | None:
    """The email, DNS and URI SAN values of every subjectAltName extension `der` may hold
    (a superset: each place the extension's OID occurs is read as one), or None when unsure.

    Sound for the certificate parser's `identity_values`: a certificate it reads has one
    subjectAltName extension, DER-encoded, so its OID bytes occur there and are read here;
    values other than ASCII IA5 strings, otherNames, or any occurrence that does not read as
    an extension make the answer None (unsure), never a smaller list.
    """
    values: list[str] = []
    end = len(der)
    # Every occurrence of the arc, one scan: the arc cannot overlap itself.
    pos = der.find(_SAN_ARC)
    for _ in range(_MAX_SAN_EXTENSIONS + 1):
        if pos < 0:
            return values
        if pos < 2 or der[pos - 2 : pos] != _SAN_OID[:2]:
            return None  # the arc in another encoding or place: do not guess
        try:
            if not _read_san_extension(der, pos + len(_SAN_ARC), end, values):
                return None
        except ValueError:
            return None
        pos = der.find(_SAN_ARC, pos + len(_SAN_ARC))
    return None  # over `_MAX_SAN_EXTENSIONS`


_MAX_SAN_EXTENSIONS: Final = 64
"""More places that read as a subjectAltName extension than this (or, read from base64, more
occurrences of its digits) make the SANs unsure (the body passes): reading one costs up to its
length, and decoys nested in one another would cost the square of the body's size. A
certificate has one; a body, one per signature."""


_SAN_OID_CORES: Final = tuple(
    (core, (8 * align + 5) // 6) for align, core in enumerate(_b64_cores(_SAN_OID))
)
"""For each byte alignment of `_SAN_OID` in a decoded string, the base64 digits it alone
determines (`_b64_cores`) and how many digits of their quad come before them."""
_SAN_WINDOW: Final = 256
"""Base64 digits decoded from the OID on (192 bytes: a typical extension, OID to last name);
a longer extension decodes twice as many, as often as it takes."""


class _Budget:
    """What is left to spend (`_base64_sans`: digits to decode)."""

    __slots__ = ("left",)

    def __init__(self, left: int) -> None:
        self.left = left

    def spend(self, n: int) -> bool:
        """Take `n` from what is left; False once that passes below zero."""
        self.left -= n
        return self.left >= 0


def _base64_sans(body: bytes) -> list[str] | None:
    """The identity SAN values of every certificate in `body`'s base64 strings, as
    `Views.sans`, for a body without backslash or `_PEM_HINT`, decoding only the extensions.

    Sound: without a PEM, each certificate `parse_entry` reads is a body string holding strict
    base64 of its DER. The certificate parser reads DER only, so the certificate's
    subjectAltName extension starts with the bytes `_SAN_OID` (a test checks that it refuses
    the OID in other encodings). Those bytes at byte k of a string's decoding put
    `_SAN_OID_CORES[k % 3]` at digit 4 * (k // 3) + lead of the string: each such place is
    found, decoded and read as `_san_values` reads it. A place where the digits occur but do
    not decode to the OID only costs a decoding.
    """
    values: list[str] = []
    hits = 0
    # What decoding may cost in all: decoys nested in one another would otherwise cost the
    # square of the body's size (each read from its own place, with growing windows).
    budget = _Budget(2 * len(body) + _SAN_WINDOW * _MAX_SAN_EXTENSIONS)
    for align, (core, lead) in enumerate(_SAN_OID_CORES):
        hit = body.find(core)
        looked, start = 0, 0  # the string start found for the body before `looked`
        while hit >= 0:
            # Every occurrence counts, aligned or not: each costs a lookup, and a real
            # certificate holds the digits once.
            hits += 1
            if hits > _MAX_SAN_EXTENSIONS:
                return None
            # The string's first digit: the last quote before the hit, looked for only after
            # the previous hit (hits come in order: each byte is looked at once).
            quote = body.rfind(b'"', looked, hit)
            if quote >= 0:
                start = quote + 1
            looked = hit
            quad = hit - lead
            aligned = quad >= start and not (quad - start) % 4
            if aligned and not _read_base64_extension(body, quad, align, values, budget):
                return None
            hit = body.find(core, hit + 1)
    return values


def _read_base64_extension(
    body: bytes, quad: int, align: int, values: list[str], budget: _Budget
) -> bool:
    """Append the identity values of the extension whose OID may start at byte `align` of the
    base64 quad at `quad` of `body` (inside a string); False when unsure, or when decoding it
    would pass what is left of `budget` (digits)."""
    stop = body.find(b'"', quad)
    if stop < 0:
        stop = len(body)
    cut = min(stop, quad + _SAN_WINDOW)
    while True:
        if not budget.spend(cut - quad):
            return False
        try:
            der = binascii.a2b_base64(body[quad:cut])
        except (binascii.Error, ValueError):
            return False
        if der[align : align + len(_SAN_OID)] != _SAN_OID:
            return True  # the digits, not the bytes: no OID here
        found: list[str] = []
        try:
            if not _read_san_extension(der, align + len(_SAN_OID), len(der), found):
                return False
        except ValueError:
            if cut == stop:
                return False
            # Longer than the window (or malformed): twice as much, so that a long extension
            # costs at most twice its length.
            cut = min(stop, quad + 2 * (cut - quad))
            continue
        values.extend(found)
        return True


def _read_san_extension(der: bytes, pos: int, end: int, values: list[str]) -> bool:
    """Append the identity values of the extension whose OID ends at `pos` (its elements
    within `end`); False when unsure (see `_san_values`), ValueError when it does not fit."""
    if pos < end and der[pos] == 0x01:  # critical BOOLEAN
        pos = read_tlv(der, pos, end)[2]
    tag, start, stop = read_tlv(der, pos, end)
    if tag != 0x04:
        return False
    tag, start, stop = read_tlv(der, start, stop)
    if tag != 0x30:
        return False
    while start < stop:
        tag, vstart, vend = read_tlv(der, start, stop)
        if tag in _IDENTITY_TAGS:
            raw = der[vstart:vend]
            if not raw.isascii():
                return False
            values.append(raw.decode("ascii"))
        elif tag not in _OTHER_TAGS:
            return False
        start = vend
    return True


class Condition(ABC):
    """A test on a raw body that holds whenever the rule it belongs to matches the entry.

    `cost` is a rough relative price of `test`; `tests` / `passes` are sampled counts that order
    a rule's conditions (cheap and rejecting first). Their races between threads only cost speed.
    """

    __slots__ = ("cost", "passes", "tests", "weight")

    def __init__(self, cost: int, weight: int) -> None:
        self.cost = cost
        self.weight = weight
        self.tests = 0
        self.passes = 0

    @abstractmethod
    def test(self, views: Views) -> bool:
        """True unless the body provably lacks what the condition needs."""

    def expected_cost(self) -> float:
        """Cost per rejection, the classic order for a conjunction of tests."""
        pass_rate = (self.passes + 1) / (self.tests + 2)
        return self.cost / max(1.0 - pass_rate, 0.001)


class _Text(Condition):
    """Some certificate must contain `literal` (as bytes): searched in the decoded view.

    `fold`: the literal (lowercase ASCII without i, k, s) may appear in any ASCII case; it is
    searched in the decoded view's ASCII lowercase.
    """

    __slots__ = ("b64", "fold", "needle")

    def __init__(self, literal: str, *, fold: bool, weight: int) -> None:
        super().__init__(2 if fold else 1, weight)
        self.fold = fold
        self.needle = literal.encode("ascii")
        self.b64 = _b64_digits(self.needle, fold=fold)
        """What `PreFilter.select` searches for in a chunk of raw bodies (`_b64_digits`): one
        alignment's digits occur in a body whose certificates, as DER in base64 strings, hold
        the literal."""

    def test(self, views: Views) -> bool:
        return self.needle in (views.folded() if self.fold else views.decoded())


class _AnyOf(Condition):
    """One of several branches holds (a regex alternation): each branch a list of conditions
    that must all hold."""

    __slots__ = ("branches",)

    def __init__(self, branches: list[list[Condition]]) -> None:
        super().__init__(2 * sum(len(b) for b in branches), min(_weight(b) for b in branches))
        self.branches = branches

    def test(self, views: Views) -> bool:
        return any(all(c.test(views) for c in branch) for branch in self.branches)


def _weight(conditions: list[Condition]) -> int:
    return max((c.weight for c in conditions), default=0)


class SanPattern(Condition):
    """Some identity SAN must match the rule's own `san` / `san_regex` pattern, read from the
    certificates' DER without parsing them (`_san_values`); holds when unsure."""

    __slots__ = ("pattern",)

    def __init__(self, pattern: Pattern) -> None:
        super().__init__(20, -1)  # dearer than any literal: tested after them
        self.pattern = pattern

    def test(self, views: Views) -> bool:
        values = views.sans()
        if values is None:
            return True
        match = self.pattern.match
        return any(match(v) for v in values)


class Digest(Condition):
    """The entry's digest is `hexdigest`: hex in any case (v1) or base64 of the bytes (v2)."""

    __slots__ = ("b64", "hex")

    def __init__(self, hexdigest: str) -> None:
        super().__init__(2, 10_000)
        raw = bytes.fromhex(hexdigest)
        self.hex = hexdigest.encode("ascii")
        # Only the digits fully determined by the bytes: a lenient last digit must not matter.
        self.b64 = base64.b64encode(raw)[: len(raw) * 8 // 6]

    def test(self, views: Views) -> bool:
        return self.b64 in views.body or self.hex in views.lower()


class Fingerprint(Condition):
    """The certificate's or the key's SHA-256 must be this one."""

    __slots__ = ("fingerprint",)

    def __init__(self, fingerprint: str) -> None:
        super().__init__(50, -2)  # hashing the body's strings is the dearest test: last
        self.fingerprint = fingerprint

    def test(self, views: Views) -> bool:
        return self.fingerprint in views.hashes()


class RuleFilter:
    """A rule's conditions: the body may match the rule only if every one holds."""

    __slots__ = ("conditions", "keys")

    def __init__(self, conditions: Sequence[Condition]) -> None:
        # Longest literals first until samples say better; fingerprints last.
        self.conditions = sorted(conditions, key=lambda c: -c.weight)
        self.keys = _keys(self.conditions)
        """Literals searched across a whole chunk (`PreFilter.select`): a body that matches the
        rule holds one of them; None when there are none to search."""

    def test(self, views: Views) -> bool:
        return all(condition.test(views) for condition in self.conditions)

    def expense(self) -> str | None:
        """Why scanning for this rule costs more than for an ordinary one (a sentence for
        `config check`), None when it does not."""
        if not self.conditions:
            return (
                "nothing in it narrows which certificates match (it matches every certificate "
                "the other keys allow): every entry is parsed and each one it matches is "
                "recorded, with an alert"
            )
        if self.keys is None:
            if any(isinstance(c, SanPattern) for c in self.conditions):
                return (
                    "its san / san_regex has no literal text of 4 or more characters that every "
                    "match contains, so the SANs of every entry's certificate are read for it "
                    "(about 2.5x the CPU of a scan with ordinary rules)"
                )
            if any(isinstance(c, Fingerprint) for c in self.conditions):
                return (
                    "it names no text to search for (a fingerprint only), so every entry's "
                    "base64 strings are decoded and hashed for it"
                )
            return None  # a digest: searched in the raw body, cheap
        if all(t.weight == 0 for t in self.keys):
            return (
                "its only searchable text is its issuer, which nearly every entry from that "
                "issuer holds: each such entry is parsed for it"
            )
        return None

    def sample(self, views: Views) -> bool:
        """`test`, evaluating every condition to count how often each holds, then reorder."""
        result = True
        for condition in self.conditions:
            passed = condition.test(views)
            condition.tests += 1
            condition.passes += passed
            result = result and passed
        self.conditions.sort(key=Condition.expected_cost)
        return result


def _keys(conditions: Sequence[Condition]) -> tuple[_Text, ...] | None:
    """The heaviest literal the conditions require (the longest; an issuer's last), or one per
    branch of an alternation (each branch's heaviest), whichever has the lightest heaviest."""
    best: tuple[_Text, ...] | None = None
    for condition in conditions:
        found: tuple[_Text, ...] | None = None
        if isinstance(condition, _Text):
            found = (condition,)
        elif isinstance(condition, _AnyOf):
            per_branch = [_keys(branch) for branch in condition.branches]
            if all(k is not None for k in per_branch):
                found = tuple(t for k in per_branch if k is not None for t in k)
        if found and (best is None or _shortest(found) > _shortest(best)):
            best = found
    return best


def _shortest(texts: tuple[_Text, ...]) -> int:
    """The weight of the weakest key (an issuer's is 0: nearly every entry has one of a few)."""
    return min(t.weight for t in texts)


def fold_texts(literals: Iterable[str]) -> list[Condition]:
    """Conditions for literals a certificate must contain in some letter case."""
    return [
        _Text(frag, fold=True, weight=len(frag))
        for literal in literals
        for frag in _fold_fragments(literal)
    ]


def exact_texts(literal: str, *, weight: int | None = None) -> list[Condition]:
    """Conditions for a literal a certificate must contain as written (weight: the fragment's
    length unless given; a lower weight is tested later)."""
    return [
        _Text(frag, fold=False, weight=len(frag) if weight is None else weight)
        for frag in _exact_fragments(literal)
    ]


def glob_texts(glob: str) -> list[Condition]:
    """Conditions for a case-insensitive glob: its literal parts."""
    return fold_texts(_glob_literals(glob))


def _required_conditions(required: Required, fold: bool) -> list[Condition]:
    if fold:
        conditions = fold_texts(required.runs)
    else:
        conditions = [c for literal in required.runs for c in exact_texts(literal)]
    for choice in required.choices:
        branches = [_required_conditions(branch, fold) for branch in choice]
        if all(branches):  # a branch that requires nothing makes the choice say nothing
            conditions.append(_AnyOf(branches))
    return conditions


def regex_texts(regex: str) -> list[Condition]:
    """Conditions for a `san_regex` (compiled by RE2): the literal runs every match contains,
    and for an alternation, the literals of one of its branches."""
    required, fold = _regex_requirement(regex)
    return _required_conditions(required, fold)


_WARMUP: Final = 64
_SAMPLE_EVERY: Final = 1024
"""`might_match` evaluates every condition on the first bodies and then one body in this many,
to order each rule's conditions by what they cost and how often they reject."""


class PreFilter:
    """The pre-filters of a set of rules, one `RuleFilter` each (module docstring)."""

    def __init__(self, filters: Sequence[RuleFilter]) -> None:
        self._filters = tuple(filters)
        self._always = any(not f.conditions for f in self._filters)
        self._bodies = 0
        self._unkeyed = tuple(f for f in self._filters if f.keys is None)
        keys = [t for f in self._filters for t in f.keys or ()]
        self._search = _chunk_search(keys) if keys else None
        """A few RE2 passes over a chunk's raw bodies find where any rule's key literal may be
        (`select`); None when no rule has keys or the patterns are too large to compile (then
        every body is tested)."""

    def might_match(self, body: bytes) -> bool:
        """False only when no rule can match the entry `body` holds (some condition of each
        rule fails); costs a few microseconds on a typical body."""
        if not self._filters:
            return False
        if self._always or b"\\" in body:
            return True
        return self._test(Views(body))

    def _test(self, views: Views) -> bool:
        self._bodies += 1
        if self._bodies <= _WARMUP or not self._bodies % _SAMPLE_EVERY:
            return any([f.sample(views) for f in self._filters])  # every filter samples
        return any(rule_filter.test(views) for rule_filter in self._filters)

    def select(self, bodies: Sequence[bytes]) -> list[int]:
        """The positions in `bodies` whose entries may match a rule: `might_match` for each,
        sooner. A few RE2 searches over the chunk's raw bodies find every body holding some rule's
        key literal (`RuleFilter.keys`) as base64 (`_b64_digits`: exact, in any letter case
        where the literal is case-insensitive), a backslash, or a hint of a PEM (whose base64
        is inside base64); only those bodies are tested for the rules with keys. Bodies with a
        backslash pass; rules without keys test every body."""
        if self._search is None or self._always or not self._filters:
            # Nothing is searched: each body is read through `bodies`, never through spans.
            return self.select_spans(b"", [(0, 0)] * len(bodies), bodies.__getitem__)
        joined = b"\n".join(bodies)
        spans: list[tuple[int, int]] = []
        offset = 0
        for body in bodies:
            spans.append((offset, offset + len(body)))
            offset += len(body) + 1
        return self.select_spans(joined, spans, bodies.__getitem__)

    def select_spans(
        self,
        data: bytes | memoryview,
        spans: Sequence[tuple[int, int]],
        body: Callable[[int], bytes] | None = None,
    ) -> list[int]:
        """`select` of the bodies at `spans` (start, end) of `data`, in order, whatever lies
        between them (a backfill worker reads a chunk's bundles in place, length prefixes and
        all): a match of the search that spans two bodies only makes the first one tested.
        `body(i)` gives body i as bytes (default: a copy out of `data`)."""
        if not self._filters:
            return []
        count = len(spans)
        if self._always:
            return list(range(count))
        read = body if body is not None else (lambda i: bytes(data[spans[i][0] : spans[i][1]]))
        hits: set[int] = set(range(count))
        if self._search is not None and count:
            hits = set()
            starts = [first for first, _ in spans]
            end = spans[-1][1]
            for compiled in self._search:
                search = compiled.search
                found = search(data, starts[0], end)
                while found is not None:
                    # A match starting between bodies is the previous body's: it and every
                    # body after are still searched in full (the search starts at body 0).
                    i = bisect_right(starts, found.start()) - 1
                    hits.add(i)
                    # Go on from the next body: this one is already in.
                    found = search(data, starts[i + 1], end) if i + 1 < count else None
        unkeyed = self._unkeyed
        selected: list[int] = []
        for i in range(count) if unkeyed else sorted(hits):
            raw = read(i)
            if b"\\" in raw:
                selected.append(i)
                continue
            views = Views(raw)
            filters = self._filters if i in hits else unkeyed
            if any(self._test_one(f, views) for f in filters):
                selected.append(i)
        return selected

    def _test_one(self, rule_filter: RuleFilter, views: Views) -> bool:
        self._bodies += 1
        if self._bodies <= _WARMUP or not self._bodies % _SAMPLE_EVERY:
            return rule_filter.sample(views)
        return rule_filter.test(views)


_SEARCH_MAX_MEM: Final = 64 << 20
"""RE2's memory for the chunk searches, shared out: their DFAs stay cached across chunks (past
it RE2 still answers, slower)."""
_MIN_SEARCH_DIGITS: Final = 4
"""A pattern searched from a later digit keeps at least this many (fewer would match often)."""
_MAX_SEARCHES: Final = 8
"""Past this many first-digit groups, one search over every pattern is cheaper than a pass
each."""


def _chunk_search(keys: Iterable[_Text]) -> tuple[Any, ...] | None:
    """The compiled RE2 searches for `PreFilter.select`: together they find any key's base64
    digits, a backslash, or `_PEM_HINT`; None when RE2 refuses them (too large).

    Patterns are grouped by a first digit they all begin with, each group one search: RE2 then
    skips with memchr to that byte, several times faster than one search over every pattern
    (whose first positions are classes). A pattern is searched from its first single digit on
    (what follows a match's start also matches: the match is found in the same body), unless
    that leaves fewer than `_MIN_SEARCH_DIGITS`; those, or past `_MAX_SEARCHES` groups, all
    go into one search."""
    groups: dict[bytes, list[bytes]] = {b"\\": [re.escape(b"\\")], _PEM_HINT[:1]: [_PEM_HINT]}
    rest: list[bytes] = []
    for key in keys:
        for digits in key.b64:
            first = next((i for i, d in enumerate(digits) if len(d) == 1), len(digits))
            if len(digits) - first < _MIN_SEARCH_DIGITS:
                rest.append(_b64_render(digits))
            else:
                groups.setdefault(digits[first], []).append(_b64_render(digits[first:]))
    searches = [b"|".join(dict.fromkeys(group)) for group in groups.values()]
    if len(searches) + bool(rest) > _MAX_SEARCHES:
        searches = [b"|".join(dict.fromkeys([*searches, *rest]))]
    elif rest:
        searches.append(b"|".join(dict.fromkeys(rest)))
    options = re2.Options()
    options.log_errors = False
    options.max_mem = _SEARCH_MAX_MEM // len(searches)
    options.never_capture = True
    options.encoding = re2.Options.Encoding.LATIN1  # bytes, whatever a hostile body holds
    try:
        return tuple(re2.compile(pattern, options) for pattern in searches)
    except re2.error:
        return None
