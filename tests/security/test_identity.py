"""What a certificate says about who is calling: identity_from_pem, check_name."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from spirtd.errors import ConfigError, SecurityError
from spirtd.security import ca
from spirtd.security.identity import Identity, Role, check_name, identity_from_pem

from .conftest import SUBJECT_OK, CraftCert, load_cert


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_identity_from_pem_name_role_serial_fingerprint(ca_dir: Path, role: Role) -> None:
    path, _ = ca.issue(ca_dir, "node1", role=role)
    pem = path.read_bytes()
    cert = load_cert(path)

    who = identity_from_pem(pem)
    assert who == Identity(
        name="node1",
        role=role,
        serial=cert.serial_number,
        not_after=cert.not_valid_after_utc,
        fingerprint=hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
    )
    assert str(who) == f"{role.value} 'node1'"


def test_identity_from_pem_cached_by_bytes(ca_dir: Path) -> None:
    pem = ca.issue(ca_dir, "node1")[0].read_bytes()
    first = identity_from_pem(pem)
    hits = identity_from_pem.cache_info().hits
    assert identity_from_pem(bytes(pem)) is first
    assert identity_from_pem.cache_info().hits == hits + 1


def test_identity_from_pem_errors_not_cached() -> None:
    misses = identity_from_pem.cache_info().misses
    for _ in range(2):
        with pytest.raises(SecurityError):
            identity_from_pem(b"not a certificate")
    assert identity_from_pem.cache_info().misses == misses + 2


def without(oid) -> list:
    return [(o, v) for o, v in SUBJECT_OK if o != oid]


def role_is(role: str) -> list:
    return [*without(NameOID.ORGANIZATIONAL_UNIT_NAME), (NameOID.ORGANIZATIONAL_UNIT_NAME, role)]


@pytest.mark.parametrize(
    ("subject", "message"),
    [
        (without(NameOID.ORGANIZATIONAL_UNIT_NAME), "has no single role (OU)"),
        (without(NameOID.COMMON_NAME), "has no single common name"),
        (
            role_is("admin"),
            "certificate of 'node1' has an unknown role 'admin' (known: peer, client, operator)",
        ),
        (role_is("PEER"), "unknown role 'PEER'"),
        ([*SUBJECT_OK, (NameOID.ORGANIZATIONAL_UNIT_NAME, "client")], "has no single role (OU)"),
        ([*SUBJECT_OK, (NameOID.COMMON_NAME, "node2")], "has no single common name"),
        (
            [*without(NameOID.COMMON_NAME), (NameOID.COMMON_NAME, "../../etc/passwd")],
            "certificate names '../../etc/passwd', which is not a valid name",
        ),
    ],
    ids=["no-ou", "no-cn", "unknown-role", "role-case", "two-ous", "two-cns", "bad-cn"],
)
def test_identity_from_pem_bad_subject_raises_security_error(
    craft_cert: CraftCert, subject: list, message: str
) -> None:
    with pytest.raises(SecurityError, match=re.escape(message)):
        identity_from_pem(craft_cert(subject))


def test_identity_from_pem_crafted_good_subject_accepted(craft_cert: CraftCert) -> None:
    who = identity_from_pem(craft_cert(SUBJECT_OK))
    assert (who.name, who.role) == ("node1", Role.PEER)


@pytest.mark.parametrize(
    "pem",
    [b"", b"garbage", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"],
    ids=["empty", "garbage", "bad-der"],
)
def test_identity_from_pem_malformed_raises_security_error(pem: bytes) -> None:
    with pytest.raises(SecurityError, match="not a PEM certificate"):
        identity_from_pem(pem)


@pytest.mark.parametrize(
    "name", ["a", "node1", "Node_1", "n-1.lan", "x" * 63, "7", "ca1", "ca.lan"]
)
def test_check_name_valid_returned(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "it is empty"),
        ("x" * 64, "it is 64 characters long, over 63"),
        ("a b", "' ' is not allowed"),
        ("a/b:c", "'/:' are not allowed"),
        ("_a", "it starts with '_'"),
        ("a_", "it ends with '_'"),
        ("a..b", "it has an empty part between dots"),
        ("a.b-", "its part 'b-' ends with '-'"),
        ("ca", "it is reserved for the CA's own files (ca.crt, ca.key)"),
        ("192.168.1.1", "it is an IP address, and a name is checked as a DNS name"),
        (None, "a name is a string, not NoneType"),
    ],
)
def test_check_name_invalid_says_what_is_wrong(name: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_name(name)
    text = str(info.value)
    assert f"{name!r} is not a valid name: {message}; use 1-63 letters" in text
    assert "\n" not in text
