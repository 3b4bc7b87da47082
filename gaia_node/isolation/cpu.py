"""The cpu meter: each container's recent cpu rate, from its cgroup's cpu time.

Measured when asked (a Status call): the rate over the time since the previous reading, or
since the container started at the first reading; readings closer than MIN_WINDOW reuse the
last rate, so frequent callers do not get noisy figures. Shares/weight and quota themselves
are set with the cgroup (gaia_node/cgroups).
"""
import threading
import time

from gaia_common.pb import types_pb2

MIN_WINDOW = 1.0      # seconds
FORGET_AFTER = 600.0  # readings of containers not asked about for this long are dropped


class CpuMeter:
    def __init__(self, cgroups, clock=time.time):
        self.cgroups = cgroups
        self.clock = clock
        self._readings = {}   # container id -> (when, cpu ns, millicores)
        self._lock = threading.Lock()

    def __call__(self, spec, status) -> types_pb2.Resources:
        cid, now = spec.container_id, self.clock()
        used = self.cgroups.cpu_usage_ns(cid)
        with self._lock:
            last = self._readings.get(cid)
            if last is None:
                since = status.started_at or now
                rate = used / max(now - since, 1e-3) / 1e6 if now > since else 0
            elif now - last[0] < MIN_WINDOW:
                return types_pb2.Resources(cpu_millis=last[2])
            else:
                rate = (used - last[1]) / (now - last[0]) / 1e6   # ns of cpu per s -> millicores
            self._readings[cid] = (now, used, max(0, int(rate)))
            for other in [c for c, r in self._readings.items() if now - r[0] > FORGET_AFTER]:
                del self._readings[other]
            return types_pb2.Resources(cpu_millis=max(0, int(rate)))


def meter(parts) -> CpuMeter:
    return CpuMeter(parts.cgroups)
