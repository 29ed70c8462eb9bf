"""Search terms: the exact values the monitor looks up in a Rekor v1 search index (pure).

A rule is searchable by the exact values its matchers name (each matcher kind says which, in
`monitor.core.watch.matchers`) and by its `search` strings. A `search` string's kind is read from
its shape: a PEM block is a public key (format x509), an `<algorithm>:<hex>` digest or 64 bare
hex digits a hash, a value with an `@` and no `://` an email, anything else (workflow URIs,
SPIFFE IDs) a subject.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum

DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
"""Digest algorithms a rule or a search term may name -> hex digits of a digest."""
_DIGEST = re.compile(r"(sha256|sha384|sha512):([0-9a-f]+)")
_BARE_SHA256 = re.compile(r"[0-9a-f]{64}")


class TermKind(StrEnum):
    """Which field of the search request a term goes in."""

    EMAIL = "email"
    SUBJECT = "subject"
    HASH = "hash"
    PUBLIC_KEY = "public_key"


@dataclass(frozen=True, order=True)
class SearchTerm:
    """One exact value to look up in the index."""

    kind: TermKind
    value: str
    """Email lowercased; hash as "<algorithm>:<lowercase hex>"; public key as its PEM text."""

    @property
    def key(self) -> str:
        """A stable, bounded name for the term in the database and in messages (a public key
        is named by the SHA-256 of its PEM text)."""
        if self.kind is TermKind.PUBLIC_KEY:
            digest = hashlib.sha256(self.value.strip().encode("utf-8")).hexdigest()
            return f"public_key:sha256:{digest}"
        return f"{self.kind.value}:{self.value}"

    def request(self) -> dict[str, object]:
        """The body of a `POST /api/v1/index/retrieve` that looks this term up."""
        if self.kind is TermKind.PUBLIC_KEY:
            content = base64.b64encode(self.value.strip().encode("utf-8") + b"\n").decode()
            return {"publicKey": {"format": "x509", "content": content}}
        return {self.kind.value: self.value}


def classify_term(text: str) -> SearchTerm:
    """The search term a `search` string stands for, read from its shape (module docstring)."""
    value = text.strip()
    if value.startswith("-----BEGIN "):
        return SearchTerm(TermKind.PUBLIC_KEY, value)
    lowered = value.lower()
    digest = _DIGEST.fullmatch(lowered)
    if digest and len(digest.group(2)) == DIGEST_HEX_LENGTHS[digest.group(1)]:
        return SearchTerm(TermKind.HASH, lowered)
    if _BARE_SHA256.fullmatch(lowered):
        return SearchTerm(TermKind.HASH, f"sha256:{lowered}")
    if "@" in value and "://" not in value and not any(c.isspace() for c in value):
        return SearchTerm(TermKind.EMAIL, lowered)
    return SearchTerm(TermKind.SUBJECT, value)
