"""Fixtures for the certificate tests: real CAs in temporary dirs, and a way
to sign certificates the CLI would never make (no role, an unknown role...)."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from spirtd.security import ca

UTC = datetime.timezone.utc


def utc(*args: int) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=UTC)


def now_s() -> datetime.datetime:
    """The time now to the second (certificates keep whole seconds)."""
    return ca.utcnow().replace(microsecond=0)


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


def mode_of(path: Path) -> int:
    return Path(path).stat().st_mode & 0o777


def snapshot(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file in folder: contents, mode and mtime, to show nothing changed."""
    return {
        p.name: (p.read_bytes(), p.stat().st_mode, p.stat().st_mtime_ns)
        for p in sorted(Path(folder).iterdir())
    }


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    """A certs dir with a fresh CA (ca.crt, ca.key, crl.pem)."""
    folder = tmp_path / "certs"
    ca.init_ca(folder)
    return folder


@pytest.fixture
def other_ca_dir(tmp_path: Path) -> Path:
    """A second CA with the same (default) name as ca_dir's: only its key differs."""
    folder = tmp_path / "other"
    ca.init_ca(folder)
    return folder


CraftCert = Callable[..., bytes]


@pytest.fixture
def craft_cert(ca_dir: Path) -> CraftCert:
    """craft_cert([(oid, value), ...]) -> PEM of a certificate with that
    subject, signed by ca_dir's CA: for subjects `spirtd certs` never makes."""
    ca_cert, ca_key = ca.load_ca(ca_dir)

    def craft(attributes: list[tuple[x509.ObjectIdentifier, str]]) -> bytes:
        key = ec.generate_private_key(ec.SECP256R1())
        now = ca.utcnow()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - ca.CLOCK_SKEW)
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(ca_key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM)

    return craft


SUBJECT_OK = [
    (NameOID.ORGANIZATION_NAME, "spirt"),
    (NameOID.ORGANIZATIONAL_UNIT_NAME, "peer"),
    (NameOID.COMMON_NAME, "node1"),
]
