"""N peers on this machine (`spirtd local-cluster`, and for notebooks and
tests): see spirtd.localcluster.cluster."""

from spirtd.localcluster.cluster import LocalCluster
from spirtd.localcluster.info import ClusterInfo, PeerInfo

__all__ = ["ClusterInfo", "LocalCluster", "PeerInfo"]
