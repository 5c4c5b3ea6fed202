"""A whole cluster's certificates in one certs dir, made or completed.

    made = ensure_cluster_certs(Path("certs"), ClusterNames(peers=("node1", "node2", "node3"),
                                                             ips=("127.0.0.1",), dns=("localhost",)))

makes the cluster CA unless the dir has one, then a certificate for every
peer, client and operator named that the dir lacks. Running it again, with
more peers, adds theirs: it never replaces nor revokes a certificate, so a
one-shot step that runs at every `docker-compose up` leaves a running
cluster's certificates alone. A DNS name with `{name}` in it is made for
each peer ("{name}.spirtd" -> "node1.spirtd"); every peer certificate also
names the peer itself (ca.issue).

export_cluster_certs copies what the peers and clients need (ca.crt,
crl.pem, each peer's and client's certificate and key) to another dir: the
one the peers mount, which never holds the CA's key, nor an operator's.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from spirtd.errors import ConfigError, SecurityError
from spirtd.security import ca
from spirtd.security.identity import Role, identity_of

NAME_FIELD = "{name}"


@dataclass(frozen=True)
class ClusterNames:
    """Who gets a certificate, and the names peers are reached at."""

    peers: tuple[str, ...]
    clients: tuple[str, ...] = ("client",)
    operators: tuple[str, ...] = ("ops",)
    ips: tuple[str, ...] = ()
    """IP addresses every peer certificate names (127.0.0.1 for loopback)."""
    dns: tuple[str, ...] = ()
    """DNS names every peer certificate names; {name} stands for the peer."""
    days: int = ca.CERT_DAYS

    def __post_init__(self) -> None:
        if not self.peers:
            raise ConfigError("a cluster needs at least one peer name")
        for ip in self.ips:
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise ConfigError(f"{ip!r} is not an IP address") from None
        seen: set[str] = set()
        for name in (*self.peers, *self.clients, *self.operators):
            if name in seen:
                raise ConfigError(f"{name!r} is named twice: each peer, client and operator needs a name of its own")
            seen.add(name)

    def roles(self) -> list[tuple[str, Role]]:
        return ([(n, Role.PEER) for n in self.peers] + [(n, Role.CLIENT) for n in self.clients]
                + [(n, Role.OPERATOR) for n in self.operators])  # fmt: skip

    def peer_dns(self, peer: str) -> list[str]:
        return [d.replace(NAME_FIELD, peer) for d in self.dns]


@dataclass(frozen=True)
class Outcome:
    """What ensure_cluster_certs did for one name."""

    name: str
    role: Role
    made: bool
    missing: tuple[str, ...] = ()
    """Names asked for that a kept certificate does not carry."""

    def describe(self, folder: Path) -> str:
        verb = "made" if self.made else "kept"
        text = f"{verb} {self.role.value} certificate {folder / (self.name + '.crt')}"
        if self.missing:
            text += (f", but it does not name {', '.join(self.missing)}: replace it with `spirtd certs issue "
                     f"{self.name} --replace ...` (after `spirtd certs revoke`) if peers must reach it there")  # fmt: skip
        return text


def ensure_cluster_certs(folder: Path, names: ClusterNames, *, now: datetime.datetime | None = None) -> tuple[bool, list[Outcome]]:
    """Makes what is missing in folder; returns whether the CA was made and
    what was done for each name. ConfigError if a kept certificate is of
    another role than asked (the dir is not the cluster the caller thinks)."""
    folder = Path(folder)
    made_ca = not (folder / ca.CA_CERT).exists() and not (folder / ca.CA_KEY).exists()
    if made_ca:
        ca.init_ca(folder, now=now)
    else:
        ca.load_ca(folder)  # says what is wrong with a half-made or foreign dir
    outcomes = []
    for name, role in names.roles():
        peer = role is Role.PEER
        ips, dns = (names.ips, names.peer_dns(name)) if peer else ((), [])
        cert_path = folder / f"{name}.crt"
        if cert_path.exists():
            outcomes.append(_kept(cert_path, name, role, [*dns, *(str(ipaddress.ip_address(i)) for i in ips)]))
            continue
        ca.issue(folder, name, role=role, ips=ips, dns=dns, days=names.days, now=now)
        outcomes.append(Outcome(name, role, made=True))
    return made_ca, outcomes


def _kept(cert_path: Path, name: str, role: Role, wanted: list[str]) -> Outcome:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        found = identity_of(cert).role
    except (ValueError, SecurityError) as exc:
        raise ConfigError(f"{cert_path} is there but unreadable ({exc}); move it away to make a new one") from exc
    if found is not role:
        raise ConfigError(f"{cert_path} is a {found.value} certificate, not a {role.value} one; "
                          "give this name one role only")  # fmt: skip
    return Outcome(name, role, made=False, missing=tuple(n for n in wanted if n not in _alt_names(cert)))


def _alt_names(cert: x509.Certificate) -> set[str]:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return set(sans.get_values_for_type(x509.DNSName)) | {str(a) for a in sans.get_values_for_type(x509.IPAddress)}


def export_cluster_certs(folder: Path, names: ClusterNames, target: Path) -> list[Path]:
    """Copies ca.crt, crl.pem and each peer's and client's NAME.crt and
    NAME.key from folder to target (keys 0600, each file replaced whole);
    returns the files written. Run it again after a revocation to publish
    the new crl.pem."""
    folder, target = Path(folder), Path(target)
    if target.resolve() == folder.resolve():
        raise ConfigError(f"the export dir {target} is the CA's dir; give another one (it must not hold ca.key)")
    target.mkdir(parents=True, exist_ok=True)
    written = []
    files = [ca.CA_CERT, ca.CRL_FILE] + [f"{n}.{x}" for n, r in names.roles() if r is not Role.OPERATOR for x in ("crt", "key")]
    for file in files:
        source = folder / file
        if not source.is_file():
            raise ConfigError(f"{source} is not there: make the cluster's certificates first")
        write = ca.write_private if file.endswith(".key") else ca.write_public
        write(target / file, source.read_bytes())
        written.append(target / file)
    return written
