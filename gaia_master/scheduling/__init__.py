"""The leader's side of scheduling: Sfair's policy (gaia_master/sfair) fed and applied.

  requests.py   what AMs and the reconciler ask for (in memory; askers repeat)
  index.py      incremental sums of the allocations (per node, pool, app)
  snapshot.py   the leader's state as Sfair's ClusterSnapshot
  applier.py    a plan re-checked and written in fenced batches, in parts while Sfair decides
  writer.py     those batches built in place and pipelined to etcd
  loop.py       the cycle on the leader
"""
