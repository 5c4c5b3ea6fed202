"""A child forked by a process that imported spirtd (or spirt_client, which
imports grpc itself) and runs gRPC starts with one thread (gRPC's fork
support, which restarts its threads in every child and can hang it before
exec, is off)."""

import subprocess
import sys

import pytest

CHILD = """
import asyncio, os, time
import {package}
import grpc

async def main():
    server = grpc.aio.server()
    server.add_insecure_port("127.0.0.1:0")
    await server.start()
    pid = os.fork()
    if pid == 0:
        time.sleep(0.3)
        os.write(1, str(len(os.listdir("/proc/self/task"))).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    await server.stop(0)

asyncio.run(main())
"""


@pytest.mark.parametrize("package", ["spirtd", "spirt_client"])
def test_a_forked_child_runs_no_grpc_threads(package):
    env = {k: v for k, v in __import__("os").environ.items() if k != "GRPC_ENABLE_FORK_SUPPORT"}
    out = subprocess.run([sys.executable, "-c", CHILD.format(package=package)], capture_output=True, text=True,
                         timeout=60, env=env)  # fmt: skip
    assert out.stdout == "1", out.stdout + out.stderr
