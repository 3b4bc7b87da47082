"""Scheduling: pure policy over a snapshot of nodes, handing back a placement.

Plumbing (etcd, gRPC, threads) stays outside: the master builds the snapshot, asks a
Scheduler, and commits the answer through the fenced store.
"""
from gaia_master.scheduler.base import NodeSnapshot, Placement, Scheduler
from gaia_master.scheduler.first_fit import FirstFit

__all__ = ["NodeSnapshot", "Placement", "Scheduler", "FirstFit"]
