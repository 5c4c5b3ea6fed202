"""The checked-in code in spirtd/api matches proto/ (else: `make proto`).

Compares descriptors, not text, so a different protoc version that formats
the same schema differently does not matter.
"""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "proto"))
import generate  # noqa: E402  (proto/generate.py)


def fresh_descriptors(tmp_path: Path) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    out = tmp_path / "set.pb"
    args = generate.protoc_args(f"--descriptor_set_out={out}")
    result = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    for f in fds.file:
        strip_json_names(f)  # protoc adds them to descriptor sets, not to generated code
    return {f.name: f for f in fds.file}


def strip_json_names(f: descriptor_pb2.FileDescriptorProto) -> None:
    def visit(message: descriptor_pb2.DescriptorProto) -> None:
        for field in message.field:
            field.ClearField("json_name")
        for nested in message.nested_type:
            visit(nested)

    for message in f.message_type:
        visit(message)


@pytest.mark.parametrize("proto", generate.proto_files(), ids=lambda p: p.name)
def test_generated_code_matches_the_proto(proto, tmp_path):
    name = str(proto.relative_to(generate.PROTO_ROOT))
    fresh = fresh_descriptors(tmp_path)[name]
    module = importlib.import_module(f"spirtd.api.spirt.v1.{proto.stem}_pb2")
    checked_in = descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)
    assert checked_in == fresh, f"spirtd/api is stale for {name}: run `make proto`"


def test_every_proto_has_generated_stubs():
    for proto in generate.proto_files():
        for suffix in ("_pb2.py", "_pb2_grpc.py"):
            assert (generate.OUT / "spirt" / "v1" / f"{proto.stem}{suffix}").exists()
