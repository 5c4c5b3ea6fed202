"""RevocationList: reading, round trips, the CA's signature, and ordering."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from spirtd.errors import SecurityError
from spirtd.security import ca
from spirtd.security.revocation import RevocationList

from .conftest import load_cert


@pytest.fixture
def revoked_dir(ca_dir: Path) -> Path:
    """ca_dir with node1 and node2 revoked (crl.pem number 3)."""
    for name in ("node1", "node2", "node3"):
        ca.issue(ca_dir, name)
    ca.revoke(ca_dir, "node1")
    ca.revoke(ca_dir, "node2")
    return ca_dir


def crl_pem(folder: Path) -> bytes:
    return (folder / ca.CRL_FILE).read_bytes()


def serial(folder: Path, name: str) -> int:
    return load_cert(folder / f"{name}.crt").serial_number


def test_revocation_list_from_pem_reads_number_and_serials(revoked_dir: Path) -> None:
    crl = RevocationList.from_pem(crl_pem(revoked_dir))
    assert crl.number == 3
    assert crl.revoked == {serial(revoked_dir, "node1"), serial(revoked_dir, "node2")}


def test_revocation_list_pem_and_der_round_trip(revoked_dir: Path) -> None:
    crl = RevocationList.from_pem(crl_pem(revoked_dir))
    assert RevocationList.from_pem(crl.to_pem()) == crl
    assert RevocationList.from_der(crl.der) == crl
    assert crl.to_pem() == crl_pem(revoked_dir)
    assert x509.load_pem_x509_crl(crl.to_pem()).public_bytes(serialization.Encoding.DER) == crl.der


def test_revocation_list_verify_returns_self_for_the_ca(revoked_dir: Path) -> None:
    crl = RevocationList.from_pem(crl_pem(revoked_dir))
    assert crl.verify(load_cert(revoked_dir / ca.CA_CERT)) is crl


def test_revocation_list_verify_refuses_another_ca(revoked_dir: Path, other_ca_dir: Path) -> None:
    # Both CAs have the same name: only the signature tells them apart.
    crl = RevocationList.from_pem(crl_pem(revoked_dir))
    other = load_cert(other_ca_dir / ca.CA_CERT)
    assert other.subject == load_cert(revoked_dir / ca.CA_CERT).subject
    with pytest.raises(SecurityError, match="not signed by the cluster CA"):
        crl.verify(other)


def test_revocation_list_verify_refuses_another_issuer_name(
    revoked_dir: Path, tmp_path: Path
) -> None:
    ca.init_ca(tmp_path / "named", common_name="another CA")
    crl = RevocationList.from_pem(crl_pem(revoked_dir))
    with pytest.raises(SecurityError, match="not signed by the cluster CA"):
        crl.verify(load_cert(tmp_path / "named" / ca.CA_CERT))


def flip(der: bytes, at: int) -> bytes:
    return der[:at] + bytes([der[at] ^ 0x01]) + der[at + 1 :]


def tampered(crl: RevocationList, part: str, folder: Path) -> bytes:
    """crl's DER with one bit flipped in the signature or in the signed part."""
    if part == "signature":
        return flip(crl.der, len(crl.der) - 1)  # the last byte of ECDSA's s
    victim = serial(folder, "node1")
    raw = victim.to_bytes((victim.bit_length() + 7) // 8, "big")
    at = crl.der.index(raw) + len(raw) - 1  # a revoked serial, in the signed part
    return flip(crl.der, at)


@pytest.mark.parametrize("part", ["signature", "tbs"])
def test_revocation_list_verify_refuses_tampered_list(revoked_dir: Path, part: str) -> None:
    crl = RevocationList.from_pem(crl_pem(revoked_dir))
    bad = RevocationList.from_der(tampered(crl, part, revoked_dir))  # still well-formed
    if part == "tbs":
        assert bad.revoked != crl.revoked
    with pytest.raises(SecurityError, match="not signed by the cluster CA"):
        bad.verify(load_cert(revoked_dir / ca.CA_CERT))


def test_revocation_list_verify_refuses_fields_not_signed(revoked_dir: Path) -> None:
    crl = RevocationList.from_pem(crl_pem(revoked_dir))
    ca_cert = load_cert(revoked_dir / ca.CA_CERT)
    for forged in (
        dataclasses.replace(crl, number=99),
        dataclasses.replace(crl, revoked=frozenset()),
    ):
        with pytest.raises(SecurityError, match="but the signed list says number 3"):
            forged.verify(ca_cert)


@pytest.mark.parametrize(
    ("mine", "theirs", "newer"),
    [(1, None, True), (2, 1, True), (10, 9, True), (1, 1, False), (1, 2, False)],
)
def test_revocation_list_newer_than(mine: int, theirs: int | None, newer: bool) -> None:
    def crl(number: int) -> RevocationList:
        return RevocationList(der=b"", number=number, revoked=frozenset())

    other = None if theirs is None else crl(theirs)
    assert crl(mine).newer_than(other) is newer


def test_revocation_list_is_revoked(revoked_dir: Path) -> None:
    crl = RevocationList.from_pem(crl_pem(revoked_dir))
    assert crl.is_revoked(serial(revoked_dir, "node1"))
    assert crl.is_revoked(serial(revoked_dir, "node2"))
    assert not crl.is_revoked(serial(revoked_dir, "node3"))
    assert not crl.is_revoked(0)


def crl_without_number(folder: Path) -> bytes:
    ca_cert, ca_key = ca.load_ca(folder)
    now = ca.utcnow()
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now)
        .next_update(now + datetime.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    return crl.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: b"", "malformed revocation list"),
        (lambda d: b"garbage", "malformed revocation list"),
        (lambda d: (d / ca.CA_CERT).read_bytes(), "malformed revocation list"),  # a certificate
        (lambda d: crl_pem(d).replace(b"\n", b"\n!", 3), "malformed revocation list"),
        (crl_without_number, "has no CRL number"),
    ],
    ids=["empty", "garbage", "certificate", "mangled-base64", "no-number"],
)
def test_revocation_list_from_pem_malformed_raises_security_error(
    ca_dir: Path, make, message: str
) -> None:
    with pytest.raises(SecurityError, match=message):
        RevocationList.from_pem(make(ca_dir))


@pytest.mark.parametrize(
    "der",
    [b"", b"\x30\x03\x02\x01", b"garbage"],
    ids=["empty", "truncated", "garbage"],
)
def test_revocation_list_from_der_malformed_raises_security_error(der: bytes) -> None:
    with pytest.raises(SecurityError, match="malformed revocation list"):
        RevocationList.from_der(der)


def test_revocation_list_from_der_truncated_raises_security_error(revoked_dir: Path) -> None:
    der = RevocationList.from_pem(crl_pem(revoked_dir)).der
    with pytest.raises(SecurityError, match="malformed revocation list"):
        RevocationList.from_der(der[:-10])


def test_revocation_list_verify_malformed_der_raises_security_error(ca_dir: Path) -> None:
    with pytest.raises(SecurityError, match="malformed revocation list"):
        RevocationList(der=b"junk", number=1, revoked=frozenset()).verify(
            load_cert(ca_dir / ca.CA_CERT)
        )
