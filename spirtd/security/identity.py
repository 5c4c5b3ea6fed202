"""Who a certificate belongs to: its name (the peer id) and its role.

A certificate's subject is CN=<name>, OU=<role>, O=spirt. Peer certificates
may call every service; client and operator certificates only Control. A
client may read and cancel only the jobs it submitted; an operator (and a
peer) may act on any job.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import functools
import hashlib
import ipaddress
import string
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from spirtd.errors import ConfigError, SecurityError

ORGANIZATION = "spirt"
# Peer ids and client names: safe as file names, DNS names and log words.
NAME_MAX_CHARS = 63
_NAME_ENDS = frozenset(string.ascii_letters + string.digits)
_NAME_CHARS = _NAME_ENDS | frozenset("._-")
# NAME.crt and NAME.key would be the CA's own files.
RESERVED_NAMES = frozenset({"ca"})
_NAME_RULE = (
    f"use 1-{NAME_MAX_CHARS} letters, digits, '.', '_' or '-', with each part between "
    "dots starting and ending with a letter or digit"
)
IDENTITY_CACHE_SIZE = 1024


class Role(enum.Enum):
    PEER = "peer"
    CLIENT = "client"
    OPERATOR = "operator"

    @property
    def acts_on_any_job(self) -> bool:
        return self is not Role.CLIENT


@dataclass(frozen=True)
class Identity:
    name: str
    role: Role
    serial: int
    not_after: datetime.datetime
    fingerprint: str  # sha256 of the DER certificate, hex

    def __str__(self) -> str:
        return f"{self.role.value} {self.name!r}"


def _name_problem(name: object) -> str | None:
    """What is wrong with name as a peer or client name, in words; None if
    nothing. A name is a file name (NAME.crt), a DNS name in the certificate
    (what a peer is verified by) and a word in logs: plain ASCII, each part
    between dots starting and ending with a letter or digit."""
    if not isinstance(name, str):
        return f"a name is a string, not {type(name).__name__}"
    if not name:
        return "it is empty"
    if len(name) > NAME_MAX_CHARS:
        return f"it is {len(name)} characters long, over {NAME_MAX_CHARS}"
    bad = sorted({c for c in name if c not in _NAME_CHARS})
    if bad:
        return f"{''.join(bad)!r} {'is' if len(bad) == 1 else 'are'} not allowed"
    for part in name.split("."):
        what = "it" if part == name else f"its part {part!r}"
        if not part:
            return "it has an empty part between dots"
        if part[0] not in _NAME_ENDS:
            return f"{what} starts with {part[0]!r}"
        if part[-1] not in _NAME_ENDS:
            return f"{what} ends with {part[-1]!r}"
    if name.lower() in RESERVED_NAMES:
        return f"it is reserved for the CA's own files ({name}.crt, {name}.key)"
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(name)
        return "it is an IP address, and a name is checked as a DNS name"
    return None


def check_name(name: str) -> str:
    """A valid peer or client name, else ConfigError saying what is wrong."""
    problem = _name_problem(name)
    if problem is not None:
        raise ConfigError(f"{name!r} is not a valid name: {problem}; {_NAME_RULE}")
    return name


def _single(cert: x509.Certificate, oid: x509.ObjectIdentifier, what: str) -> str:
    values = cert.subject.get_attributes_for_oid(oid)
    if len(values) != 1:
        raise SecurityError(f"certificate {cert.subject.rfc4514_string()} has no single {what}")
    return str(values[0].value)


def identity_of(cert: x509.Certificate) -> Identity:
    """Who the certificate names (CN) and in which role (OU); SecurityError
    if it names no one, or no valid name, or no known role. It does not check
    who signed the certificate: that is the TLS handshake's or CertsDir's job."""
    name = _single(cert, NameOID.COMMON_NAME, "common name")
    problem = _name_problem(name)
    if problem is not None:
        raise SecurityError(f"certificate names {name!r}, which is not a valid name: {problem}")
    role_text = _single(cert, NameOID.ORGANIZATIONAL_UNIT_NAME, "role (OU)")
    try:
        role = Role(role_text)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise SecurityError(
            f"certificate of {name!r} has an unknown role {role_text!r} (known: {known})"
        ) from None
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
    """The identity in a PEM certificate (as gRPC's auth context gives it),
    cached by the PEM bytes: a connection's every call costs one lookup.
    Errors are not cached. Revocation is checked apart, by serial."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise SecurityError(f"not a PEM certificate: {exc}") from exc
    return identity_of(cert)
