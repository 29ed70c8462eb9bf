"""Search terms derived from watch rules, and the index's answers parsed at the edge."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.core.watch.rules import compile_rule, rule_search_terms, search_terms
from monitor.core.watch.terms import SearchTerm, TermKind, classify_term
from monitor.logs.http import LogResponseError
from monitor.logs.rekor_v1.client import parse_uuid_list

PEM = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----"
WORKFLOW = "https://github.com/o/r/.github/workflows/release.yml@refs/tags/v1"
HEX = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("Alice@Example.com", TermKind.EMAIL, "alice@example.com"),
        (WORKFLOW, TermKind.SUBJECT, WORKFLOW),
        ("spiffe://example.org/ns/prod", TermKind.SUBJECT, "spiffe://example.org/ns/prod"),
        ("https://user@host/x", TermKind.SUBJECT, "https://user@host/x"),
        (f"sha256:{HEX.upper()}", TermKind.HASH, f"sha256:{HEX}"),
        (HEX, TermKind.HASH, f"sha256:{HEX}"),
        ("sha512:" + "ab" * 64, TermKind.HASH, "sha512:" + "ab" * 64),
        ("sha256:abcd", TermKind.SUBJECT, "sha256:abcd"),
        (PEM, TermKind.PUBLIC_KEY, PEM),
    ],
)
def test_a_term_kind_is_read_from_its_shape(text: str, kind: TermKind, value: str) -> None:
    assert classify_term(text) == SearchTerm(kind, value)


def test_requests_follow_rekors_search_index() -> None:
    assert classify_term("a@b.c").request() == {"email": "a@b.c"}
    assert classify_term(HEX).request() == {"hash": f"sha256:{HEX}"}
    assert classify_term(WORKFLOW).request() == {"subject": WORKFLOW}
    key = classify_term(PEM).request()["publicKey"]
    assert isinstance(key, dict) and key["format"] == "x509"
    assert base64.b64decode(key["content"]).decode().strip() == PEM
    assert classify_term(PEM).key.startswith("public_key:sha256:")


def test_rules_give_their_exact_values_and_never_globs() -> None:
    rule = compile_rule(
        {
            "name": "r",
            "issuer": "https://token.actions.githubusercontent.com",
            "san": "https://github.com/o/r/.github/workflows/*",
            "artifact_digest": f"sha256:{HEX}",
            "search": [WORKFLOW, f"sha256:{HEX}"],
        },
        "watch[0]",
    )
    assert rule_search_terms(rule) == (
        SearchTerm(TermKind.HASH, f"sha256:{HEX}"),
        SearchTerm(TermKind.SUBJECT, WORKFLOW),
    )
    exact = compile_rule(
        {"name": "e", "issuer": "https://accounts.google.com", "email": "A@b.c", "san": "x"},
        "watch[1]",
    )
    assert rule_search_terms(exact) == (
        SearchTerm(TermKind.EMAIL, "a@b.c"),
        SearchTerm(TermKind.SUBJECT, "x"),
    )
    assert search_terms([rule, exact, rule]) == [
        *rule_search_terms(rule),
        *rule_search_terms(exact),
    ]


@given(st.text(min_size=1, max_size=200))
def test_classifying_is_stable(text: str) -> None:
    term = classify_term(text)
    assert classify_term(term.value) == term or term.kind is TermKind.PUBLIC_KEY
    assert len(term.key) <= len(term.kind.value) + 1 + max(len(term.value), 71)


LEAF = "ab" * 32
TREE = "0123456789abcdef"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (None, []),
        ([], []),
        ([LEAF], [LEAF]),
        ([TREE + LEAF.upper()], [TREE + LEAF]),
        ([TREE + LEAF, LEAF], [TREE + LEAF]),
    ],
)
def test_index_answers_of_64_and_80_hex_digits(answer: object, expected: list[str]) -> None:
    assert parse_uuid_list(answer) == expected


@pytest.mark.parametrize(
    "answer", [{"uuids": []}, [LEAF[:-1]], [1], ["zz" * 32], [TREE + TREE + LEAF]]
)
def test_malformed_index_answers_are_refused(answer: object) -> None:
    with pytest.raises(LogResponseError):
        parse_uuid_list(answer)


def test_index_answers_are_bounded() -> None:
    with pytest.raises(LogResponseError, match="at most 2"):
        parse_uuid_list([LEAF, LEAF, LEAF], limit=2)
