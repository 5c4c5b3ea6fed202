"""A node's (or client's) view of a certs dir: the CA it trusts, its own
certificate and key, and the revocation list. Everything is checked when
loaded, with errors that say how to fix it."""

from __future__ import annotations

import datetime
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from spirtd.errors import ConfigError, SecurityError
from spirtd.security.ca import CA_CERT, CRL_FILE
from spirtd.security.identity import Identity, Role, check_name, identity_of
from spirtd.security.revocation import RevocationList


@dataclass(frozen=True)
class Credentials:
    """What a TLS endpoint presents: its certificate chain and key (PEM)."""

    identity: Identity
    cert_pem: bytes
    key_pem: bytes


class CertsDir:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        ca_path = self.path / CA_CERT
        if not ca_path.is_file():
            raise ConfigError(
                f"no {CA_CERT} in {self.path}: make the cluster CA with "
                f"`spirtd certs init --dir {self.path}`, or copy its {CA_CERT} here"
            )
        self.ca_pem = ca_path.read_bytes()
        try:
            self.ca_cert = x509.load_pem_x509_certificate(self.ca_pem)
        except ValueError as exc:
            raise ConfigError(f"{ca_path} is not a PEM certificate: {exc}") from exc

    def credentials(
        self, name: str, *, role: Role | None = None, now: datetime.datetime | None = None
    ) -> Credentials:
        """NAME.crt and NAME.key, checked: present, key private, signed by
        this CA, made for name (and role), not expired, not revoked."""
        check_name(name)
        cert_path, key_path = self.path / f"{name}.crt", self.path / f"{name}.key"
        for path in (cert_path, key_path):
            if not path.is_file():
                raise ConfigError(
                    f"no {path.name} in {self.path}: make it where the CA key is with "
                    f"`spirtd certs issue {name} --dir DIR` and copy {name}.crt and {name}.key here"
                )
        mode = stat.S_IMODE(key_path.stat().st_mode)
        if mode & 0o077:
            raise ConfigError(f"{key_path} is readable by others (mode {mode:04o}); chmod 600 it")
        cert_pem, key_pem = cert_path.read_bytes(), key_path.read_bytes()
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
            key = serialization.load_pem_private_key(key_pem, password=None)
        except ValueError as exc:
            raise ConfigError(f"cannot read {name}'s certificate or key: {exc}") from exc
        self._check_certificate(cert, name, role, now)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or (
            key.public_key().public_numbers() != cert.public_key().public_numbers()  # type: ignore[union-attr]
        ):
            raise ConfigError(f"{key_path} is not the key of {cert_path}")
        return Credentials(identity_of(cert), cert_pem, key_pem)

    def _check_certificate(
        self,
        cert: x509.Certificate,
        name: str,
        role: Role | None,
        now: datetime.datetime | None,
    ) -> None:
        try:
            cert.verify_directly_issued_by(self.ca_cert)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{name}.crt is not signed by the CA in {self.path}: {exc}") from exc
        identity = identity_of(cert)
        if identity.name != name:
            raise ConfigError(f"{name}.crt is made out to {identity.name!r}, not {name!r}")
        if role is not None and identity.role is not role:
            raise ConfigError(f"{name}.crt is a {identity.role.value} certificate, not a {role.value} one")
        now = now or datetime.datetime.now(datetime.timezone.utc)
        if now > cert.not_valid_after_utc:
            raise ConfigError(f"{name}.crt expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
        if now < cert.not_valid_before_utc:
            raise ConfigError(f"{name}.crt is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
        crl = self.revocations()
        if crl is not None and crl.is_revoked(cert.serial_number):
            raise ConfigError(f"{name}.crt is revoked ({CRL_FILE} number {crl.number})")

    def revocations(self) -> RevocationList | None:
        """crl.pem, verified against the CA; None if there is none."""
        path = self.path / CRL_FILE
        if not path.is_file():
            return None
        try:
            return RevocationList.from_pem(path.read_bytes()).verify(self.ca_cert)
        except SecurityError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
