"""Generates the Python code for proto/spirt/v1/*.proto into spirtd/api/
(`make proto`). The generated files are checked in; tests/api checks that
they match the .proto files.

protoc writes imports after the proto package ("from spirt.v1 import ..."),
which are rewritten to the package the code lives in.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PACKAGE = "spirtd.api"
OUT = ROOT / "spirtd" / "api"
_IMPORT = re.compile(r"^from spirt\.v1 import ", re.MULTILINE)


def proto_files() -> list[Path]:
    return sorted((PROTO_ROOT / "spirt" / "v1").glob("*.proto"))


def protoc_args(*extra: str) -> list[str]:
    include = Path(protoc.__file__).parent / "_proto"
    return ["grpc_tools.protoc", f"-I{PROTO_ROOT}", f"-I{include}", *extra,
            *(str(p.relative_to(PROTO_ROOT)) for p in proto_files())]  # fmt: skip


def generate(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if protoc.main(protoc_args(f"--python_out={tmp}", f"--pyi_out={tmp}", f"--grpc_python_out={tmp}")):
            raise SystemExit("protoc failed")
        generated = Path(tmp) / "spirt" / "v1"
        target = out / "spirt" / "v1"
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for path in sorted(generated.iterdir()):
            text = _IMPORT.sub(f"from {PACKAGE}.spirt.v1 import ", path.read_text())
            (target / path.name).write_text(text)
    for folder in (out, out / "spirt", out / "spirt" / "v1"):
        init = folder / "__init__.py"
        if not init.exists():
            init.write_text('"""Generated from proto/ by `make proto`; do not edit."""\n')


if __name__ == "__main__":
    generate(OUT)
    print(f"generated {', '.join(p.name for p in proto_files())} into {OUT.relative_to(ROOT)}", file=sys.stderr)
