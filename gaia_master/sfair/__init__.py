"""Sfair: the fair-share scheduler's policy core, pure over an in-memory snapshot.

    from gaia_master.sfair import Sfair, ClusterSnapshot
    plan = Sfair().schedule(snapshot)     # grants + why the rest is pending

No etcd, no gRPC, no threads: the leader builds a ClusterSnapshot (model.py documents the
mapping from NodeInfo / Allocation / AppSpec / pool records), calls `schedule`, and applies
the Plan: it first stops each of `plan.evictions` (app, instance, node, kind, reason,
for_request: a platform-caused stop, whose room the plan's grants use), then for each of
`plan.grants` (request_id, app, instance, node) it writes an Allocation in fenced batches, and
for each of `plan.pending` it sets the app's message (the reason names the quota, each
filter's count of nodes removed, or the nodes reserved for it). `plan.reservations` maps a
starving request to the nodes held for it; keep one Sfair instance, which carries them from
cycle to cycle. A plan made from a snapshot older than the store's current revision should be
refused, as Nomad's plan applier does; this package never sees revisions.

Modules, one concern each:
  model.py        input/output values (Nodes as arrays, PoolSpec, Running, PendingRequest, Plan)
  framework.py    plugin interfaces (StaticFilter, CountFilter, Scorer) and FilterResult
  plugins/        fits, labels, gpu_model, spread (per node, per domain), packing scorers
  pools.py        the pool tree as arrays: weights, guarantees, max quotas, usage, DRF keys
  fairshare.py    hierarchical water-filling: each pool's weighted DRF entitlement
  order.py        the fair queue: hierarchical DRF, priority bands, DRF between apps
  equivalence.py  shape classes and app classes with incrementally refreshed vectors
  placement.py    choosing nodes for k instances of a class in one vector pass
  statement.py    tentative placements that commit or roll back (gangs)
  preemption.py   evictions for requests left pending: preemption and reclaim, victim order
  reservation.py  nodes held across cycles for starving gangs and large requests
  state.py        the cycle's working copy of free capacity and usage
  explain.py      why a request stays pending
  scheduler.py    the cycle that ties these together (Sfair, SfairConfig, Plugins)
  bench.py        scheduler-only micro-benchmark on a synthetic 10,000-node cluster
"""
from gaia_master.sfair.model import (ClusterSnapshot, Eviction, Grant, LabelConstraint, Nodes, PendingRequest,
                                     Plan, PoolSpec, Running, RunningSummary, Spread, vec)
from gaia_master.sfair.scheduler import Plugins, Sfair, SfairConfig

__all__ = ["ClusterSnapshot", "Eviction", "Grant", "LabelConstraint", "Nodes", "PendingRequest", "Plan",
           "PoolSpec", "Running", "RunningSummary", "Spread", "vec", "Sfair", "SfairConfig", "Plugins"]
