"""The cluster CA: init_ca, issue, revoke and the file writers, on real files
with real cryptography."""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from spirtd.errors import ConfigError
from spirtd.security import ca
from spirtd.security.identity import Role
from spirtd.security.revocation import RevocationList

from .conftest import load_cert, mode_of, now_s, snapshot

DAY = datetime.timedelta(days=1)


def crl_of(folder: Path) -> RevocationList:
    return RevocationList.from_pem((folder / ca.CRL_FILE).read_bytes())


def public_der(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# --- init_ca ---------------------------------------------------------------


def test_init_ca_makes_cert_key_and_empty_signed_crl(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "certs"
    now = now_s()
    path = ca.init_ca(folder, common_name="test CA", days=30, now=now)

    assert path == folder / ca.CA_CERT
    assert sorted(p.name for p in folder.iterdir()) == ["ca.crt", "ca.key", "crl.pem"]
    assert mode_of(folder / ca.CA_CERT) == 0o644
    assert mode_of(folder / ca.CA_KEY) == 0o600
    assert mode_of(folder / ca.CRL_FILE) == 0o644

    cert = load_cert(path)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "test CA"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "spirt"
    cert.verify_directly_issued_by(cert)  # self-signed
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    assert cert.not_valid_before_utc == now - ca.CLOCK_SKEW
    assert cert.not_valid_after_utc == now + 30 * DAY

    ca_cert, key = ca.load_ca(folder)
    assert public_der(key.public_key()) == public_der(cert.public_key())

    crl = crl_of(folder)
    assert (crl.number, crl.revoked) == (1, frozenset())
    assert crl.verify(cert) is crl


def test_init_ca_twice_refuses_and_changes_nothing(ca_dir: Path) -> None:
    before = snapshot(ca_dir)
    with pytest.raises(ConfigError, match="a CA already exists"):
        ca.init_ca(ca_dir)
    assert snapshot(ca_dir) == before


@pytest.mark.parametrize("present", [ca.CA_CERT, ca.CA_KEY])
def test_init_ca_either_file_present_refuses(tmp_path: Path, present: str) -> None:
    (tmp_path / present).write_bytes(b"something")
    with pytest.raises(ConfigError, match="a CA already exists"):
        ca.init_ca(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [present]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"days": 0}, "days must be a whole number >= 1"),
        ({"days": -3}, "days must be a whole number >= 1"),
        ({"days": 10**8}, "past the year 9999"),
        ({"common_name": ""}, "must be 1-64 characters"),
        ({"common_name": "x" * 65}, "must be 1-64 characters"),
        ({"now": datetime.datetime(2030, 1, 1)}, "has no time zone"),
    ],
    ids=["days-0", "days-negative", "days-huge", "name-empty", "name-long", "now-naive"],
)
def test_init_ca_bad_arguments_refused_before_writing(
    tmp_path: Path, kwargs: dict, message: str
) -> None:
    folder = tmp_path / "certs"
    with pytest.raises(ConfigError, match=message):
        ca.init_ca(folder, **kwargs)
    assert not folder.exists()


# --- issue -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "usages"),
    [
        (Role.PEER, [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
        (Role.CLIENT, [ExtendedKeyUsageOID.CLIENT_AUTH]),
    ],
    ids=["peer", "client"],
)
def test_issue_role_makes_certificate_with_subject_usages_and_validity(
    ca_dir: Path, role: Role, usages: list
) -> None:
    now = now_s()
    cert_path, key_path = ca.issue(ca_dir, "node1", role=role, days=7, now=now)
    assert (cert_path, key_path) == (ca_dir / "node1.crt", ca_dir / "node1.key")
    assert mode_of(key_path) == 0o600
    assert mode_of(cert_path) == 0o644

    cert = load_cert(cert_path)
    subject = {a.oid: a.value for a in cert.subject}
    assert subject == {
        NameOID.COMMON_NAME: "node1",
        NameOID.ORGANIZATIONAL_UNIT_NAME: role.value,
        NameOID.ORGANIZATION_NAME: "spirt",
    }
    ext = cert.extensions
    assert list(ext.get_extension_for_class(x509.ExtendedKeyUsage).value) == usages
    constraints = ext.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    usage = ext.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    san = ext.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["node1"]
    assert cert.not_valid_before_utc == now - ca.CLOCK_SKEW
    assert cert.not_valid_after_utc == now + 7 * DAY

    ca_cert = load_cert(ca_dir / ca.CA_CERT)
    cert.verify_directly_issued_by(ca_cert)
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert aki == ski

    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert public_der(key.public_key()) == public_der(cert.public_key())


def test_issue_default_days_and_role(ca_dir: Path) -> None:
    now = now_s()
    cert = load_cert(ca.issue(ca_dir, "node1", now=now)[0])
    assert cert.not_valid_after_utc == now + ca.CERT_DAYS * DAY
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "peer"


def test_issue_role_as_text_accepted(ca_dir: Path) -> None:
    cert = load_cert(ca.issue(ca_dir, "alice", role="client")[0])  # type: ignore[arg-type]
    ou = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    assert ou[0].value == "client"


def test_issue_alt_names_hold_name_dns_and_ips_without_repeats(ca_dir: Path) -> None:
    cert_path, _ = ca.issue(
        ca_dir, "node1",
        dns=["node1.lan", "localhost", "node1", "node1.lan"],
        ips=["10.0.0.1", "127.0.0.1", "fd00::1", "10.0.0.1"],
    )  # fmt: skip
    san = load_cert(cert_path).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["node1", "node1.lan", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.1"),
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("fd00::1"),
    ]


def test_issue_serials_differ(ca_dir: Path) -> None:
    serials = {load_cert(ca.issue(ca_dir, f"node{i}")[0]).serial_number for i in range(5)}
    assert len(serials) == 5


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "it is empty"),
        ("x" * 64, "it is 64 characters long, over 63"),
        ("node 1", "' ' is not allowed"),
        ("node/1", "'/' is not allowed"),
        ("../etc", "'/' is not allowed"),
        ("nöde", "'ö' is not allowed"),
        ("-node", "it starts with '-'"),
        ("node-", "it ends with '-'"),
        (".node", "it has an empty part between dots"),
        ("node.", "it has an empty part between dots"),
        ("a..b", "it has an empty part between dots"),
        ("a.-b", "its part '-b' starts with '-'"),
        ("ca", "it is reserved for the CA's own files (ca.crt, ca.key)"),
        ("CA", "it is reserved for the CA's own files (CA.crt, CA.key)"),
        ("10.0.0.1", "it is an IP address"),
    ],
    ids=lambda v: v if len(v) < 20 else v[:8] + "...",
)
def test_issue_bad_name_refused_saying_what_is_wrong(ca_dir: Path, name: str, message: str) -> None:
    before = snapshot(ca_dir)
    with pytest.raises(ConfigError, match="is not a valid name: " + re.escape(message)):
        ca.issue(ca_dir, name)
    assert snapshot(ca_dir) == before


@pytest.mark.parametrize("name", ["a", "7", "node1", "Node_1", "node-1.lan", "x" * 63, "1.2.3"])
def test_issue_good_name_accepted(ca_dir: Path, name: str) -> None:
    cert = load_cert(ca.issue(ca_dir, name)[0])
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name


@pytest.mark.parametrize(
    ("ips", "message"),
    [
        (["300.1.1.1"], "'300.1.1.1' is not an IP address"),
        (["10.0.0"], "'10.0.0' is not an IP address"),
        (["localhost"], "'localhost' is not an IP address"),
        (["10.0.0.1", ""], "'' is not an IP address"),
    ],
)
def test_issue_bad_ip_refused_saying_which(ca_dir: Path, ips: list[str], message: str) -> None:
    before = snapshot(ca_dir)
    with pytest.raises(ConfigError, match=message):
        ca.issue(ca_dir, "node1", ips=ips)
    assert snapshot(ca_dir) == before


@pytest.mark.parametrize(
    ("dns", "message"),
    [
        ("", "it is empty"),
        ("a..lan", "it has an empty part (a leading, trailing or double '.')"),
        ("node1.", "it has an empty part"),
        ("-x.lan", "its part '-x' starts or ends with '-'"),
        ("my host", "' ' is not allowed"),
        ("*.lan", "'*' is not allowed"),
        ("nöde.lan", "'ö' is not allowed"),
        ("127.0.0.1", "it is an IP address: give it with --ip"),
        ("x" * 64 + ".lan", "its part '" + "x" * 64 + "' is over 63 characters"),
    ],
    ids=lambda v: v if len(v) < 20 else v[:8] + "...",
)
def test_issue_bad_dns_refused_saying_which(ca_dir: Path, dns: str, message: str) -> None:
    with pytest.raises(ConfigError, match="is not a valid DNS name: " + re.escape(message)):
        ca.issue(ca_dir, "node1", dns=[dns])
    assert not (ca_dir / "node1.crt").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"days": 0}, "days must be a whole number >= 1"),
        ({"days": 4000}, "would outlive the CA"),
        ({"role": "admin"}, "unknown role 'admin'"),
        ({"now": datetime.datetime(2030, 1, 1)}, "has no time zone"),
    ],
    ids=["days-0", "outlives-ca", "role", "now-naive"],
)
def test_issue_bad_arguments_refused(ca_dir: Path, kwargs: dict, message: str) -> None:
    before = snapshot(ca_dir)
    with pytest.raises(ConfigError, match=message):
        ca.issue(ca_dir, "node1", **kwargs)
    assert snapshot(ca_dir) == before


def test_issue_existing_name_refused_unless_replace(ca_dir: Path) -> None:
    ca.issue(ca_dir, "node1")
    before = snapshot(ca_dir)
    with pytest.raises(ConfigError, match="node1.crt exists; to make a new one use --replace"):
        ca.issue(ca_dir, "node1")
    assert snapshot(ca_dir) == before

    ca.issue(ca_dir, "node1", replace=True)
    after = snapshot(ca_dir)
    assert after["node1.crt"][0] != before["node1.crt"][0]
    assert after["node1.key"][0] != before["node1.key"][0]
    assert load_cert(ca_dir / "node1.crt").serial_number != x509.load_pem_x509_certificate(
        before["node1.crt"][0]
    ).serial_number


@pytest.mark.parametrize(
    ("remove", "message"),
    [
        ([ca.CA_CERT, ca.CA_KEY], "no CA in .*: make one with `spirtd certs init"),
        ([ca.CA_KEY], "no ca.key in .*: certificates are made only where the CA's key is"),
        ([ca.CA_CERT], "ca.key but no ca.crt"),
    ],
    ids=["no-ca", "no-key", "no-cert"],
)
def test_issue_without_ca_refused(ca_dir: Path, remove: list[str], message: str) -> None:
    for name in remove:
        (ca_dir / name).unlink()
    with pytest.raises(ConfigError, match=message):
        ca.issue(ca_dir, "node1")
    assert not (ca_dir / "node1.crt").exists()


def test_issue_ca_key_readable_by_others_refused(ca_dir: Path) -> None:
    os.chmod(ca_dir / ca.CA_KEY, 0o644)
    with pytest.raises(ConfigError, match=r"ca.key is readable by others \(mode 0644\); chmod 600"):
        ca.issue(ca_dir, "node1")


def test_issue_ca_key_of_another_ca_refused(ca_dir: Path, other_ca_dir: Path) -> None:
    shutil.copy(other_ca_dir / ca.CA_KEY, ca_dir / ca.CA_KEY)
    with pytest.raises(ConfigError, match="ca.key is not the key of .*ca.crt"):
        ca.issue(ca_dir, "node1")


@pytest.mark.parametrize("garbage", [ca.CA_CERT, ca.CA_KEY])
def test_issue_ca_file_garbage_refused(ca_dir: Path, garbage: str) -> None:
    (ca_dir / garbage).write_bytes(b"-----BEGIN NOTHING-----\nxx\n")
    with pytest.raises(ConfigError, match=f"{garbage} is not"):
        ca.issue(ca_dir, "node1")


# --- revoke ----------------------------------------------------------------


def test_revoke_adds_serial_with_a_higher_number_signed_by_ca(ca_dir: Path) -> None:
    ca.issue(ca_dir, "node1")
    ca.issue(ca_dir, "node2")
    serial1 = load_cert(ca_dir / "node1.crt").serial_number
    serial2 = load_cert(ca_dir / "node2.crt").serial_number

    first = ca.revoke(ca_dir, "node1")
    assert (first.number, first.revoked) == (2, frozenset({serial1}))
    assert crl_of(ca_dir) == first
    assert mode_of(ca_dir / ca.CRL_FILE) == 0o644

    second = ca.revoke(ca_dir, "node2")
    assert (second.number, second.revoked) == (3, frozenset({serial1, serial2}))
    second.verify(load_cert(ca_dir / ca.CA_CERT))
    assert second.newer_than(first)


def test_revoke_twice_changes_nothing(ca_dir: Path) -> None:
    ca.issue(ca_dir, "node1")
    first = ca.revoke(ca_dir, "node1")
    before = snapshot(ca_dir)
    assert ca.revoke(ca_dir, "node1") == first
    assert snapshot(ca_dir) == before


def test_revoke_unknown_name_refused(ca_dir: Path) -> None:
    before = snapshot(ca_dir)
    with pytest.raises(ConfigError, match="no certificate .*nobody.crt to revoke"):
        ca.revoke(ca_dir, "nobody")
    assert snapshot(ca_dir) == before


def test_revoke_bad_name_refused(ca_dir: Path) -> None:
    with pytest.raises(ConfigError, match="is not a valid name"):
        ca.revoke(ca_dir, "../ca")


def test_revoke_without_ca_key_refused(ca_dir: Path) -> None:
    ca.issue(ca_dir, "node1")
    (ca_dir / ca.CA_KEY).unlink()
    before = snapshot(ca_dir)
    with pytest.raises(ConfigError, match="no ca.key in"):
        ca.revoke(ca_dir, "node1")
    assert snapshot(ca_dir) == before


def test_revoke_without_crl_refused(ca_dir: Path) -> None:
    ca.issue(ca_dir, "node1")
    (ca_dir / ca.CRL_FILE).unlink()
    with pytest.raises(ConfigError, match="no crl.pem in .*copy it back from any peer"):
        ca.revoke(ca_dir, "node1")
    assert not (ca_dir / ca.CRL_FILE).exists()


def test_revoke_crl_not_signed_by_ca_refused(ca_dir: Path, other_ca_dir: Path) -> None:
    ca.issue(ca_dir, "node1")
    shutil.copy(other_ca_dir / ca.CRL_FILE, ca_dir / ca.CRL_FILE)
    before = snapshot(ca_dir)
    with pytest.raises(ConfigError, match="crl.pem: revocation list is not signed by the cluster"):
        ca.revoke(ca_dir, "node1")
    assert snapshot(ca_dir) == before


def test_revoke_garbage_crl_refused(ca_dir: Path) -> None:
    ca.issue(ca_dir, "node1")
    (ca_dir / ca.CRL_FILE).write_bytes(b"not a list")
    with pytest.raises(ConfigError, match="crl.pem: malformed revocation list"):
        ca.revoke(ca_dir, "node1")


def test_revoke_concurrent_loses_no_revocation(ca_dir: Path) -> None:
    names = [f"node{i}" for i in range(8)]
    for name in names:
        ca.issue(ca_dir, name)
    with ThreadPoolExecutor(len(names)) as pool:
        list(pool.map(lambda n: ca.revoke(ca_dir, n), names))
    crl = crl_of(ca_dir)
    assert crl.number == 1 + len(names)
    assert crl.revoked == {load_cert(ca_dir / f"{n}.crt").serial_number for n in names}


def test_issue_concurrent_same_name_makes_one(ca_dir: Path) -> None:
    def attempt(_: int) -> str:
        try:
            ca.issue(ca_dir, "node1")
        except ConfigError:
            return "refused"
        return "made"

    with ThreadPoolExecutor(6) as pool:
        outcomes = sorted(pool.map(attempt, range(6)))
    assert outcomes == ["made"] + ["refused"] * 5


# --- file writers ----------------------------------------------------------


@pytest.mark.parametrize(
    ("write", "mode"),
    [(ca.write_private, 0o600), (ca.write_public, 0o644)],
    ids=["private", "public"],
)
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o000])
def test_write_mode_whatever_umask_and_stale_temp(
    tmp_path: Path, write, mode: int, umask: int
) -> None:
    path = tmp_path / "node1.key"
    path.write_bytes(b"old")
    os.chmod(path, 0o666)
    stale = tmp_path / ".node1.key.tmp"  # what the old writer left behind, readable by all
    stale.write_bytes(b"stale")
    os.chmod(stale, 0o666)
    old = os.umask(umask)
    try:
        write(path, b"secret")
    finally:
        os.umask(old)
    assert path.read_bytes() == b"secret"
    assert mode_of(path) == mode
    assert sorted(p.name for p in tmp_path.iterdir()) == [".node1.key.tmp", "node1.key"]
    assert stale.read_bytes() == b"stale"  # never written through


def test_write_private_failure_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "node1.key"
    path.write_bytes(b"old")
    with pytest.raises(TypeError):
        ca.write_private(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["node1.key"]
