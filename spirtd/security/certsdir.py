"""A node's (or client's) view of a certs dir: the CA it trusts, its own
certificate and key, and the revocation list. Everything is checked when
loaded, with errors that say how to fix it:

    ConfigError    a file is missing or its key is readable by others:
                   put the right file there (the message says how)
    SecurityError  the files are there but cannot be trusted: malformed,
                   not signed by this CA, made out to another name or role,
                   expired or not yet valid, revoked, or a key that is not
                   the certificate's
"""

from __future__ import annotations

import datetime
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from spirtd.errors import ConfigError, SecurityError
from spirtd.security.ca import CA_CERT, CRL_FILE, check_now, key_matches
from spirtd.security.identity import Identity, Role, check_name, identity_of
from spirtd.security.revocation import RevocationList

_TIME = "%Y-%m-%d %H:%M"


@dataclass(frozen=True)
class Credentials:
    """What a TLS endpoint presents: its certificate (PEM, the leaf alone:
    the CA's is CertsDir.ca_pem) and its key (PEM, kept out of repr)."""

    identity: Identity
    cert_pem: bytes
    key_pem: bytes = field(repr=False)


class CertsDir:
    """A certs dir; ConfigError or SecurityError at once if its ca.crt is
    missing or unreadable."""

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
            raise SecurityError(f"{ca_path} is not a PEM certificate: {exc}") from exc

    def credentials(
        self, name: str, *, role: Role | None = None, now: datetime.datetime | None = None
    ) -> Credentials:
        """NAME.crt and NAME.key, checked: present, key private, signed by
        this CA, made for name (and role), the CA and it valid now, not
        revoked, and the key the certificate's."""
        check_name(name)
        cert_path, key_path = self.path / f"{name}.crt", self.path / f"{name}.key"
        for path in (cert_path, key_path):
            if not path.is_file():
                role_flag = f" --role {role.value}" if role is not None and role is not Role.PEER else ""
                raise ConfigError(
                    f"no {path.name} in {self.path}: make it where the CA key is with "
                    f"`spirtd certs issue {name}{role_flag} --dir DIR` and copy {name}.crt "
                    f"and {name}.key here"
                )
        mode = stat.S_IMODE(key_path.stat().st_mode)
        if mode & 0o077:
            raise ConfigError(f"{key_path} is readable by others (mode {mode:04o}); chmod 600 it")
        cert_pem, key_pem = cert_path.read_bytes(), key_path.read_bytes()
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
        except ValueError as exc:
            raise SecurityError(f"{cert_path} is not a PEM certificate: {exc}") from exc
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise SecurityError(f"{key_path} is not an unencrypted PEM private key: {exc}") from exc
        identity = self._check_certificate(cert, name, role, check_now(now))
        if not key_matches(key, cert):
            raise SecurityError(
                f"{key_path} is not the key of {cert_path}: copy the {name}.key made with it"
            )
        return Credentials(identity, cert_pem, key_pem)

    def _check_certificate(
        self,
        cert: x509.Certificate,
        name: str,
        role: Role | None,
        now: datetime.datetime,
    ) -> Identity:
        try:
            cert.verify_directly_issued_by(self.ca_cert)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            raise SecurityError(
                f"{name}.crt is not signed by the CA in {self.path} "
                f"(it names {cert.issuer.rfc4514_string()!r} as its issuer): "
                "issue it again with this CA, or copy in the CA that made it"
            ) from None
        identity = identity_of(cert)
        if identity.name != name:
            raise SecurityError(f"{name}.crt is made out to {identity.name!r}, not {name!r}")
        if role is not None and identity.role is not role:
            raise SecurityError(
                f"{name}.crt is a {identity.role.value} certificate, not a {role.value} one"
            )
        for what, c in ((f"the CA {CA_CERT}", self.ca_cert), (f"{name}.crt", cert)):
            if now > c.not_valid_after_utc:
                raise SecurityError(f"{what} expired on {c.not_valid_after_utc:{_TIME}} UTC")
            if now < c.not_valid_before_utc:
                raise SecurityError(
                    f"{what} is not valid before {c.not_valid_before_utc:{_TIME}} UTC "
                    "(is this machine's clock right?)"
                )
        crl = self.revocations()
        if crl is not None and crl.is_revoked(cert.serial_number):
            raise SecurityError(f"{name}.crt is revoked ({CRL_FILE} number {crl.number})")
        return identity

    def revocations(self) -> RevocationList | None:
        """crl.pem, verified against the CA (SecurityError if it is not
        the CA's); None if there is none."""
        path = self.path / CRL_FILE
        if not path.is_file():
            return None
        try:
            return RevocationList.from_pem(path.read_bytes()).verify(self.ca_cert)
        except SecurityError as exc:
            raise SecurityError(f"{path}: {exc}") from exc
