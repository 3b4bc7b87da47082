"""Sfair: the fair-share scheduler's policy core, pure over an in-memory snapshot.

    from gaia_master.sfair import Sfair, ClusterSnapshot
    plan = Sfair().schedule(snapshot)     # grants + why the rest is pending

No etcd, no gRPC, no threads: the leader builds the snapshot and applies the plan.
"""
from gaia_master.sfair.model import (ClusterSnapshot, Grant, LabelConstraint, Nodes, PendingRequest, Plan,
                                     PoolSpec, Running, Spread, vec)
from gaia_master.sfair.scheduler import Plugins, Sfair, SfairConfig

__all__ = ["ClusterSnapshot", "Grant", "LabelConstraint", "Nodes", "PendingRequest", "Plan", "PoolSpec",
           "Running", "Spread", "vec", "Sfair", "SfairConfig", "Plugins"]
