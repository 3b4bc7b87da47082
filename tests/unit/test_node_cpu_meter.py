"""The cpu meter: a rate over the time since the previous reading, not a lifetime average."""
from gaia_common.pb import types_pb2
from gaia_node.isolation.cpu import CpuMeter


class Clock:
    now = 100.0

    def __call__(self):
        return self.now


class Cgroups:
    used = {}

    def cpu_usage_ns(self, cid):
        return self.used[cid]


def test_rate_since_previous_reading():
    cgroups, clock = Cgroups(), Clock()
    meter = CpuMeter(cgroups, clock=clock)
    spec = types_pb2.ContainerSpec(container_id="c")
    status = types_pb2.ContainerStatus(started_at=90.0)
    cgroups.used["c"] = 5 * 10**9                       # 5 s of cpu in 10 s of life: 500m
    assert meter(spec, status).cpu_millis == 500
    clock.now, cgroups.used["c"] = 102.0, 7 * 10**9      # 2 s of cpu in 2 s: one core
    assert meter(spec, status).cpu_millis == 1000
    clock.now, cgroups.used["c"] = 102.5, 9 * 10**9      # too soon: the last rate again
    assert meter(spec, status).cpu_millis == 1000
    clock.now = 104.5                                   # 2 s of cpu in 2.5 s
    assert meter(spec, status).cpu_millis == 800
