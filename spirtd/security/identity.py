"""Who a certificate belongs to: its name (the peer id) and its role.

A certificate's subject is CN=<name>, OU=<role>, O=spirt. Peer certificates
may call every service; client certificates only Control.
"""

from __future__ import annotations

import datetime
import enum
import functools
import hashlib
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from spirtd.errors import ConfigError, SecurityError

ORGANIZATION = "spirt"
# Peer ids and client names: safe as file names, DNS labels and log words.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
IDENTITY_CACHE_SIZE = 1024


class Role(enum.Enum):
    PEER = "peer"
    CLIENT = "client"


@dataclass(frozen=True)
class Identity:
    name: str
    role: Role
    serial: int
    not_after: datetime.datetime
    fingerprint: str  # sha256 of the DER certificate, hex

    def __str__(self) -> str:
        return f"{self.role.value} {self.name!r}"


def check_name(name: str) -> str:
    """A valid peer or client name, else ConfigError."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(
            f"{name!r} is not a valid name: use 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def _single(cert: x509.Certificate, oid: x509.ObjectIdentifier, what: str) -> str:
    values = cert.subject.get_attributes_for_oid(oid)
    if len(values) != 1:
        raise SecurityError(f"certificate {cert.subject.rfc4514_string()} has no single {what}")
    return str(values[0].value)


def identity_of(cert: x509.Certificate) -> Identity:
    name = _single(cert, NameOID.COMMON_NAME, "common name")
    role_text = _single(cert, NameOID.ORGANIZATIONAL_UNIT_NAME, "role (OU)")
    try:
        role = Role(role_text)
    except ValueError:
        raise SecurityError(f"certificate of {name!r} has an unknown role {role_text!r}") from None
    der = cert.public_bytes(serialization.Encoding.DER)
    return Identity(
        name=name,
        role=role,
        serial=cert.serial_number,
        not_after=cert.not_valid_after_utc,
        fingerprint=hashlib.sha256(der).hexdigest(),
    )


@functools.lru_cache(maxsize=IDENTITY_CACHE_SIZE)
def identity_from_pem(pem: bytes) -> Identity:
    """The identity in a PEM certificate (as gRPC's auth context gives it)."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise SecurityError(f"not a PEM certificate: {exc}") from exc
    return identity_of(cert)
