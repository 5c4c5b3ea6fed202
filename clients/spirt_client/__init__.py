"""spirt_client: talk to a running spirtd from Python (a notebook, a script).

    from spirt_client import Client

    client = Client("127.0.0.1:7101", "certs/mine")            # as certs/mine/client.crt
    job = client.submit({"model": "mlp", "dataset": "digits", "rounds": 50})
    for event in client.events(job, progress=True):          # a tqdm bar; the events, typed
        pass
    print(client.job_status(job).test_accuracy)
    state_dict = client.model(job).state_dict                  # torch tensors
    frame = client.history_frame(job)                          # pandas: a row per round

Client's calls block (grpc's synchronous channel: no event loop of its own,
so it works inside Jupyter's); AsyncClient has the same methods, awaited
(grpc.aio). Results are frozen dataclasses (spirt_client.results); errors
are spirt_client.errors, each naming the peer and what failed.
"""

# First: importing spirtd turns gRPC's fork support off, which works only
# before grpc is imported (see spirtd/__init__.py).
import spirtd  # noqa: F401  # isort: skip

from spirt_client.aio import AsyncClient
from spirt_client.errors import (
    BadReply,
    CallFailed,
    CallTimedOut,
    ClientError,
    HandshakeFailed,
    InvalidRequest,
    ClientClosed,
    MissingDependency,
    NotFound,
    NotPermitted,
    PeerUnreachable,
)
from spirt_client.model import Model
from spirt_client.results import JobState, JobStatus, JobSummary, Member, MemberEvent, MemberState, RoundEvent, Status
from spirt_client.sync import Client

__all__ = [
    "AsyncClient", "BadReply", "CallFailed", "CallTimedOut", "Client", "ClientError", "HandshakeFailed",
    "InvalidRequest", "JobState", "JobStatus", "JobSummary", "Member", "MemberEvent", "MemberState",
    "ClientClosed", "MissingDependency", "Model", "NotFound", "NotPermitted", "PeerUnreachable", "RoundEvent", "Status",
]  # fmt: skip
