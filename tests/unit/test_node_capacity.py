"""Node capacity overrides and process identity."""
import os
import subprocess

import pytest

from gaia_common.config import ConfigError
from gaia_common.pb import types_pb2
from gaia_node import procs
from gaia_node.capacity import measured, with_overrides


def test_overrides_use_spec_quantities():
    base = types_pb2.Resources(cpu_millis=8000, memory_bytes=1 << 30, disk_bytes=5)
    out = with_overrides(base, {"cpu": "6", "memory": "512Mi", "net_in": "10Gbit"})
    assert (out.cpu_millis, out.memory_bytes, out.disk_bytes, out.net_in_bps) == (6000, 512 << 20, 5, 10**10)
    assert base.cpu_millis == 8000


@pytest.mark.parametrize("bad", [{"cores": 2}, {"memory": "lots"}])
def test_bad_overrides_name_the_setting(bad):
    with pytest.raises(ConfigError, match=f"capacity.{next(iter(bad))}"):
        with_overrides(types_pb2.Resources(), bad)


def test_measured_works_before_the_state_dir_exists(tmp_path):
    got = measured(str(tmp_path / "not" / "yet"))
    assert got.cpu_millis >= 1000 and got.memory_bytes > 0 and got.disk_bytes > 0


def test_process_identity_tells_a_finished_process_apart():
    me = procs.identity(os.getpid())
    assert procs.alive(me)
    assert not procs.alive(dict(me, start_ticks=me["start_ticks"] + 1))   # pid reused by another process
    assert not procs.alive(dict(me, boot_id="another-boot"))
    child = subprocess.Popen(["true"])
    ident = procs.identity(child.pid)
    child.wait()
    assert not procs.alive(ident) and not procs.alive(None) and not procs.alive({"pid": 0})
