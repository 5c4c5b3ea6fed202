"""CertsDir: what a daemon loads at start, and every way it refuses."""

from __future__ import annotations

import datetime
import os
import re
import shutil
from pathlib import Path
from typing import Callable

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from spirtd.errors import ConfigError, SecurityError
from spirtd.security import ca
from spirtd.security.certsdir import CertsDir, Credentials
from spirtd.security.identity import Role

from .conftest import load_cert, now_s

DAY = datetime.timedelta(days=1)


def test_certs_dir_credentials_happy_path_returns_working_pem(ca_dir: Path) -> None:
    ca.issue(ca_dir, "node1")
    certs = CertsDir(ca_dir)
    creds = certs.credentials("node1", role=Role.PEER)

    assert isinstance(creds, Credentials)
    assert (creds.identity.name, creds.identity.role) == ("node1", Role.PEER)
    assert creds.cert_pem == (ca_dir / "node1.crt").read_bytes()
    assert creds.key_pem == (ca_dir / "node1.key").read_bytes()
    assert certs.ca_pem == (ca_dir / ca.CA_CERT).read_bytes()

    # The key signs what the certificate's public key verifies.
    key = serialization.load_pem_private_key(creds.key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    ecdsa = ec.ECDSA(hashes.SHA256())
    signature = key.sign(b"hello", ecdsa)
    load_cert(ca_dir / "node1.crt").public_key().verify(signature, b"hello", ecdsa)


@pytest.mark.parametrize("role", [None, Role.CLIENT], ids=["any-role", "client"])
def test_certs_dir_credentials_client_certificate(ca_dir: Path, role: Role | None) -> None:
    ca.issue(ca_dir, "alice", role=Role.CLIENT)
    assert CertsDir(str(ca_dir)).credentials("alice", role=role).identity.role is Role.CLIENT


def test_certs_dir_credentials_repr_hides_the_key(ca_dir: Path) -> None:
    ca.issue(ca_dir, "node1")
    creds = CertsDir(ca_dir).credentials("node1")
    assert b"PRIVATE KEY" in creds.key_pem
    assert "PRIVATE KEY" not in repr(creds)


def test_certs_dir_credentials_without_ca_key_works(ca_dir: Path, tmp_path: Path) -> None:
    """A peer's dir: ca.crt, crl.pem and its own pair, no ca.key."""
    ca.issue(ca_dir, "node1")
    peer_dir = tmp_path / "peer"
    peer_dir.mkdir()
    for name in (ca.CA_CERT, ca.CRL_FILE, "node1.crt", "node1.key"):
        shutil.copy2(ca_dir / name, peer_dir / name)
    assert CertsDir(peer_dir).credentials("node1", role=Role.PEER).identity.name == "node1"


def test_certs_dir_credentials_without_crl_works(ca_dir: Path) -> None:
    ca.issue(ca_dir, "node1")
    (ca_dir / ca.CRL_FILE).unlink()
    certs = CertsDir(ca_dir)
    assert certs.revocations() is None
    assert certs.credentials("node1").identity.name == "node1"


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        (None, ConfigError, "no ca.crt in .*: make the cluster CA with `spirtd certs init --dir"),
        (b"garbage", SecurityError, "ca.crt is not a PEM certificate"),
    ],
    ids=["missing", "garbage"],
)
def test_certs_dir_bad_ca_cert_refused(
    tmp_path: Path, content: bytes | None, error: type, message: str
) -> None:
    if content is not None:
        (tmp_path / ca.CA_CERT).write_bytes(content)
    with pytest.raises(error, match=message):
        CertsDir(tmp_path)


# Each case: what to do to a dir holding node1 (peer) and node2 (peer) issued
# by ca_dir's CA, then the error and message credentials("node1", role=PEER)
# must give.
Setup = Callable[[Path, Path], None]


def remove(name: str) -> Setup:
    return lambda d, other: (d / name).unlink()


def chmod(name: str, mode: int) -> Setup:
    return lambda d, other: os.chmod(d / name, mode)


def copy(src: str, dst: str, *, from_other: bool = False) -> Setup:
    def run(d: Path, other: Path) -> None:
        shutil.copy(((other if from_other else d) / src), d / dst)
        os.chmod(d / dst, 0o600 if dst.endswith(".key") else 0o644)

    return run


def write(name: str, data: bytes) -> Setup:
    return lambda d, other: (d / name).write_bytes(data)


def copy_pair(src: str, dst: str) -> Setup:
    def run(d: Path, other: Path) -> None:
        for suffix in (".crt", ".key"):
            copy(f"{src}{suffix}", f"{dst}{suffix}")(d, other)

    return run


BAD_PEM = b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"


def reissue(**kwargs) -> Setup:
    return lambda d, other: ca.issue(d, "node1", replace=True, **kwargs)


def revoke_node1(d: Path, other: Path) -> None:
    ca.revoke(d, "node1")


def other_ca_pair(d: Path, other: Path) -> None:
    ca.issue(other, "node1")
    for name in ("node1.crt", "node1.key"):
        copy(name, name, from_other=True)(d, other)


def encrypted_key(d: Path, other: Path) -> None:
    key = serialization.load_pem_private_key((d / "node1.key").read_bytes(), password=None)
    (d / "node1.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )


def expired_ca(d: Path, other: Path) -> None:
    for name in (ca.CA_CERT, ca.CA_KEY, ca.CRL_FILE, "node1.crt", "node1.key"):
        (d / name).unlink()
    past = now_s() - 30 * DAY
    ca.init_ca(d, days=10, now=past)
    ca.issue(d, "node1", days=5, now=past)


FAILURES: list[tuple[str, Setup, type, str]] = [
    ("no-cert", remove("node1.crt"), ConfigError,
     "no node1.crt in .*: make it where the CA key is with `spirtd certs issue node1 --dir DIR` "
     "and copy node1.crt and node1.key here"),
    ("no-key", remove("node1.key"), ConfigError,
     "no node1.key in .*`spirtd certs issue node1 --dir DIR`"),
    ("key-0644", chmod("node1.key", 0o644), ConfigError,
     r"node1.key is readable by others \(mode 0644\); chmod 600 it"),
    ("key-0640", chmod("node1.key", 0o640), ConfigError, r"readable by others \(mode 0640\)"),
    ("key-0604", chmod("node1.key", 0o604), ConfigError, r"readable by others \(mode 0604\)"),
    ("other-ca", other_ca_pair, SecurityError,
     "node1.crt is not signed by the CA in .* issue it again with this CA"),
    ("copied-other-name", copy_pair("node2", "node1"), SecurityError,
     "node1.crt is made out to 'node2', not 'node1'"),
    ("wrong-role", reissue(role=Role.CLIENT), SecurityError,
     "node1.crt is a client certificate, not a peer one"),
    ("expired", reissue(now=now_s() - 3 * DAY, days=1), SecurityError,
     r"node1.crt expired on \d{4}-\d\d-\d\d \d\d:\d\d UTC"),
    ("not-yet-valid", reissue(now=now_s() + 2 * DAY), SecurityError,
     r"node1.crt is not valid before \d{4}-\d\d-\d\d \d\d:\d\d UTC"),
    ("ca-expired", expired_ca, SecurityError, r"the CA ca.crt expired on"),
    ("revoked", revoke_node1, SecurityError, r"node1.crt is revoked \(crl.pem number 2\)"),
    ("crl-other-ca", copy(ca.CRL_FILE, ca.CRL_FILE, from_other=True), SecurityError,
     "crl.pem: revocation list is not signed by the cluster CA"),
    ("crl-garbage", write(ca.CRL_FILE, b"garbage"), SecurityError,
     "crl.pem: malformed revocation list"),
    ("key-of-other-cert", copy("node2.key", "node1.key"), SecurityError,
     "node1.key is not the key of .*node1.crt"),
    ("cert-garbage", write("node1.crt", BAD_PEM), SecurityError,
     "node1.crt is not a PEM certificate"),
    ("key-garbage", write("node1.key", b"garbage"), SecurityError,
     "node1.key is not an unencrypted PEM private key"),
    ("key-encrypted", encrypted_key, SecurityError,
     "node1.key is not an unencrypted PEM private key"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("setup", "error", "message"),
    [case[1:] for case in FAILURES],
    ids=[case[0] for case in FAILURES],
)
def test_certs_dir_credentials_refused_with_message(
    ca_dir: Path, other_ca_dir: Path, setup: Setup, error: type, message: str
) -> None:
    ca.issue(ca_dir, "node1")
    ca.issue(ca_dir, "node2")
    setup(ca_dir, other_ca_dir)
    with pytest.raises(error, match=message) as info:
        CertsDir(ca_dir).credentials("node1", role=Role.PEER)
    assert "\n" not in str(info.value)


def test_certs_dir_credentials_missing_client_says_role(ca_dir: Path) -> None:
    command = "`spirtd certs issue alice --role client --dir DIR`"
    with pytest.raises(ConfigError, match=re.escape(command)):
        CertsDir(ca_dir).credentials("alice", role=Role.CLIENT)


@pytest.mark.parametrize(
    ("offset", "ok"),
    [
        (-ca.CLOCK_SKEW + datetime.timedelta(seconds=1), True),  # a clock a little behind
        (-ca.CLOCK_SKEW - datetime.timedelta(seconds=1), False),
        (DAY - datetime.timedelta(seconds=1), True),
        (DAY + datetime.timedelta(seconds=1), False),
    ],
    ids=["skew-inside", "skew-outside", "last-second", "after-expiry"],
)
def test_certs_dir_credentials_validity_edges(
    ca_dir: Path, offset: datetime.timedelta, ok: bool
) -> None:
    made = now_s()
    ca.issue(ca_dir, "node1", now=made, days=1)
    certs = CertsDir(ca_dir)
    if ok:
        certs.credentials("node1", now=made + offset)
    else:
        with pytest.raises(SecurityError, match="expired|not valid before"):
            certs.credentials("node1", now=made + offset)


@pytest.mark.parametrize(
    ("name", "now", "message"),
    [
        ("../node1", None, "is not a valid name"),
        ("node1", datetime.datetime(2030, 1, 1), "has no time zone"),
    ],
    ids=["bad-name", "naive-now"],
)
def test_certs_dir_credentials_bad_arguments(
    ca_dir: Path, name: str, now: datetime.datetime | None, message: str
) -> None:
    ca.issue(ca_dir, "node1")
    with pytest.raises(ConfigError, match=message):
        CertsDir(ca_dir).credentials(name, now=now)


def test_certs_dir_revocations_verified_list(ca_dir: Path) -> None:
    ca.issue(ca_dir, "node1")
    crl = ca.revoke(ca_dir, "node1")
    assert CertsDir(ca_dir).revocations() == crl
