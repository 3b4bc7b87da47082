"""Disk IO limits through the node, measured with O_DIRECT I/O on a loop device the test creates
(v1 blkio does not throttle buffered writes): the measured rate is within 10% of the limit."""
import json
import os
import tempfile

import grpc
import pytest

from gaia_cli.bench.node_disk import direct_io_command
from gaia_common.pb import types_pb2
from tests.integration.disk_support import CGROUP_ROOT, HAS_BLKIO, MIB, loop_node, needs_loop
from tests.integration.node_harness import NodeHarness, node_cfg, wait_for  # noqa: F401 (fixture)

S = types_pb2
SECONDS = 6


def run_direct_io(node, name, mode, path, rate, **limits):
    spec = node.spec(name=name, command=direct_io_command(mode, path, rate * SECONDS, wait_controller="blkio"),
                     host_network=True)
    for field, value in limits.items():
        setattr(spec.resources.request, field, value)
        setattr(spec.resources.limit, field, value)
    status = node.start_container(spec)
    assert status.state == S.CONTAINER_STATE_RUNNING, status.message
    return spec.container_id


def result(node, cid):
    status = wait_for(lambda: (s := node.container(cid)) and s.state != S.CONTAINER_STATE_RUNNING and s,
                      timeout=SECONDS * 3, interval=0.2, what=f"{cid} to finish")
    out = open(os.path.join(node.cfg.state_dir, "containers", cid, "stdout")).read()
    assert status.state == S.CONTAINER_STATE_EXITED, (status.message, out)
    got = json.loads(out)
    return got["bytes"] / got["seconds"]


def blkio_file(node, cid, name):
    with open(os.path.join(CGROUP_ROOT, "blkio", node.cfg.cgroup_parent, cid, name)) as f:
        return f.read().split()


@needs_loop
@pytest.mark.skipif(not HAS_BLKIO, reason="needs a real cgroup v1 blkio hierarchy")
def test_direct_write_and_read_rates_hold_to_the_limits(etcd_server, etcd, cluster_name):
    write_rate, read_rate = 5 * MIB, 8 * MIB
    with loop_node(etcd_server, etcd, cluster_name, size=160 * MIB) as (node, mount, device):
        source = os.path.join(mount, "to-read")
        with open(source, "wb") as f:   # what the reader reads back, bypassing the cache
            f.write(os.urandom(MIB) * (read_rate * SECONDS // MIB))
            os.fsync(f.fileno())

        writer = run_direct_io(node, "writer", "write", os.path.join(mount, "written"), write_rate,
                               disk_write_bps=write_rate)
        wait_for(lambda: blkio_file(node, writer, "blkio.throttle.write_bps_device") == [device, str(write_rate)],
                 what="the write throttle")
        written = result(node, writer)
        assert not os.path.exists(os.path.join(CGROUP_ROOT, "blkio", node.cfg.cgroup_parent, writer))

        reader = run_direct_io(node, "reader", "read", source, read_rate, disk_read_bps=read_rate)
        read = result(node, reader)
        print(f"direct write {written / MIB:.3f} MiB/s (limit 5), direct read {read / MIB:.3f} MiB/s (limit 8)")
        assert abs(written - write_rate) / write_rate < 0.10, f"wrote at {written / MIB:.2f} MiB/s, limit 5"
        assert abs(read - read_rate) / read_rate < 0.10, f"read at {read / MIB:.2f} MiB/s, limit 8"


def test_io_limits_are_refused_where_no_block_device_backs_the_state_dir(node_cfg, etcd):
    with tempfile.TemporaryDirectory(dir="/dev/shm") as shm:    # tmpfs: nothing to throttle
        node_cfg.state_dir = os.path.join(shm, "node")
        node = NodeHarness(node_cfg, etcd)
        try:
            node.start()
            spec = node.spec(name="io", host_network=True)
            spec.resources.request.disk_write_bps = spec.resources.limit.disk_write_bps = MIB
            with pytest.raises(grpc.RpcError) as err:
                node.start_container(spec)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "resources.limit.disk_write" in err.value.details()
            assert node.container(spec.container_id) is None
            assert not os.path.exists(os.path.join(node_cfg.state_dir, "containers", spec.container_id))
        finally:
            node.clean_up()


@needs_loop
@pytest.mark.skipif(not HAS_BLKIO, reason="needs a real cgroup v1 blkio hierarchy")
def test_throttle_is_reasserted_when_the_node_manager_restarts(etcd_server, etcd, cluster_name):
    with loop_node(etcd_server, etcd, cluster_name, size=32 * MIB) as (node, mount, device):
        spec = node.spec(name="idle", command=["sleep", "60"], host_network=True)
        spec.resources.request.disk_write_bps = spec.resources.limit.disk_write_bps = 3 * MIB
        status = node.start_container(spec)
        cid = spec.container_id
        assert blkio_file(node, cid, "blkio.throttle.write_bps_device") == [device, str(3 * MIB)]
        assert str(status.pid) in blkio_file(node, cid, "cgroup.procs")
        node.stop()
        with open(os.path.join(CGROUP_ROOT, "blkio", node.cfg.cgroup_parent, cid,
                               "blkio.throttle.write_bps_device"), "w") as f:
            f.write(f"{device} 0")   # lost while the node manager was away
        assert blkio_file(node, cid, "blkio.throttle.write_bps_device") == []
        node.start()
        assert node.container(cid).pid == status.pid   # re-adopted, not restarted
        assert blkio_file(node, cid, "blkio.throttle.write_bps_device") == [device, str(3 * MIB)]
