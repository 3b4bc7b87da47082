"""A node's declared GPUs: what it reports to the scheduler, and clear errors for bad entries."""
import pytest

from gaia_common.config import ConfigError
from gaia_common.pb import types_pb2
from gaia_node import gpus


def box():
    return [{"model": "A100", "memory": "40Gi", "link_path": f"SYS:0/PHB:0/PXB:{i // 2}/PIX:{i}"} for i in range(4)]


def test_declared_gpus_are_indexed_and_set_capacity():
    devices = gpus.declared(box())
    assert [d.index for d in devices] == [0, 1, 2, 3]
    assert devices[3].link_path == "SYS:0/PHB:0/PXB:1/PIX:3" and devices[0].memory_bytes == 40 << 30
    capacity = gpus.with_gpus(types_pb2.Resources(cpu_millis=8000), devices, {})
    assert capacity.gpu_share == 400 and capacity.gpu_memory_bytes == 160 << 30 and capacity.cpu_millis == 8000


def test_operator_capacity_wins_over_the_gpus():
    capacity = gpus.with_gpus(types_pb2.Resources(gpu_share=100), gpus.declared(box()), {"gpu_share": 100})
    assert capacity.gpu_share == 100 and capacity.gpu_memory_bytes == 160 << 30


@pytest.mark.parametrize("entries, field", [
    ("A100", "gpus"),
    ([{"memory": "1Gi"}], "gpus[0].model"),
    ([{"model": "A100", "memory": "lots"}], "gpus[0].memory"),
    ([{"model": "A100", "link_path": "SYS:0/SWITCH:1"}], "gpus[0].link_path"),
    ([{"model": "A100", "speed": 3}], "gpus[0].speed"),
])
def test_bad_entries_name_the_field(entries, field):
    with pytest.raises(ConfigError, match=rf"^{__import__('re').escape(field)}"):
        gpus.declared(entries)
