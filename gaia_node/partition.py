"""Partition fencing: a node cut off from etcd stops the containers that asked for it.

A node that cannot renew its lease is lost to the masters once the lease expires, and the
AMs start replacements elsewhere. Its containers keep running for `partition_grace` seconds
(node config; 0 = the lease TTL: about when the masters see the node lost), so a short
hiccup costs nothing; past it the node
stops every running container whose spec has `stop_on_partition` (gang and batch apps by
default: a replacement must never run beside a zombie) and keeps the rest. Each stop is a
platform failure (not charged to the app) and a NodeEvent "partition.stop". When etcd answers
again the registration re-registers and republishes everything, stopped ones included, and
the master's garbage collector stops the kept copies whose instance now runs elsewhere.
"""
import concurrent.futures
import logging

from gaia_common.config import ConfigError

log = logging.getLogger("gaia.node.partition")

NAME = "partition"
CHECK_INTERVAL = 0.5
STOP_GRACE = 2.0       # short: every second it runs on is a second beside its replacement


def grace_seconds(cfg) -> float:
    """The fence's grace; at most the lease TTL: AMs replace fenced instances FENCE_WAIT after
    the lease is gone (gaia_am/migration.py), so a longer grace would let two copies run."""
    ttl = float(max(1, int(cfg.lease_ttl)))
    if cfg.partition_grace > ttl:
        raise ConfigError(f"partition_grace: {cfg.partition_grace:g}s is longer than lease_ttl ({ttl:g}s); "
                          "instances of on_partition: stop apps would run beside their replacements")
    return _grace(cfg)


def _grace(cfg) -> float:
    # the lease TTL by default: the fence falls when the masters see the node lost, and AMs
    # wait a little longer before replacing fenced instances (gaia_am/migration.py FENCE_WAIT)
    return cfg.partition_grace if cfg.partition_grace > 0 else float(max(1, int(cfg.lease_ttl)))


class PartitionFence:
    def __init__(self, grace: float, registration, containers, events):
        self.grace = grace
        self.registration = registration
        self.containers = containers
        self.events = events

    def check(self) -> list:
        """Stop the fenced containers when the lease is overdue past the grace; return their ids."""
        cut_off = self.registration.unrenewed_for()
        if cut_off < self.grace:
            return []
        doomed = [spec.container_id for spec, _ in self.containers.running() if spec.stop_on_partition]
        if not doomed:
            return []
        reason = f"partition: no etcd lease renewal for {cut_off:.0f}s (grace {self.grace:g}s)"
        # at once, not one after another: each stop may take its grace period
        with concurrent.futures.ThreadPoolExecutor(len(doomed), thread_name_prefix="gaia-node-fence") as pool:
            list(pool.map(lambda cid: self._stop(cid, reason), doomed))
        return doomed

    def _stop(self, container_id: str, reason: str):
        self.events.record("partition.stop", container_id, reason)
        try:
            self.containers.evict(container_id, reason, grace=STOP_GRACE, platform=True)
        except KeyError:  # containers.NotFound: it ended meanwhile
            pass


def manager(parts) -> tuple:
    fence = PartitionFence(grace_seconds(parts.cfg), parts.registration, parts.containers, parts.events)
    return NAME, CHECK_INTERVAL, fence.check
