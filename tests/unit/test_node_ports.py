"""Host port allocation: fixed ports as asked, free ones from the range, all or nothing."""
import socket

import pytest

from gaia_common.pb import types_pb2
from gaia_node.ports import PortAllocator, PortUnavailable, bindable


def ports(*specs):
    return [types_pb2.Port(name=name, container_port=port, protocol="tcp") for name, port in specs]


def always_free(port, protocol):
    return True


def test_picks_distinct_ports_in_range():
    alloc = PortAllocator(20000, 20009, is_free=always_free)
    got = alloc.allocate("c1", ports(("http", 0), ("admin", 0)))
    assert set(got) == {"http", "admin"} and got["http"] != got["admin"]
    assert all(20000 <= p <= 20009 for p in got.values())


def test_held_ports_are_not_given_twice_until_released():
    alloc = PortAllocator(20000, 20001, is_free=always_free)
    first = alloc.allocate("c1", ports(("a", 0)))
    second = alloc.allocate("c2", ports(("a", 0)))
    assert first["a"] != second["a"]
    with pytest.raises(PortUnavailable, match="no free port"):
        alloc.allocate("c3", ports(("a", 0)))
    alloc.release("c1")
    assert alloc.allocate("c3", ports(("a", 0))) == first


def test_failed_allocation_holds_nothing():
    alloc = PortAllocator(20000, 20000, is_free=always_free)
    with pytest.raises(PortUnavailable):
        alloc.allocate("c1", ports(("a", 0), ("b", 0)))
    assert alloc.allocate("c2", ports(("a", 0))) == {"a": 20000}


def test_fixed_port_must_be_free_on_the_host():
    busy = {8080}
    alloc = PortAllocator(20000, 20010, is_free=lambda port, proto: port not in busy)
    assert alloc.allocate("c1", ports(("web", 8081))) == {"web": 8081}
    with pytest.raises(PortUnavailable, match=r"ports\[0\] \(web\): host port 8080"):
        alloc.allocate("c2", ports(("web", 8080)))
    with pytest.raises(PortUnavailable, match="8081"):
        alloc.allocate("c3", ports(("web", 8081)))   # held by c1


def test_busy_ports_are_skipped():
    alloc = PortAllocator(20000, 20002, is_free=lambda port, proto: port == 20002)
    assert alloc.allocate("c1", ports(("a", 0))) == {"a": 20002}


def test_hold_marks_readopted_ports():
    alloc = PortAllocator(20000, 20000, is_free=always_free)
    alloc.hold("old", {"a": 20000})
    with pytest.raises(PortUnavailable):
        alloc.allocate("c1", ports(("a", 0)))


def test_bindable_sees_a_listening_socket():
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        assert not bindable(s.getsockname()[1])


def test_bad_range_is_refused():
    with pytest.raises(ValueError):
        PortAllocator(30000, 20000)
