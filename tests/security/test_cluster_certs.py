"""`spirtd certs cluster` and ensure_cluster_certs: a whole cluster's
certificates made once, completed when peers are added, never replaced."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from spirtd.cli import EXIT_OK, EXIT_USAGE, main
from spirtd.errors import ConfigError
from spirtd.security import ca
from spirtd.security.bundle import ClusterNames, ensure_cluster_certs, export_cluster_certs
from spirtd.security.certsdir import CertsDir
from spirtd.security.identity import Role

from .conftest import load_cert


def alt_names(path: Path) -> list[str]:
    san = load_cert(path).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.DNSName) + [str(a) for a in san.get_values_for_type(x509.IPAddress)]


def test_certs_cluster_makes_then_completes_and_never_replaces(tmp_path, capsys):
    folder = tmp_path / "certs"
    argv = ["certs", "cluster", "--dir", str(folder), "--peers", "node1,node2", "--dns", "{name}.spirtd",
            "--dns", "localhost", "--ip", "127.0.0.1"]  # fmt: skip
    assert main(argv) == EXIT_OK
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"made the cluster CA {folder / 'ca.crt'}")
    assert out[1:] == [f"made peer certificate {folder / 'node1.crt'}", f"made peer certificate {folder / 'node2.crt'}",
                       f"made client certificate {folder / 'client.crt'}",
                       f"made operator certificate {folder / 'ops.crt'}"]  # fmt: skip
    assert alt_names(folder / "node2.crt") == ["node2", "node2.spirtd", "localhost", "127.0.0.1"]
    assert alt_names(folder / "client.crt") == ["client"]
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    assert main([*argv[:5], "node1,node2,node3", *argv[6:]]) == EXIT_OK
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("kept the cluster CA")
    assert out[1:3] == [f"kept peer certificate {folder / 'node1.crt'}", f"kept peer certificate {folder / 'node2.crt'}"]
    assert out[3] == f"made peer certificate {folder / 'node3.crt'}"
    assert all((folder / name).read_bytes() == data for name, data in before.items())
    certs = CertsDir(folder)
    assert certs.credentials("node3", role=Role.PEER).identity.name == "node3"
    assert certs.credentials("ops", role=Role.OPERATOR).identity.role is Role.OPERATOR


def test_a_kept_certificate_lacking_a_name_is_reported(tmp_path):
    folder = tmp_path / "certs"
    ensure_cluster_certs(folder, ClusterNames(peers=("node1",)))
    _, outcomes = ensure_cluster_certs(folder, ClusterNames(peers=("node1",), dns=("{name}.spirtd",), ips=("::1",)))
    assert outcomes[0].missing == ("node1.spirtd", "::1")
    assert "does not name node1.spirtd, ::1: replace it with `spirtd certs issue node1 --replace" in outcomes[0].describe(folder)


@pytest.mark.parametrize(
    ("names", "words"),
    [
        (dict(peers=()), "at least one peer name"),
        (dict(peers=("node1",), clients=("node1",)), "'node1' is named twice"),
        (dict(peers=("node1",), ips=("localhost",)), "'localhost' is not an IP address"),
    ],
)
def test_cluster_names_refuse(names, words):
    with pytest.raises(ConfigError, match=words):
        ClusterNames(**names)


def test_a_name_of_another_role_is_refused(tmp_path):
    folder = tmp_path / "certs"
    ensure_cluster_certs(folder, ClusterNames(peers=("node1",)))
    with pytest.raises(ConfigError, match="client.crt is a client certificate, not a peer one"):
        ensure_cluster_certs(folder, ClusterNames(peers=("client",), clients=("bob",)))


def test_a_dir_with_only_the_ca_certificate_is_refused(tmp_path, capsys):
    folder = tmp_path / "certs"
    ca.init_ca(folder)
    (folder / ca.CA_KEY).unlink()
    assert main(["certs", "cluster", "--dir", str(folder), "--peers", "node1"]) == EXIT_USAGE
    assert "no ca.key in" in capsys.readouterr().err
    assert not (folder / "node1.crt").exists()


def test_certs_cluster_exports_what_peers_need_and_never_the_ca_key(tmp_path, capsys):
    folder, export = tmp_path / "ca", tmp_path / "certs"
    argv = ["certs", "cluster", "--dir", str(folder), "--peers", "node1,node2", "--export", str(export)]
    assert main(argv) == EXIT_OK
    assert capsys.readouterr().out.splitlines()[-1] == f"exported 8 files to {export} (no CA key, no operator key)"
    names = sorted(p.name for p in export.iterdir())
    assert names == ["ca.crt", "client.crt", "client.key", "crl.pem", "node1.crt", "node1.key", "node2.crt", "node2.key"]
    assert (export / "node1.key").stat().st_mode & 0o777 == 0o600
    assert CertsDir(export).credentials("node2", role=Role.PEER).identity.name == "node2"
    # a revocation is published by exporting again
    ca.revoke(folder, "node2")
    assert main(argv) == EXIT_OK
    assert CertsDir(export).revocations().number == 2
    with pytest.raises(ConfigError, match="is the CA's dir"):
        export_cluster_certs(folder, ClusterNames(peers=("node1",)), folder)
