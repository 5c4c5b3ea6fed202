"""`spirtd certs init|issue|revoke|list` as a person runs them: through
spirtd.cli.main, once through the installed console script, and through
`make -C certs dev`."""

from __future__ import annotations

import datetime
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from spirtd.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from spirtd.security import ca
from spirtd.security.certsdir import CertsDir
from spirtd.security.identity import Role
from spirtd.security.revocation import RevocationList

from .conftest import load_cert, mode_of, now_s, snapshot

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]
SPIRTD = Path(sys.executable).parent / "spirtd"
RUN_TIMEOUT_S = 30.0


def certs(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main(["certs", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str, fragment: str) -> None:
    assert err.startswith("spirtd certs: error: "), err
    assert err.count("\n") == 1, err
    assert fragment in err, err


def test_certs_cli_init_issue_revoke_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "certs"
    code, out, _ = certs(capsys, "init", "--dir", folder, "--name", "test CA", "--days", "400")
    assert code == EXIT_OK
    assert f"made the cluster CA {folder / 'ca.crt'}" in out and "0600" in out
    assert mode_of(folder / "ca.key") == 0o600

    code, out, _ = certs(capsys, "issue", "node1", "--dir", folder, "--ip", "10.0.0.1",
                         "--ip", "fd00::1", "--dns", "node1.lan", "--days", "30")  # fmt: skip
    assert code == EXIT_OK
    assert out == f"made peer certificate {folder / 'node1.crt'} and key {folder / 'node1.key'}\n"
    cert = load_cert(folder / "node1.crt")
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["node1", "node1.lan"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.1", "fd00::1"]
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == (
        datetime.timedelta(days=30) + ca.CLOCK_SKEW
    )

    code, out, _ = certs(capsys, "issue", "alice", "--role", "client", "--dir", folder)
    assert code == EXIT_OK and out.startswith("made client certificate")
    assert CertsDir(folder).credentials("alice", role=Role.CLIENT).identity.role is Role.CLIENT

    code, out, _ = certs(capsys, "revoke", "node1", "--dir", folder)
    assert code == EXIT_OK
    assert out.startswith(f"revoked node1: {folder / 'crl.pem'} is now number 2 (1 revoked)")
    crl = RevocationList.from_pem((folder / "crl.pem").read_bytes())
    assert crl.revoked == {cert.serial_number}

    code, out, _ = certs(capsys, "list", "--dir", folder)
    assert code == EXIT_OK
    expires = f"{cert.not_valid_after_utc:%Y-%m-%d}"
    assert out.splitlines()[0].startswith("alice\tclient\texpires ")
    assert out.splitlines()[1] == f"node1\tpeer\texpires {expires}\trevoked"


def test_certs_cli_list_states(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder, other = tmp_path / "certs", tmp_path / "other"
    ca.init_ca(folder)
    ca.init_ca(other)
    ca.issue(folder, "good")
    ca.issue(folder, "old", now=now_s() - datetime.timedelta(days=3), days=1)
    ca.issue(folder, "later", now=now_s() + datetime.timedelta(days=3))
    ca.issue(folder, "gone")
    ca.revoke(folder, "gone")
    ca.issue(other, "stranger")
    shutil.copy(other / "stranger.crt", folder / "stranger.crt")
    shutil.copy(folder / "good.crt", folder / "copied.crt")
    (folder / "junk.crt").write_text("junk")

    code, out, _ = certs(capsys, "list", "--dir", folder)
    assert code == EXIT_OK
    states = {line.split("\t")[0]: line.split("\t")[-1] for line in out.splitlines()}
    assert states.pop("junk").startswith("unreadable: not a PEM certificate")
    assert states == {
        "copied (made out to good)": "valid",
        "gone": "revoked",
        "good": "valid",
        "later": "not yet valid",
        "old": "expired",
        "stranger": "not from this CA",
    }


def test_certs_cli_issue_replace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca.init_ca(tmp_path)
    assert certs(capsys, "issue", "node1", "--dir", tmp_path)[0] == EXIT_OK
    old = (tmp_path / "node1.crt").read_bytes()

    code, out, err = certs(capsys, "issue", "node1", "--dir", tmp_path)
    assert (code, out) == (EXIT_USAGE, "")
    one_line_error(err, "node1.crt exists; to make a new one use --replace")
    assert (tmp_path / "node1.crt").read_bytes() == old

    assert certs(capsys, "issue", "node1", "--dir", tmp_path, "--replace")[0] == EXIT_OK
    assert (tmp_path / "node1.crt").read_bytes() != old


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["issue", "node 1"], "'node 1' is not a valid name: ' ' is not allowed"),
        (["issue", "ca"], "'ca' is not a valid name: it is reserved"),
        (["issue", "node1", "--ip", "300.1.1.1"], "'300.1.1.1' is not an IP address"),
        (["issue", "node1", "--dns", "a..b"], "'a..b' is not a valid DNS name"),
        (["issue", "node1", "--days", "0"], "days must be a whole number >= 1, not 0"),
        (["issue", "node1", "--days", "5000"], "would outlive the CA"),
        (["init"], "a CA already exists"),
        (["revoke", "nobody"], "no certificate"),
        (["revoke", "../etc"], "is not a valid name"),
    ],
    ids=["name-space", "name-ca", "ip", "dns", "days-0", "days-outlive", "init-again",
         "revoke-unknown", "revoke-bad-name"],  # fmt: skip
)
def test_certs_cli_bad_input_exit_2_one_line(
    ca_dir: Path, capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    before = snapshot(ca_dir)
    code, out, err = certs(capsys, *args, "--dir", ca_dir)
    assert (code, out) == (EXIT_USAGE, "")
    one_line_error(err, fragment)
    assert snapshot(ca_dir) == before


@pytest.mark.parametrize(
    ("remove", "args", "fragment"),
    [
        (["ca.key"], ["issue", "node1"], "no ca.key in"),
        (["ca.key", "ca.crt"], ["issue", "node1"], "no CA in"),
        (["ca.crt"], ["list"], "no ca.crt in"),
    ],
    ids=["issue-no-key", "issue-no-ca", "list-no-ca"],
)
def test_certs_cli_missing_ca_exit_2(
    ca_dir: Path,
    capsys: pytest.CaptureFixture[str],
    remove: list[str],
    args: list[str],
    fragment: str,
) -> None:
    for name in remove:
        (ca_dir / name).unlink()
    code, _, err = certs(capsys, *args, "--dir", ca_dir)
    assert code == EXIT_USAGE
    one_line_error(err, fragment)


def test_certs_cli_list_untrusted_crl_exit_1(
    ca_dir: Path, other_ca_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(other_ca_dir / "crl.pem", ca_dir / "crl.pem")
    code, out, err = certs(capsys, "list", "--dir", ca_dir)
    assert (code, out) == (EXIT_FAILED, "")
    one_line_error(err, "crl.pem: revocation list is not signed by the cluster CA")


def test_certs_cli_init_bad_ca_name_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = certs(capsys, "init", "--dir", tmp_path / "certs", "--name", "")
    assert code == EXIT_USAGE
    one_line_error(err, "the CA's name '' must be 1-64 characters")
    assert not (tmp_path / "certs").exists()


def test_certs_cli_unwritable_dir_exit_1_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("")
    code, _, err = certs(capsys, "init", "--dir", tmp_path / "file" / "certs")
    assert code == EXIT_FAILED
    one_line_error(err, "file/certs")


@pytest.mark.parametrize(
    "args",
    [
        ["issue", "node1"],
        ["issue", "--dir", "x"],
        ["frobnicate"],
        ["issue", "n", "--dir", "x", "--role", "admin"],
        ["issue", "n", "--dir", "x", "--days", "ten"],
    ],
    ids=["no-dir", "no-name", "no-action", "bad-role", "days-not-int"],
)
def test_certs_cli_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    code, _, err = certs(capsys, *args)
    assert code == EXIT_USAGE
    assert "usage: spirtd certs" in err


def run_spirtd(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(SPIRTD), *map(str, args)], capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S, cwd=cwd)  # fmt: skip


def test_certs_cli_console_script(tmp_path: Path) -> None:
    folder = tmp_path / "certs"
    done = run_spirtd("certs", "init", "--dir", folder)
    assert done.returncode == 0, done.stderr
    done = run_spirtd("certs", "issue", "node1", "--dir", folder, "--ip", "127.0.0.1")
    assert done.returncode == 0, done.stderr
    done = run_spirtd("certs", "issue", "node/1", "--dir", folder)
    assert (done.returncode, done.stdout) == (2, "")
    one_line_error(done.stderr, "'node/1' is not a valid name: '/' is not allowed")
    done = run_spirtd("certs", "list", "--dir", folder)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("node1\tpeer\texpires ") and done.stdout.endswith("\tvalid\n")


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_certs_makefile_dev_makes_documented_files(tmp_path: Path) -> None:
    shutil.copy(REPO / "certs" / "Makefile", tmp_path / "Makefile")
    make = ["make", "-C", str(tmp_path), "dev", f"SPIRTD={SPIRTD}"]
    done = subprocess.run(make, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stdout + done.stderr

    dev = tmp_path / "dev"
    names = ["node1", "node2", "node3", "client", "ops"]
    pairs = {f"{n}{suffix}" for n in names for suffix in (".crt", ".key")}
    expected = {"ca.crt", "ca.key", "crl.pem"} | pairs
    assert {p.name for p in dev.iterdir()} == expected
    for path in dev.iterdir():
        assert mode_of(path) == (0o600 if path.suffix == ".key" else 0o644), path
    certs_dir = CertsDir(dev)
    for name in names[:3]:
        creds = certs_dir.credentials(name, role=Role.PEER)
        san = x509.load_pem_x509_certificate(creds.cert_pem).extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value
        assert san.get_values_for_type(x509.DNSName) == [name, "localhost"]
        assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    certs_dir.credentials("client", role=Role.CLIENT)
    certs_dir.credentials("ops", role=Role.OPERATOR)

    # Again: nothing to do. With the CA made anew, the certificates are made anew.
    before = snapshot(dev)
    done = subprocess.run(make, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0 and snapshot(dev) == before, done.stdout + done.stderr
    for name in ("ca.crt", "ca.key", "crl.pem"):
        (dev / name).unlink()
    done = subprocess.run(make, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in names:
        CertsDir(dev).credentials(name)
