"""`monitor.core.der`: the one DER header reader of certificates, SCT lists, CT leaves and the
pre-filter's SAN reads."""

from __future__ import annotations

import pytest
from cryptography import x509
from hypothesis import given
from hypothesis import strategies as st

from monitor.core.der import DerError, encode_der, encode_length, read_tlv
from tests.unit import certgen as g


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x30", "truncated DER header"),
        (b"\x1f\x01\x00", "multi-byte DER tag 0x1f"),
        (b"\x30\x80\x00\x00", "indefinite or oversized DER length"),
        (b"\x30\x85\x00\x00\x00\x00\x01\x00", "indefinite or oversized DER length"),
        (b"\x30\x82\x01", "truncated DER length"),
        (b"\x30\x03\x02\x01", "runs past its container"),
        (b"\x30\x82\x01\x00" + b"\x00" * 255, "runs past its container"),
    ],
)
def test_what_is_not_one_der_element_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(DerError, match=message):
        read_tlv(data, 0, len(data))


@pytest.mark.parametrize(
    "header",
    [b"\x04\x81\x05", b"\x04\x82\x00\x05", b"\x04\x82\x00\x80", b"\x04\x84\x00\x00\x00\x05"],
)
def test_a_length_not_in_its_shortest_form_is_refused_where_it_must_be(header: bytes) -> None:
    """A caller re-encoding the bytes a log signed (SCTs, CT leaves) must refuse any other form
    (it would change those bytes); a reader that only looks (the pre-filter) may take it."""
    length = int.from_bytes(header[2:], "big") if header[1] & 0x80 else header[1]
    data = header + b"\x00" * length
    assert read_tlv(data, 0, len(data)) == (0x04, len(header), len(data))
    with pytest.raises(DerError, match="non-minimal DER length"):
        read_tlv(data, 0, len(data), minimal=True)


@given(
    st.integers(0, 255).filter(lambda t: t & 0x1F != 0x1F),
    st.integers(0, 70_000),
    st.binary(max_size=3),
)
def test_every_encoded_element_reads_back(tag: int, size: int, after: bytes) -> None:
    element = encode_der(tag, b"\xab" * size)
    data = b"\xff" + element + after  # read in place, within its container only
    header = len(element) - size
    assert read_tlv(data, 1, 1 + len(element), minimal=True) == (tag, 1 + header, 1 + len(element))
    with pytest.raises(DerError):
        read_tlv(data, 1, len(element))  # a container one byte short


def test_lengths_are_encoded_as_the_certificates_cryptography_writes() -> None:
    """Cross-checked against an encoder we did not write: each element of a certificate
    cryptography built is re-encoded byte for byte from its tag and content."""
    der = g.cert_der(g.make_certificate(sans=[x509.UniformResourceIdentifier("x" * 300)]))
    seen = 0
    stack = [(0, len(der))]
    while stack:
        pos, end = stack.pop()
        while pos < end:
            tag, start, stop = read_tlv(der, pos, end, minimal=True)
            assert encode_der(tag, der[start:stop]) == der[pos:stop]
            assert encode_length(stop - start) == der[pos + 1 : start]
            if tag & 0x20:  # constructed: its elements too
                stack.append((start, stop))
            seen += 1
            pos = stop
    assert seen > 30
