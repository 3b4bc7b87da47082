"""The user's per-instance control (`gaia instance stop|start|restart`), carried out by the keeper.

The master records the user's intent in the instance's allocation: `stopped` (keep it
stopped) and `restart_from` (replace a container counted below it, starting the new one with
that counter). Nothing here is charged to retry_times: the user asked for it.
"""
import logging

import grpc

from gaia_common.node_channels import of_allocation
from gaia_common.pb import types_pb2
from gaia_am.containers import container_id, counter_of

log = logging.getLogger(__name__)
RUNNING = (types_pb2.CONTAINER_STATE_STARTING, types_pb2.CONTAINER_STATE_RUNNING)


def keep(am, status, view) -> bool:
    """Carry out the user's control of one instance; True when the keeper has nothing else to do."""
    alloc, st = view.allocation, view.status if view.HasField("status") else None
    if alloc.stopped:
        if st is not None and st.state in RUNNING:
            _stop(am, status, alloc, st)
        return True   # kept stopped: not restarted, not charged
    if st is None:
        return False  # never started (or removed): the keeper starts it
    counter = counter_of(st.container_id)
    if counter < alloc.restart_from:
        _replace(am, status, alloc, st, alloc.restart_from, "restart")
        return True
    if st.state == types_pb2.CONTAINER_STATE_STOPPED:
        # stopped on request and wanted again (`gaia instance start`): at once, no backoff
        _replace(am, status, alloc, st, counter + 1, "start")
        return True
    return False


def _stop(am, status, alloc, st):
    """Stop but keep the container's status, so `gaia status` shows the instance stopped."""
    log.info("stopping instance %s (%s) as the user asked", alloc.instance_id, st.container_id)
    try:
        am.nodes.stop(of_allocation(alloc), status.epoch, st.container_id, remove=False)
    except grpc.RpcError as e:
        log.warning("could not stop %s: %s", st.container_id, e.details())
        return
    am.record_event("stop", alloc.instance_id, "user", platform=True)


def _replace(am, status, alloc, st, counter: int, why: str):
    """Remove the old container and start the instance with `counter`, uncharged."""
    new = container_id(status.app.app_id, alloc.instance_id, counter)
    if new in am._asked:
        return  # asked already (the node has not reported it yet)
    log.info("%s of instance %s: %s -> %s", why, alloc.instance_id, st.container_id, new)
    try:
        am.nodes.stop(of_allocation(alloc), status.epoch, st.container_id, remove=True)
    except grpc.RpcError as e:
        log.warning("could not remove %s: %s", st.container_id, e.details())
        return
    am._start(status, alloc, counter)
    am.record_event(why, alloc.instance_id, "user", platform=True)
