"""`spirtd certs`: the cluster CA and its certificates.

    spirtd certs init --dir DIR
        makes the cluster CA: DIR/ca.crt, DIR/ca.key (0600), DIR/crl.pem
    spirtd certs issue NAME --dir DIR [--ip IP ...] [--dns NAME ...] [--role peer|client|operator]
                                      [--days N] [--replace]
        makes DIR/NAME.crt and DIR/NAME.key (0600); NAME is the peer id (or
        the client's name); peers need the IPs and names others reach them at;
        --replace makes a new one where NAME.crt is (revoke the old one first
        if it must stop working)
    spirtd certs cluster --dir DIR --peers NAME,NAME,... [--ip IP ...] [--dns NAME ...]
                         [--client NAME ...] [--operator NAME ...] [--days N] [--export DIR2]
        makes the CA unless DIR has one, then a certificate for each peer,
        client (default: client) and operator (default: ops) that DIR lacks;
        never replaces one, so it can run at every start of a deployment and
        adds new peers' certificates. Each peer's names: its own, the --ip
        and --dns given ({name} in a --dns stands for the peer: {name}.spirtd).
        --export copies what peers and clients need (ca.crt, crl.pem, the
        peers' and clients' certificates and keys; not ca.key, nor an
        operator's key) to DIR2, for the peers to mount
    spirtd certs revoke NAME --dir DIR
        adds NAME.crt to DIR/crl.pem; running peers learn it by gossip
    spirtd certs list --dir DIR
        the certificates in DIR, one a line: name, role, expiry, and state
        (valid, revoked, expired, not yet valid, not from this CA, unreadable)

Exit status: 0 done, 1 failed (a file could not be written or read, a
certificate or list is not trustworthy), 2 bad usage or settings.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from spirtd.cli import EXIT_OK, reporting_os_errors
from spirtd.errors import SecurityError
from spirtd.security import ca
from spirtd.security.bundle import ClusterNames, ensure_cluster_certs, export_cluster_certs
from spirtd.security.certsdir import CertsDir
from spirtd.security.identity import Identity, Role, identity_of
from spirtd.security.revocation import RevocationList

def register(commands: argparse._SubParsersAction) -> None:
    certs = commands.add_parser(
        "certs", help="the cluster CA and its certificates",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = certs.add_subparsers(dest="action", metavar="ACTION", required=True)

    init = actions.add_parser("init", help="make the cluster CA")
    init.add_argument("--dir", type=Path, required=True)
    init.add_argument("--name", default="spirt cluster CA", help="the CA's common name")
    init.add_argument("--days", type=int, default=ca.CA_DAYS, help="how long the CA is valid")
    init.set_defaults(handler=reporting_os_errors(run_init))

    issue = actions.add_parser("issue", help="make a peer or client certificate")
    issue.add_argument("name", help="the peer id, or the client's name")
    issue.add_argument("--dir", type=Path, required=True)
    issue.add_argument("--ip", action="append", default=[], help="an IP address it is reached at")
    issue.add_argument("--dns", action="append", default=[], help="a DNS name it is reached at")
    issue.add_argument("--role", choices=[r.value for r in Role], default=Role.PEER.value)
    issue.add_argument(
        "--days", type=int, default=ca.CERT_DAYS,
        help="how long it is valid (it must end before the CA does)",
    )  # fmt: skip
    issue.add_argument(
        "--replace", action="store_true",
        help="make a new certificate where NAME.crt is (it does not revoke the old one)",
    )  # fmt: skip
    issue.set_defaults(handler=reporting_os_errors(run_issue))

    cluster = actions.add_parser("cluster", help="make or complete the certificates of a whole cluster")
    cluster.add_argument("--dir", type=Path, required=True)
    cluster.add_argument("--peers", required=True, help="comma-separated peer ids: node1,node2,node3")
    cluster.add_argument("--ip", action="append", default=[], help="an IP address every peer is reached at")
    cluster.add_argument("--dns", action="append", default=[],
                         help="a DNS name every peer is reached at; {name} stands for the peer")  # fmt: skip
    cluster.add_argument("--client", action="append", help="a client certificate to make (default: client)")
    cluster.add_argument("--operator", action="append", help="an operator certificate to make (default: ops)")
    cluster.add_argument("--days", type=int, default=ca.CERT_DAYS, help="how long the new certificates are valid")
    cluster.add_argument("--export", type=Path, help="copy what peers and clients need (not ca.key) here")
    cluster.set_defaults(handler=reporting_os_errors(run_cluster))

    revoke = actions.add_parser("revoke", help="revoke a certificate")
    revoke.add_argument("name")
    revoke.add_argument("--dir", type=Path, required=True)
    revoke.set_defaults(handler=reporting_os_errors(run_revoke))

    show = actions.add_parser("list", help="list the certificates in a dir")
    show.add_argument("--dir", type=Path, required=True)
    show.set_defaults(handler=reporting_os_errors(run_list))


def run_init(args: argparse.Namespace) -> int:
    path = ca.init_ca(args.dir, common_name=args.name, days=args.days)
    print(f"made the cluster CA {path} (its key {args.dir / ca.CA_KEY} is 0600: keep it safe)")
    return EXIT_OK


def run_issue(args: argparse.Namespace) -> int:
    cert, key = ca.issue(
        args.dir, args.name, role=Role(args.role), ips=args.ip, dns=args.dns, days=args.days,
        replace=args.replace,
    )  # fmt: skip
    print(f"made {args.role} certificate {cert} and key {key}")
    return EXIT_OK


def run_cluster(args: argparse.Namespace) -> int:
    names = ClusterNames(
        peers=tuple(p.strip() for p in args.peers.split(",") if p.strip()),
        clients=tuple(args.client or ["client"]), operators=tuple(args.operator or ["ops"]),
        ips=tuple(args.ip), dns=tuple(args.dns), days=args.days,
    )  # fmt: skip
    made_ca, outcomes = ensure_cluster_certs(args.dir, names)
    verb = "made" if made_ca else "kept"
    print(f"{verb} the cluster CA {args.dir / ca.CA_CERT} (its key {args.dir / ca.CA_KEY} is 0600: keep it safe)")
    for outcome in outcomes:
        print(outcome.describe(args.dir))
    if args.export is not None:
        written = export_cluster_certs(args.dir, names, args.export)
        print(f"exported {len(written)} files to {args.export} (no CA key, no operator key)")
    return EXIT_OK


def run_revoke(args: argparse.Namespace) -> int:
    crl = ca.revoke(args.dir, args.name)
    print(f"revoked {args.name}: {args.dir / ca.CRL_FILE} is now number {crl.number} "
          f"({len(crl.revoked)} revoked); peers that have it spread it by gossip")
    return EXIT_OK


def run_list(args: argparse.Namespace) -> int:
    certs = CertsDir(args.dir)
    crl = certs.revocations()
    now = ca.utcnow()
    for path in sorted(args.dir.glob("*.crt")):
        if path.name == ca.CA_CERT:
            continue
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except ValueError:
            print(f"{path.stem}\t?\t?\tunreadable: not a PEM certificate")
            continue
        try:
            who = identity_of(cert)
        except SecurityError as exc:
            print(f"{path.stem}\t?\t?\tunreadable: {exc}")
            continue
        name = who.name if who.name == path.stem else f"{path.stem} (made out to {who.name})"
        state = _state(cert, who, certs.ca_cert, crl, now)
        print(f"{name}\t{who.role.value}\texpires {who.not_after:%Y-%m-%d}\t{state}")
    return EXIT_OK


def _state(
    cert: x509.Certificate,
    who: Identity,
    ca_cert: x509.Certificate,
    crl: RevocationList | None,
    now: datetime.datetime,
) -> str:
    """One word or two on whether a certificate in the dir would be accepted."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return "not from this CA"
    if crl is not None and crl.is_revoked(who.serial):
        return "revoked"
    if now > cert.not_valid_after_utc:
        return "expired"
    if now < cert.not_valid_before_utc:
        return "not yet valid"
    return "valid"
