"""`spirtd certs`: the cluster CA and its certificates.

    spirtd certs init --dir DIR
        makes the cluster CA: DIR/ca.crt, DIR/ca.key (0600), DIR/crl.pem
    spirtd certs issue NAME --dir DIR [--ip IP ...] [--dns NAME ...] [--role peer|client]
        makes DIR/NAME.crt and DIR/NAME.key (0600); NAME is the peer id (or
        the client's name); peers need the IPs and names others reach them at
    spirtd certs revoke NAME --dir DIR
        adds NAME.crt to DIR/crl.pem; running peers learn it by gossip
    spirtd certs list --dir DIR
        the certificates in DIR: name, role, expiry, revoked or not
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cryptography import x509

from spirtd.cli import EXIT_OK
from spirtd.security import ca
from spirtd.security.certsdir import CertsDir
from spirtd.security.identity import Role, identity_of


def register(commands: argparse._SubParsersAction) -> None:
    certs = commands.add_parser(
        "certs", help="the cluster CA and its certificates",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = certs.add_subparsers(dest="action", metavar="ACTION", required=True)

    init = actions.add_parser("init", help="make the cluster CA")
    init.add_argument("--dir", type=Path, required=True)
    init.add_argument("--name", default="spirt cluster CA", help="the CA's common name")
    init.add_argument("--days", type=int, default=ca.CA_DAYS)
    init.set_defaults(handler=run_init)

    issue = actions.add_parser("issue", help="make a peer or client certificate")
    issue.add_argument("name", help="the peer id, or the client's name")
    issue.add_argument("--dir", type=Path, required=True)
    issue.add_argument("--ip", action="append", default=[], help="an IP address it is reached at")
    issue.add_argument("--dns", action="append", default=[], help="a DNS name it is reached at")
    issue.add_argument("--role", choices=[r.value for r in Role], default=Role.PEER.value)
    issue.add_argument("--days", type=int, default=ca.CERT_DAYS)
    issue.set_defaults(handler=run_issue)

    revoke = actions.add_parser("revoke", help="revoke a certificate")
    revoke.add_argument("name")
    revoke.add_argument("--dir", type=Path, required=True)
    revoke.set_defaults(handler=run_revoke)

    show = actions.add_parser("list", help="list the certificates in a dir")
    show.add_argument("--dir", type=Path, required=True)
    show.set_defaults(handler=run_list)


def run_init(args: argparse.Namespace) -> int:
    path = ca.init_ca(args.dir, common_name=args.name, days=args.days)
    print(f"made the cluster CA {path} (its key {args.dir / ca.CA_KEY} is 0600: keep it safe)")
    return EXIT_OK


def run_issue(args: argparse.Namespace) -> int:
    cert, key = ca.issue(args.dir, args.name, role=Role(args.role), ips=args.ip, dns=args.dns, days=args.days)
    print(f"made {args.role} certificate {cert} and key {key}")
    return EXIT_OK


def run_revoke(args: argparse.Namespace) -> int:
    crl = ca.revoke(args.dir, args.name)
    print(f"revoked {args.name}: {args.dir / ca.CRL_FILE} is now number {crl.number} "
          f"({len(crl.revoked)} revoked); peers that have it spread it by gossip")
    return EXIT_OK


def run_list(args: argparse.Namespace) -> int:
    crl = CertsDir(args.dir).revocations()
    for path in sorted(args.dir.glob("*.crt")):
        if path.name == ca.CA_CERT:
            continue
        who = identity_of(x509.load_pem_x509_certificate(path.read_bytes()))
        state = "revoked" if crl is not None and crl.is_revoked(who.serial) else "valid"
        print(f"{who.name}\t{who.role.value}\texpires {who.not_after:%Y-%m-%d}\t{state}")
    return EXIT_OK
