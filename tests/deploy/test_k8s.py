"""deploy/k8s/, without a cluster: every manifest validates (strictly: an
unknown field is an error) against Kubernetes 1.37's schemas, the newest
kubernetes-validate ships (offline); every container's args and probe
parse with spirtd's or spirtctl's own parser; the settings load as `spirtd
run` loads them and name the store sidecar's socket in the volume both
mount; the certificates the README makes name every replica's address,
and the init step that copies them from the Secret leaves keys spirtd
accepts."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import dockerfile
import kubernetes_validate
import pytest
import yaml

from spirtd.cli import main as spirtd_main
from spirtd.cli.run import _flags
from spirtd.daemon.config import load, parse_address
from spirtd.security.certsdir import CertsDir
from spirtd.security.identity import Role
from tests.deploy.commands import spirtctl_args, spirtd_args

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
KUBERNETES_VERSION = "1.37"
README = (REPO / "README.md").read_text()
PORT = 7100


def documents() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def of_kind(kind: str) -> dict:
    found = [d for d in documents() if d["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind}s in deploy/k8s/"
    return found[0]


def pod_argv(argv: list[str], pod: str) -> list[str]:
    """A container's args as the kubelet expands them: $(POD_NAME)."""
    return [a.replace("$(POD_NAME)", pod) for a in argv]


def by_name(items: list[dict], name: str) -> dict:
    found = [i for i in items if i["name"] == name]
    assert len(found) == 1, f"no single {name!r} in {[i['name'] for i in items]}"
    return found[0]


def mount_path(container: dict, volume: str) -> Path:
    return Path(by_name(container["volumeMounts"], volume)["mountPath"])


def test_k8s_manifests_validate_strictly():
    kinds = []
    for doc in documents():
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        kinds.append(doc["kind"])
    assert sorted(kinds) == ["ConfigMap", "PodDisruptionBudget", "Service", "StatefulSet"]


def test_k8s_validation_is_real():
    statefulset = of_kind("StatefulSet")
    statefulset["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["exec"]["comand"] = ["x"]
    with pytest.raises(kubernetes_validate.ValidationError, match="comand"):
        kubernetes_validate.validate(statefulset, KUBERNETES_VERSION, strict=True)


def test_k8s_statefulset_headless_service_claims_and_secret():
    service, statefulset = of_kind("Service"), of_kind("StatefulSet")
    spec = statefulset["spec"]
    pod = spec["template"]["spec"]
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    assert spec["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items()
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    daemon = by_name(pod["containers"], "spirtd")
    assert by_name(daemon["ports"], service["spec"]["ports"][0]["targetPort"])["containerPort"] == PORT
    assert [c["metadata"]["name"] for c in spec["volumeClaimTemplates"]] == ["data"]
    assert by_name(pod["volumes"], "secret")["secret"]["secretName"] == "spirtd-certs"
    assert of_kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]
    # the image's user, so that the volume (fsGroup) and the copied keys are the peer's own
    user = [c for c in dockerfile.parse_file(str(REPO / "Dockerfile")) if c.cmd.upper() == "USER"][-1].value[0]
    context = pod["securityContext"]
    assert user == f"{context['runAsUser']}:{context['runAsGroup']}" and context["fsGroup"] == context["runAsGroup"]
    assert {c["image"] for c in pod["initContainers"] + pod["containers"]} == {"spirtd:dev"}


def test_k8s_commands_and_probes_are_spirtds(tmp_path):
    statefulset = of_kind("StatefulSet")
    pod = statefulset["spec"]["template"]["spec"]
    service = statefulset["spec"]["serviceName"]
    replicas = statefulset["spec"]["replicas"]
    store = by_name(pod["initContainers"], "store")
    daemon = by_name(pod["containers"], "spirtd")
    assert store["restartPolicy"] == "Always"  # a sidecar that keeps running beside the daemon

    served = spirtd_args(store["args"])
    assert (served.command, served.action) == ("store", "serve")
    for probe in ("startupProbe", "livenessProbe"):
        ping = spirtd_args(store[probe]["exec"]["command"])
        assert (ping.action, ping.data_dir) == ("ping", served.data_dir)

    args = spirtd_args(pod_argv(daemon["args"], "spirtd-1"))
    assert args.id == "spirtd-1"
    assert parse_address(args.advertise, what="advertise") == (f"spirtd-1.{service}", PORT)
    seeds = args.seeds.split(",")
    assert seeds == [f"spirtd-{i}.{service}:{PORT}" for i in range(min(3, replicas))]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        check = spirtctl_args(daemon[probe]["exec"]["command"])
        assert check.peer == f"127.0.0.1:{PORT}" and check.certs_dir == mount_path(daemon, "certs")
        assert check.name == "client"
    assert "grpc" not in daemon["readinessProbe"]  # mutual TLS: the native probe cannot

    # the settings, from the ConfigMap, as `spirtd run` loads them
    config_volume = by_name(pod["volumes"], "config")["configMap"]["name"]
    configmap = of_kind("ConfigMap")
    assert configmap["metadata"]["name"] == config_volume
    assert args.config.parent == mount_path(daemon, "config")
    settings = tmp_path / args.config.name
    settings.write_text(configmap["data"][args.config.name])
    argv = pod_argv(daemon["args"], "spirtd-1")
    argv[argv.index("--config") + 1] = str(settings)
    config_args = spirtd_args(argv)
    loaded = load(config_args.config, {}, _flags(config_args)).store
    assert mount_path(daemon, "data") == mount_path(store, "data") == args.data_dir
    assert loaded.url == f"unix://{served.data_dir}/redis.sock"
    assert loaded.url_password_file == served.data_dir / "store.password"


def readme_k8s_certs_command() -> list[str]:
    lines = [line.strip() for line in README.splitlines() if line.strip().startswith(".venv/bin/spirtd certs cluster")]
    assert len(lines) == 1, lines
    return shlex.split(lines[0])


def test_k8s_readme_certificates_name_every_replica_and_survive_the_copy(tmp_path, monkeypatch):
    """The README's certs command, run here; then the init container's copy
    from a Secret volume as the kubelet lays it out (files root's, mode
    0440, group-readable through fsGroup) into the peer's certs dir."""
    argv = readme_k8s_certs_command()
    monkeypatch.chdir(tmp_path)
    assert spirtd_main(argv[1:]) == 0
    export = tmp_path / argv[argv.index("--export") + 1]
    statefulset = of_kind("StatefulSet")
    service, replicas = statefulset["spec"]["serviceName"], statefulset["spec"]["replicas"]
    peers = argv[argv.index("--peers") + 1].split(",")
    assert peers == [f"spirtd-{i}" for i in range(replicas)]
    assert not (export / "ca.key").exists() and not (export / "ops.key").exists()

    pod = statefulset["spec"]["template"]["spec"]
    init = by_name(pod["initContainers"], "certs")
    secret, certs = tmp_path / "pod" / "secret", tmp_path / "pod" / "certs"
    assert mount_path(init, "secret") == Path("/secret") and mount_path(init, "certs") == Path("/certs")
    mode = by_name(pod["volumes"], "secret")["secret"]["defaultMode"]
    assert mode == 0o440  # YAML's 0440: octal
    secret.mkdir(parents=True)
    certs.mkdir()
    for file in export.iterdir():
        (secret / file.name).write_bytes(file.read_bytes())
        (secret / file.name).chmod(mode)
    assert init["args"][:2] == ["sh", "-c"]
    script = re.sub(r"(?<![\w/])/secret/", f"{secret}/", init["args"][2])
    script = re.sub(r"(?<![\w/])/certs/", f"{certs}/", script)
    subprocess.run(["sh", "-c", script], check=True, timeout=10)

    found = CertsDir(certs)
    for peer in peers:
        own = found.credentials(peer, role=Role.PEER)  # key 0600, signed, not revoked
        assert own.identity.name == peer
        san = load_alt_names(certs / f"{peer}.crt")
        assert f"{peer}.{service}" in san and "127.0.0.1" in san  # its advertised name, and the probe's
    found.credentials("client", role=Role.CLIENT)
    assert (certs / "crl.pem").is_file()


def load_alt_names(path: Path) -> set[str]:
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(path.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(sans.get_values_for_type(x509.DNSName)) | {str(a) for a in sans.get_values_for_type(x509.IPAddress)}


def test_readme_kubectl_exec_commands_parse():
    pod = of_kind("StatefulSet")["spec"]["template"]["spec"]
    lines = [line.split("#")[0].strip() for line in README.splitlines() if line.strip().startswith("kubectl exec ")]
    assert lines
    for line in lines:
        words = shlex.split(line)
        container = words[words.index("-c") + 1]
        by_name(pod["containers"], container)
        spirtctl_args(words[words.index("--") + 1:])
