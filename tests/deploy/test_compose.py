"""docker-compose.yml and the Dockerfile, without Docker (none where the
tests run): Debian's docker-compose 1.29 validates the file offline
(`config` names unsupported keys and resolves anchors, paths and the
short forms), and what it resolved is checked against spirtd itself: every
command and health check parses with spirtd's or spirtctl's own argument
parser, each peer's settings load as `spirtd run` loads them, its store
socket is in the volume its store container serves, every file mounted or
COPYed is in the repository, and the file is generate.py's output."""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import dockerfile
import pytest
import yaml

from spirtd.cli.run import _flags
from spirtd.daemon.config import load, parse_address
from tests.deploy.commands import spirtctl_args, spirtctl_parser, spirtd_args

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
GENERATE = REPO / "deploy" / "compose" / "generate.py"
CONFIG_S = 60.0
PEER_PORT = 7100


def load_generator():
    spec = importlib.util.spec_from_file_location("compose_generate", GENERATE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def compose_tool() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        why = "no docker-compose (make test installs Debian's: make compose-tool, as root)"
        if os.environ.get("SPIRTD_REQUIRE_COMPOSE") == "1":
            pytest.fail(f"{why}; under CI the compose file must be validated")
        pytest.skip(why)
    return found


def resolved(tool: str, file: Path) -> dict:
    """What docker-compose makes of the file, from the repository's root."""
    done = subprocess.run([tool, "--project-directory", str(REPO), "-f", str(file), "config"], capture_output=True,
                          text=True, timeout=CONFIG_S, cwd=REPO, env={**os.environ, "COMPOSE_PROJECT_NAME": "spirtd"})  # fmt: skip
    assert done.returncode == 0, f"docker-compose refused {file.name}:\n{done.stderr}"
    return yaml.safe_load(done.stdout)


def check_health(service: dict) -> list[str]:
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD", test  # an argv, not a shell line
    (spirtd_args if test[1] == "spirtd" else spirtctl_args)(test[1:])
    return test[1:]


def mounts(service: dict) -> dict[str, tuple[str, str]]:
    """target -> (source, mode) of the service's volumes, as compose resolved them."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, mode = volume.split(":")
        found[target] = (source, mode)
    return found


def mounted(service: dict, target: object) -> tuple[str, str]:
    """(source, mode) of what the service mounts at target."""
    found = mounts(service)
    assert str(target) in found, f"nothing is mounted at {target} (mounts: {sorted(found)})"
    return found[str(target)]


def host_file(source: str) -> Path:
    path = Path(source)
    assert path.is_absolute() and path.is_relative_to(REPO) and path.is_file(), f"{source} is not a file in the repository"
    return path


def check_cluster(config: dict, n: int) -> None:
    services, volumes = config["services"], set(config.get("volumes", {}))
    peers = [f"node{i}" for i in range(1, n + 1)]
    assert set(services) == {"certs", *peers, *(f"{p}-store" for p in peers)}
    for name, service in services.items():
        assert service["build"]["context"] == str(REPO) and service["image"] == "spirtd:dev", name
        for target, (source, _) in mounts(service).items():
            if source.startswith("/"):
                host_file(source)
            else:
                assert source in volumes, f"{name} mounts {source}, which is not a declared volume"

    certs = spirtd_args(services["certs"]["command"])
    assert (certs.command, certs.action) == ("certs", "cluster")
    assert certs.peers.split(",") == peers and "127.0.0.1" in certs.ip
    assert mounted(services["certs"], certs.dir)[0] == "ca"
    exported = mounted(services["certs"], certs.export)[0]

    for i, peer in enumerate(peers, start=1):
        store, daemon = services[f"{peer}-store"], services[peer]
        served = spirtd_args(store["command"])
        assert (served.command, served.action) == ("store", "serve")
        assert store["network_mode"] == "none"  # reached through its socket only
        ping = spirtd_args(check_health(store))
        assert (ping.action, ping.data_dir) == ("ping", served.data_dir)

        args = spirtd_args(daemon["command"])
        assert args.command == "run" and args.id == peer
        assert parse_address(args.advertise, what="advertise") == (peer, PEER_PORT)  # its service's DNS name
        assert set(args.seeds.split(",")) == {f"{p}:{PEER_PORT}" for p in peers[:3]}
        assert mounted(daemon, args.certs_dir) == (exported, "ro")
        assert daemon["depends_on"] == {"certs": {"condition": "service_completed_successfully"},
                                        f"{peer}-store": {"condition": "service_healthy"}}  # fmt: skip
        assert daemon["ports"] == [f"127.0.0.1:{PEER_PORT + i}:{PEER_PORT}/tcp"]
        probe = spirtctl_args(check_health(daemon))
        assert probe.peer == f"127.0.0.1:{PEER_PORT}" and mounted(daemon, probe.certs_dir)[0] == exported

        # the settings load as `spirtd run` loads them, from the file it mounts
        settings = host_file(mounted(daemon, args.config)[0])
        argv = list(daemon["command"])
        argv[argv.index("--config") + 1] = str(settings)
        config_args = spirtd_args(argv)
        loaded = load(config_args.config, {}, _flags(config_args)).store
        data = mounted(daemon, args.data_dir)[0]
        assert mounted(store, args.data_dir)[0] == data  # one data volume, at one path in both containers
        assert loaded.url == f"unix://{served.data_dir}/redis.sock"
        assert loaded.url_password_file == served.data_dir / "store.password"


def test_compose_file_is_the_generators_output_for_three_peers():
    assert COMPOSE.read_text() == load_generator().render(3), (
        "docker-compose.yml is stale: python3 deploy/compose/generate.py --peers 3 > docker-compose.yml"
    )


def test_compose_file_validates_and_matches_spirtd(compose_tool):
    check_cluster(resolved(compose_tool, COMPOSE), 3)


def test_compose_file_for_more_peers_validates(compose_tool, tmp_path):
    five = tmp_path / "docker-compose.5.yml"
    five.write_text(load_generator().render(5))
    check_cluster(resolved(compose_tool, five), 5)


def test_compose_refuses_an_unsupported_key(compose_tool, tmp_path):
    """The validation is real: a misspelt key is named."""
    bad = tmp_path / "bad.yml"
    bad.write_text(COMPOSE.read_text().replace("    network_mode: none\n", "    network_mod: none\n", 1))
    done = subprocess.run([compose_tool, "--project-directory", str(REPO), "-f", str(bad), "config"],
                          capture_output=True, text=True, timeout=CONFIG_S, cwd=REPO)  # fmt: skip
    assert done.returncode != 0 and "network_mod" in done.stderr


def test_generator_refuses_a_bad_count():
    done = subprocess.run([sys.executable, str(GENERATE), "--peers", "0"], capture_output=True, text=True,
                          timeout=CONFIG_S)  # fmt: skip
    assert done.returncode == 2 and "--peers must be between 1 and 64, not 0" in done.stderr


def test_dockerfile_copies_files_of_the_repository():
    commands = dockerfile.parse_file(str(REPO / "Dockerfile"))
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}  # fmt: skip
    copies = [c for c in commands if c.cmd.upper() in ("COPY", "ADD") and not any(f.startswith("--from=") for f in c.flags)]
    sources = [s for c in copies for s in c.value[:-1]]
    assert {"pyproject.toml", "setup.py", "README.md", "spirtd/", "clients/"} <= set(sources)
    for source in sources:
        assert (REPO / source).exists(), f"the Dockerfile copies {source}, which is not in the repository"
        assert source.rstrip("/").split("/")[0] not in ignored, f".dockerignore leaves {source} out of the build"
    entrypoint = next(c for c in commands if c.cmd.upper() == "ENTRYPOINT")
    assert entrypoint.json and list(entrypoint.value) == ["/usr/bin/tini", "--"]
    assert list(next(c for c in commands if c.cmd.upper() == "CMD").value) == ["spirtd", "--help"]


def test_health_checks_name_a_spirtctl_command():
    spirtctl_parser().parse_args(["--peer", "127.0.0.1:7100", "--certs-dir", "/certs", "health"])


def test_readme_compose_commands_name_services_and_parse(compose_tool):
    """`docker-compose exec|run --rm SERVICE spirtd|spirtctl ...` lines of
    the README: the service exists, and the command parses."""
    services = resolved(compose_tool, COMPOSE)["services"]
    readme = (REPO / "README.md").read_text()
    lines = [line.split("#")[0].strip() for line in readme.splitlines()
             if line.strip().startswith(("docker-compose exec ", "docker-compose run "))]  # fmt: skip
    assert len(lines) >= 4
    for line in lines:
        words = shlex.split(line)[2:]
        if words[0] == "--rm":
            words = words[1:]
        service, argv = words[0], words[1:]
        assert service in services, line
        if argv:
            (spirtd_args if argv[0] == "spirtd" else spirtctl_args)(argv)
