"""spirtd: fault-tolerant, secure peer-to-peer ML training with in-database
tensor aggregation, after SPIRT (Barrak et al., 2023)."""

import os as _os

__version__ = "0.1.0"

# gRPC's fork support makes every forked child restart gRPC's threads before
# it execs, and a child that forks while those threads hold a lock hangs
# there (seen: a worker that never started, a job stuck at submit). spirtd
# forks only to exec (workers, redis-server), so it needs none of it. Set
# before anything imports grpc (importing spirtd comes first).
_os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
