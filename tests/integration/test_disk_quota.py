"""Disk capacity on a real, small ext4 filesystem (loop device) used as the node's state dir:
soft quotas may be exceeded while there is room; under pressure the containers furthest over
their quota are evicted first, and never one within its quota; over the hard limit, at once."""
import os
import sys
import time

import pytest

from gaia_common.pb import types_pb2
from tests.integration.disk_support import MIB, fill_to, loop_node, needs_loop
from tests.integration.node_harness import wait_for

S = types_pb2
INTERVAL = 0.3
# Writes argv[1] MiB into $GAIA_SCRATCH, marks itself ready, then idles.
WRITER = ("import os, sys, time\n"
          "scratch = os.environ['GAIA_SCRATCH']\n"
          "with open(os.path.join(scratch, 'data'), 'wb') as f:\n"
          "    for _ in range(int(sys.argv[1])):\n"
          "        f.write(b'x' * (1 << 20))\n"
          "    f.flush(); os.fsync(f.fileno())\n"
          "open(os.path.join(scratch, 'ready'), 'w').close()\n"
          "time.sleep(600)\n")

pytestmark = needs_loop


def start_writer(node, name, request_mib, write_mib, limit_mib=0):
    spec = node.spec(name=name, command=[sys.executable, "-c", WRITER, str(write_mib)], host_network=True)
    spec.resources.request.disk_bytes = request_mib * MIB
    spec.resources.limit.disk_bytes = (limit_mib or request_mib) * MIB
    status = node.start_container(spec)
    assert status.state == S.CONTAINER_STATE_RUNNING, status.message
    return spec.container_id


def scratch(node, cid, name=""):
    return os.path.join(node.cfg.state_dir, "containers", cid, "work", name)


def state_of(node, cid):
    return node.container(cid).state


def evicted(node, cid):
    status = node.container(cid)
    return status if status.state == S.CONTAINER_STATE_FAILED else None


def events(node, kind):
    return [e for e in node.report().events if e.kind == kind]


def test_borrow_while_room_then_evict_furthest_over_quota_first(etcd_server, etcd, cluster_name):
    with loop_node(etcd_server, etcd, cluster_name, size=96 * MIB, disk_pressure_free="24Mi",
                   disk_check_interval=INTERVAL) as (node, mount, _):
        hog = start_writer(node, "hog", request_mib=4, write_mib=16)        # 12 MiB over its quota
        mid = start_writer(node, "mid", request_mib=4, write_mib=10)        # 6 over
        tidy = start_writer(node, "tidy", request_mib=16, write_mib=8)      # within
        for cid in (hog, mid, tidy):
            wait_for(lambda: os.path.exists(scratch(node, cid, "ready")), timeout=20, what=f"{cid} to write")
        time.sleep(4 * INTERVAL)  # room to spare: over quota is allowed
        assert [state_of(node, c) for c in (hog, mid, tidy)] == [S.CONTAINER_STATE_RUNNING] * 3
        wait_for(lambda: node.container(hog).usage.disk_bytes >= 16 * MIB, what="hog's usage to be reported")
        assert 8 * MIB <= node.container(tidy).usage.disk_bytes < 9 * MIB
        assert not events(node, "disk.evict")

        fill_to(mount, "filler-1", 16 * MIB)  # pressure: the hog alone frees enough
        status = wait_for(lambda: evicted(node, hog), timeout=10, what="the hog's eviction")
        assert status.platform_reason.startswith("evicted: disk pressure")
        wait_for(lambda: not os.path.exists(scratch(node, hog)), what="its scratch to go")  # space back to the node
        time.sleep(4 * INTERVAL)
        assert [state_of(node, c) for c in (mid, tidy)] == [S.CONTAINER_STATE_RUNNING] * 2

        fill_to(mount, "filler-2", 8 * MIB)   # pressure again: mid goes; tidy is within its quota
        status = wait_for(lambda: evicted(node, mid), timeout=10, what="mid's eviction")
        assert "over its quota" in status.platform_reason
        time.sleep(6 * INTERVAL)
        assert state_of(node, tidy) == S.CONTAINER_STATE_RUNNING
        assert [e.container_id for e in events(node, "disk.evict")] == [hog, mid]
        assert any("no other container is over its quota" in e.message for e in events(node, "disk.pressure"))
        in_etcd = node.etcd_message(node.keys.container("hog-id", hog), S.ContainerStatus)
        assert in_etcd.state == S.CONTAINER_STATE_FAILED and "disk pressure" in in_etcd.platform_reason


def test_over_the_hard_limit_is_evicted_without_pressure(etcd_server, etcd, cluster_name):
    with loop_node(etcd_server, etcd, cluster_name, size=64 * MIB, disk_pressure_free="1Mi",
                   disk_check_interval=INTERVAL) as (node, mount, _):
        under = start_writer(node, "under", request_mib=2, write_mib=4, limit_mib=6)
        capped = start_writer(node, "capped", request_mib=2, write_mib=10, limit_mib=6)
        status = wait_for(lambda: evicted(node, capped), timeout=20, what="the capped container's eviction")
        # over its own hard limit: the user's fault, charged to retry_times (no platform_reason)
        assert status.message.startswith("evicted: disk limit exceeded") and not status.platform_reason
        wait_for(lambda: os.path.exists(scratch(node, under, "ready")), timeout=20, what="under to write")
        time.sleep(4 * INTERVAL)
        assert state_of(node, under) == S.CONTAINER_STATE_RUNNING
        assert [e.container_id for e in events(node, "disk.evict")] == [capped]
        assert not events(node, "disk.pressure")


def test_disk_capacity_is_the_state_dirs_filesystem(etcd_server, etcd, cluster_name):
    with loop_node(etcd_server, etcd, cluster_name, size=64 * MIB, disk_pressure_free="8Mi") as (node, mount, _):
        capacity = node.report().info.capacity.disk_bytes
        st = os.statvfs(mount)
        assert 40 * MIB < capacity <= st.f_blocks * st.f_frsize - 8 * MIB


def test_bad_pressure_setting_fails_the_start(etcd_server, etcd, cluster_name):
    with pytest.raises(Exception, match="disk_pressure_free"):
        with loop_node(etcd_server, etcd, cluster_name, size=32 * MIB, disk_pressure_free="lots"):
            pass

