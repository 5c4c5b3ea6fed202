"""The cluster CA: makes node and client certificates and revokes them.

A certs dir holds ca.crt, each name's NAME.crt and NAME.key, crl.pem, and
ca.key only where certificates are made. Private keys are written 0600.
Keys are ECDSA P-256: small, fast, and supported by every TLS stack gRPC uses.

Every file is written whole or not at all (a temporary file, then a rename).
issue and revoke hold a lock on ca.key while they read and write, so that two
at once can neither lose a revocation nor both make one name.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import ipaddress
import stat
import string
from pathlib import Path
from typing import Iterable, Iterator

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from spirtd.clock import SystemClock
from spirtd.errors import ConfigError, SecurityError
from spirtd.files import PRIVATE_MODE, PUBLIC_MODE, write_atomically
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
CA_NAME_MAX_CHARS = 64  # X.509's upper bound for a common name
DNS_NAME_MAX_CHARS = 253
DNS_LABEL_MAX_CHARS = 63
_DNS_LABEL_CHARS = frozenset(string.ascii_letters + string.digits + "-_")


def utcnow() -> datetime.datetime:
    """The time now, in UTC, from spirtd.clock (the one place that reads time)."""
    return datetime.datetime.fromtimestamp(SystemClock().wall(), datetime.timezone.utc)


def check_now(now: datetime.datetime | None) -> datetime.datetime:
    """now, or the current time; ConfigError for a time without a zone."""
    if now is None:
        return utcnow()
    if now.tzinfo is None or now.utcoffset() is None:
        raise ConfigError(f"now={now!r} has no time zone; give an aware datetime (UTC)")
    return now


def write_private(path: Path, data: bytes) -> None:
    """Writes a file only its owner can read (0600), replacing any old one atomically."""
    write_atomically(Path(path), data, PRIVATE_MODE)


def write_public(path: Path, data: bytes) -> None:
    """Writes a file everyone can read (0644), replacing any old one atomically."""
    write_atomically(Path(path), data, PUBLIC_MODE)


def _check_days(days: int, now: datetime.datetime) -> datetime.datetime:
    """The end of a validity of days from now, else ConfigError."""
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ConfigError(f"days must be a whole number >= 1, not {days!r}")
    try:
        return now + datetime.timedelta(days=days)
    except OverflowError:
        raise ConfigError(f"{days} days from now is past the year 9999; give fewer days") from None


def _dns_problem(name: str) -> str | None:
    """What is wrong with name as a DNS name in a certificate; None if nothing."""
    if not name:
        return "it is empty"
    if len(name) > DNS_NAME_MAX_CHARS:
        return f"it is {len(name)} characters long, over {DNS_NAME_MAX_CHARS}"
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(name)
        return "it is an IP address: give it with --ip (ips=)"
    for label in name.split("."):
        if not label:
            return "it has an empty part (a leading, trailing or double '.')"
        if len(label) > DNS_LABEL_MAX_CHARS:
            return f"its part {label!r} is over {DNS_LABEL_MAX_CHARS} characters"
        bad = sorted({c for c in label if c not in _DNS_LABEL_CHARS})
        if bad:
            return f"{''.join(bad)!r} {'is' if len(bad) == 1 else 'are'} not allowed"
        if label.startswith("-") or label.endswith("-"):
            return f"its part {label!r} starts or ends with '-'"
    return None


def _check_dns(names: Iterable[str]) -> list[str]:
    """The DNS names, in order without repeats, else ConfigError."""
    checked: list[str] = []
    for name in names:
        problem = _dns_problem(name) if isinstance(name, str) else "it is not a string"
        if problem is not None:
            raise ConfigError(
                f"{name!r} is not a valid DNS name: {problem}; use letters, digits, '-' and '_' "
                "in parts joined by '.'"
            )
        if name not in checked:
            checked.append(name)
    return checked


def _check_ips(ips: Iterable[str]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The IP addresses, in order without repeats, else ConfigError."""
    addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for ip in ips:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            raise ConfigError(
                f"{ip!r} is not an IP address (IPv4 like 10.0.0.1 or IPv6 like fd00::1)"
            ) from None
        if address not in addresses:
            addresses.append(address)
    return addresses


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA certificate and key of a certs dir where certificates are made,
    checked: both there, the key private (0600), and the key the certificate's."""
    folder = Path(folder)
    cert_path, key_path = folder / CA_CERT, folder / CA_KEY
    if not cert_path.is_file() and not key_path.is_file():
        raise ConfigError(f"no CA in {folder}: make one with `spirtd certs init --dir {folder}`")
    if not key_path.is_file():
        raise ConfigError(
            f"no {CA_KEY} in {folder}: certificates are made only where the CA's key is, "
            f"not in a dir that holds only its {CA_CERT}"
        )
    if not cert_path.is_file():
        raise ConfigError(f"{CA_KEY} but no {CA_CERT} in {folder}: restore {CA_CERT} from any peer")
    mode = stat.S_IMODE(key_path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(f"{key_path} is readable by others (mode {mode:04o}); chmod 600 it")
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except ValueError as exc:
        raise ConfigError(f"{cert_path} is not a PEM certificate: {exc}") from exc
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigError(f"{key_path} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not key_matches(key, cert):
        raise ConfigError(f"{key_path} is not the key of {cert_path}")
    return cert, key


def key_matches(key: PrivateKeyTypes, cert: x509.Certificate) -> bool:
    """Whether key is the private key of cert's public key."""
    der, spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    mine = key.public_key().public_bytes(der, spki)  # type: ignore[union-attr]
    return mine == cert.public_key().public_bytes(der, spki)


@contextlib.contextmanager
def _holding_ca(folder: Path) -> Iterator[tuple[x509.Certificate, ec.EllipticCurvePrivateKey]]:
    """The CA (load_ca), with ca.key locked until the block ends: issue and
    revoke read, decide and write under it."""
    ca = load_ca(folder)
    with open(folder / CA_KEY, "rb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield ca


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
    """Makes a cluster CA (ca.crt, ca.key 0600) and an empty crl.pem
    (number 1). Refuses (ConfigError) where a CA is, changing nothing."""
    folder = Path(folder)
    if (folder / CA_KEY).exists() or (folder / CA_CERT).exists():
        raise ConfigError(f"a CA already exists in {folder}; refusing to replace it")
    if not isinstance(common_name, str) or not 1 <= len(common_name) <= CA_NAME_MAX_CHARS:
        raise ConfigError(f"the CA's name {common_name!r} must be 1-{CA_NAME_MAX_CHARS} characters")
    now = check_now(now)
    not_after = _check_days(days, now)
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
        .not_valid_after(not_after)
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
    address it is reached at; ips and dns add more names. Peers get the
    serverAuth and clientAuth key usages, clients clientAuth only.

    Refuses (ConfigError, nothing written) a bad name, IP, DNS name or days,
    a validity that would outlive the CA, and a NAME.crt that exists unless
    replace. Replacing does not revoke the old certificate: revoke it first
    if it must stop working (its serial is lost once it is replaced).
    """
    folder = Path(folder)
    check_name(name)
    try:
        role = Role(role)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise ConfigError(f"unknown role {role!r}: use one of {known}") from None
    now = check_now(now)
    not_after = _check_days(days, now)
    alt_names: list[x509.GeneralName] = [x509.DNSName(d) for d in _check_dns([name, *dns])]
    alt_names += [x509.IPAddress(a) for a in _check_ips(ips)]
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    with _holding_ca(folder) as (ca_cert, ca_key):
        if cert_path.exists() and not replace:
            raise ConfigError(
                f"{cert_path} exists; to make a new one use --replace (replace=True), after "
                f"`spirtd certs revoke {name} --dir {folder}` if the old one must stop working"
            )
        if not_after > ca_cert.not_valid_after_utc:
            raise ConfigError(
                f"{days} days would outlive the CA, which expires on "
                f"{ca_cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; give fewer days"
            )
        key = _new_key()
        subject = _subject(name, role)
        cert = _leaf_certificate(ca_cert, ca_key, key, subject, role, alt_names, now, not_after)
        write_private(key_path, _key_pem(key))
        write_public(cert_path, _cert_pem(cert))
    return cert_path, key_path


def _subject(name: str, role: Role) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role.value),
        x509.NameAttribute(NameOID.COMMON_NAME, name),
    ])  # fmt: skip


def _leaf_certificate(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    role: Role,
    alt_names: list[x509.GeneralName],
    now: datetime.datetime,
    not_after: datetime.datetime,
) -> x509.Certificate:
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if role is Role.PEER:
        usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
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


def revoke(folder: Path, name: str, *, now: datetime.datetime | None = None) -> RevocationList:
    """Adds NAME.crt to crl.pem (with a higher CRL number), signed by the CA.
    Revoking a certificate twice changes nothing.

    Refuses (ConfigError) without NAME.crt or the CA, and without a crl.pem
    the CA signed: a fresh list would restart at number 1, which peers that
    hold a list already never adopt."""
    folder = Path(folder)
    check_name(name)
    now = check_now(now)
    cert_path, crl_path = folder / f"{name}.crt", folder / CRL_FILE
    if not cert_path.is_file():
        raise ConfigError(f"no certificate {cert_path} to revoke")
    try:
        serial = x509.load_pem_x509_certificate(cert_path.read_bytes()).serial_number
    except ValueError as exc:
        raise ConfigError(f"{cert_path} is not a PEM certificate: {exc}") from exc
    with _holding_ca(folder) as (ca_cert, ca_key):
        if not crl_path.is_file():
            raise ConfigError(
                f"no {CRL_FILE} in {folder}: copy it back from any peer (a new list would "
                "restart at number 1, which peers never adopt)"
            )
        try:
            current = RevocationList.from_pem(crl_path.read_bytes()).verify(ca_cert)
        except SecurityError as exc:
            raise ConfigError(f"{crl_path}: {exc}; copy a good one back from any peer") from exc
        if current.is_revoked(serial):
            return current
        entries = list(x509.load_der_x509_crl(current.der))
        entries.append(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        )
        crl = _sign_crl(ca_cert, ca_key, current.number + 1, entries, now)
        write_public(crl_path, crl.to_pem())
    return crl
