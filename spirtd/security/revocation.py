"""The cluster's certificate revocation list (CRL), signed by the CA.

A member adopts a list only if the CA signed it and its CRL number is
higher than the one it holds; lists spread by gossip.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from spirtd.errors import SecurityError


@dataclass(frozen=True)
class RevocationList:
    """A CRL as it travels (der) with what it says (number, revoked).

    Make one with from_der/from_pem (or from_crl), which read number and
    revoked out of der; verify() checks that the CA signed der and that
    number and revoked are what it says. Never trust one before verify()."""

    der: bytes
    number: int
    revoked: frozenset[int]  # certificate serial numbers

    @classmethod
    def from_crl(cls, crl: x509.CertificateRevocationList) -> "RevocationList":
        try:
            number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
            revoked = frozenset(r.serial_number for r in crl)
        except x509.ExtensionNotFound:
            raise SecurityError("revocation list has no CRL number") from None
        except ValueError as exc:  # a malformed extension or entry
            raise SecurityError(f"malformed revocation list: {exc}") from exc
        return cls(der=crl.public_bytes(serialization.Encoding.DER), number=number, revoked=revoked)

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
        return self._crl().public_bytes(serialization.Encoding.PEM)

    def _crl(self) -> x509.CertificateRevocationList:
        try:
            return x509.load_der_x509_crl(self.der)
        except ValueError as exc:
            raise SecurityError(f"malformed revocation list: {exc}") from exc

    def verify(self, ca: x509.Certificate) -> "RevocationList":
        """Returns self if the CA signed this list and number and revoked are
        what the signed list says, else SecurityError."""
        crl = self._crl()
        try:
            key = ca.public_key()
            signed = crl.issuer == ca.subject and crl.is_signature_valid(key)  # type: ignore
        except (TypeError, ValueError, UnsupportedAlgorithm):  # a key type that cannot sign CRLs
            signed = False
        if not signed:
            raise SecurityError("revocation list is not signed by the cluster CA")
        said = RevocationList.from_crl(crl)
        if (said.number, said.revoked) != (self.number, self.revoked):
            raise SecurityError(
                f"revocation list claims number {self.number} and {len(self.revoked)} revoked, "
                f"but the signed list says number {said.number} and {len(said.revoked)} revoked"
            )
        return self

    def is_revoked(self, serial: int) -> bool:
        return serial in self.revoked

    def newer_than(self, other: "RevocationList | None") -> bool:
        """Whether self would replace other, by CRL number alone: adopt it
        only once verify() passed too. An equal number is not newer: each
        revocation raises the number."""
        return other is None or self.number > other.number
