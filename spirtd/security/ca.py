"""The cluster CA: makes node and client certificates and revokes them.

A certs dir holds ca.crt, each name's NAME.crt and NAME.key, crl.pem, and
ca.key only where certificates are made. Private keys are written 0600.
Keys are ECDSA P-256: small, fast, and supported by every TLS stack gRPC uses.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from spirtd.errors import ConfigError
from spirtd.security.identity import ORGANIZATION, Role, check_name
from spirtd.security.revocation import RevocationList

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
CRL_FILE = "crl.pem"
CA_DAYS = 3650
CERT_DAYS = 365
# Certificates start slightly in the past so that a peer whose clock is a
# little behind does not refuse a certificate made a moment ago.
CLOCK_SKEW = datetime.timedelta(minutes=5)


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def write_private(path: Path, data: bytes) -> None:
    """Writes a file only its owner can read, replacing any old one atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA certificate and key of a certs dir where certificates are made."""
    cert_path, key_path = folder / CA_CERT, folder / CA_KEY
    if not key_path.exists() or not cert_path.exists():
        raise ConfigError(
            f"no CA in {folder}: make one with `spirtd certs init --dir {folder}` "
            f"(certificates are made where {CA_KEY} is)"
        )
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    return cert, key  # type: ignore[return-value]


def _sign_crl(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    number: int,
    revoked: Iterable[x509.RevokedCertificate],
    now: datetime.datetime,
) -> RevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - CLOCK_SKEW)
        .next_update(ca_cert.not_valid_after_utc)
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    for entry in revoked:
        builder = builder.add_revoked_certificate(entry)
    return RevocationList.from_crl(builder.sign(ca_key, hashes.SHA256()))


def init_ca(
    folder: Path,
    *,
    common_name: str = "spirt cluster CA",
    days: int = CA_DAYS,
    now: datetime.datetime | None = None,
) -> Path:
    """Makes a cluster CA (ca.crt, ca.key 0600) and an empty crl.pem."""
    folder = Path(folder)
    if (folder / CA_KEY).exists() or (folder / CA_CERT).exists():
        raise ConfigError(f"a CA already exists in {folder}; refusing to replace it")
    if days < 1:
        raise ConfigError("days must be >= 1")
    now = now or _utcnow()
    folder.mkdir(parents=True, exist_ok=True)
    key = _new_key()
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])  # fmt: skip
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_private(folder / CA_KEY, _key_pem(key))
    write_public(folder / CA_CERT, _cert_pem(cert))
    write_public(folder / CRL_FILE, _sign_crl(cert, key, 1, [], now).to_pem())
    return folder / CA_CERT


def issue(
    folder: Path,
    name: str,
    *,
    role: Role = Role.PEER,
    ips: Iterable[str] = (),
    dns: Iterable[str] = (),
    days: int = CERT_DAYS,
    now: datetime.datetime | None = None,
    replace: bool = False,
) -> tuple[Path, Path]:
    """Makes NAME.crt and NAME.key (0600), signed by the CA in folder.

    The name goes in the subject (CN) and, as a DNS name, in the subject
    alternative names, so that a peer can be verified by its id whatever
    address it is reached at; ips and dns add more names.
    """
    folder = Path(folder)
    check_name(name)
    if days < 1:
        raise ConfigError("days must be >= 1")
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    if cert_path.exists() and not replace:
        raise ConfigError(f"{cert_path} exists; revoke it first or choose another name")
    try:
        addresses = [ipaddress.ip_address(ip) for ip in ips]
    except ValueError as exc:
        raise ConfigError(f"not an IP address: {exc}") from exc
    ca_cert, ca_key = load_ca(folder)
    now = now or _utcnow()
    key = _new_key()
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if role is Role.PEER:
        usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
    alt_names = [x509.DNSName(name), *(x509.DNSName(d) for d in dns if d != name)]
    alt_names += [x509.IPAddress(a) for a in addresses]
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role.value),
        x509.NameAttribute(NameOID.COMMON_NAME, name),
    ])  # fmt: skip
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    write_private(key_path, _key_pem(key))
    write_public(cert_path, _cert_pem(cert))
    return cert_path, key_path


def revoke(folder: Path, name: str, *, now: datetime.datetime | None = None) -> RevocationList:
    """Adds NAME.crt to crl.pem (with a higher CRL number), signed by the CA.
    Revoking a certificate twice changes nothing."""
    folder = Path(folder)
    check_name(name)
    cert_path = folder / f"{name}.crt"
    if not cert_path.exists():
        raise ConfigError(f"no certificate {cert_path} to revoke")
    ca_cert, ca_key = load_ca(folder)
    serial = x509.load_pem_x509_certificate(cert_path.read_bytes()).serial_number
    crl_path = folder / CRL_FILE
    current = x509.load_pem_x509_crl(crl_path.read_bytes()) if crl_path.exists() else None
    entries = list(current) if current is not None else []
    number = RevocationList.from_crl(current).number if current is not None else 0
    if any(e.serial_number == serial for e in entries):
        return RevocationList.from_crl(current)  # type: ignore[arg-type]
    now = now or _utcnow()
    entries.append(
        x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
    )
    crl = _sign_crl(ca_cert, ca_key, number + 1, entries, now)
    write_public(crl_path, crl.to_pem())
    return crl
