"""The node manager's own actions (reclaim, eviction...), kept for Status and `gaia node show`."""
import collections
import logging
import threading
import time

from gaia_common.pb import types_pb2

log = logging.getLogger("gaia.node.events")


class EventLog:
    def __init__(self, keep: int = 200, on_record=None):
        self._events = collections.deque(maxlen=keep)
        self._on_record = on_record or (lambda kind: None)   # the node's metrics count them by kind
        self._lock = threading.Lock()

    def record(self, kind: str, container_id: str = "", message: str = ""):
        log.info("%s %s: %s", kind, container_id, message)
        self._on_record(kind)
        with self._lock:
            self._events.append(types_pb2.NodeEvent(at=time.time(), kind=kind, container_id=container_id,
                                                    message=message))

    def recent(self) -> list:
        with self._lock:
            return list(self._events)
