"""The cluster's certificate revocation list (CRL), signed by the CA.

A member adopts a list only if the CA signed it and its CRL number is
higher than the one it holds; lists spread by gossip.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from spirtd.errors import SecurityError


@dataclass(frozen=True)
class RevocationList:
    der: bytes
    number: int
    revoked: frozenset[int]  # certificate serial numbers

    @classmethod
    def from_crl(cls, crl: x509.CertificateRevocationList) -> "RevocationList":
        try:
            number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        except x509.ExtensionNotFound:
            raise SecurityError("revocation list has no CRL number") from None
        return cls(
            der=crl.public_bytes(serialization.Encoding.DER),
            number=number,
            revoked=frozenset(r.serial_number for r in crl),
        )

    @classmethod
    def from_der(cls, der: bytes) -> "RevocationList":
        try:
            return cls.from_crl(x509.load_der_x509_crl(der))
        except ValueError as exc:
            raise SecurityError(f"malformed revocation list: {exc}") from exc

    @classmethod
    def from_pem(cls, pem: bytes) -> "RevocationList":
        try:
            return cls.from_crl(x509.load_pem_x509_crl(pem))
        except ValueError as exc:
            raise SecurityError(f"malformed revocation list: {exc}") from exc

    def to_pem(self) -> bytes:
        return x509.load_der_x509_crl(self.der).public_bytes(serialization.Encoding.PEM)

    def verify(self, ca: x509.Certificate) -> "RevocationList":
        """Returns self if the CA signed this list, else SecurityError."""
        crl = x509.load_der_x509_crl(self.der)
        if crl.issuer != ca.subject or not crl.is_signature_valid(ca.public_key()):
            raise SecurityError("revocation list is not signed by the cluster CA")
        return self

    def is_revoked(self, serial: int) -> bool:
        return serial in self.revoked

    def newer_than(self, other: "RevocationList | None") -> bool:
        return other is None or self.number > other.number
