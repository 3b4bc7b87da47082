"""The pure parts of gaia_node/network: names, rates, addresses, nftables scripts."""
import ipaddress

import pytest

from gaia_common.config import NodeConfig
from gaia_node.network import NetworkPlan, nat, shaping
from gaia_node.network.ipam import AddressesExhausted, Ipam

MBIT = 1_000_000


def plan(**kw) -> NetworkPlan:
    return NetworkPlan.from_config(NodeConfig(state_dir="/var/lib/gaia/node", **kw))


def test_plan_names_fit_the_kernel_and_are_stable():
    p = plan()
    assert (p.bridge, p.gateway, p.ifb_in, p.ifb_out, p.nft_table) == \
        ("gaia0", "10.213.0.1", "gaia0-in", "gaia0-out", "gaia0")
    assert p.tag == plan().tag and p.tag != NetworkPlan.from_config(NodeConfig(state_dir="/elsewhere")).tag
    veth = p.veth_name("app-1234.0.7")
    assert len(veth) <= 15 and veth == p.veth_name("app-1234.0.7") and veth != p.veth_name("app-1234.0.8")
    assert p.netns_name("a.0.1") == f"gaia-{p.tag}-a.0.1"


@pytest.mark.parametrize("settings", [{"container_subnet": "10.0.0.0/8"}, {"container_subnet": "10.1.2.0/31"},
                                      {"container_subnet": "10.1.2.3/24"}, {"network_bridge": "much-too-long"},
                                      {"network_bridge": ""}])
def test_plan_refuses_what_cannot_work(settings):
    with pytest.raises(ValueError):
        plan(**settings)


def test_class_rates_request_guaranteed_limit_ceiling_within_capacity():
    assert shaping.class_rates(10 * MBIT, 50 * MBIT, 50 * MBIT) == shaping.ClassRates(10 * MBIT, 50 * MBIT)
    # no limit: may borrow up to the whole capacity; no request: a trickle is still guaranteed
    assert shaping.class_rates(0, 0, 100 * MBIT) == shaping.ClassRates(shaping.MIN_RATE, 100 * MBIT)
    # nothing beyond the node's capacity, and a ceiling never below the rate
    assert shaping.class_rates(80 * MBIT, 200 * MBIT, 50 * MBIT) == shaping.ClassRates(50 * MBIT, 50 * MBIT)
    assert shaping.class_rates(30 * MBIT, 10 * MBIT, 50 * MBIT) == shaping.ClassRates(30 * MBIT, 30 * MBIT)


def test_bursts_hold_a_gso_packet_and_quanta_stay_in_bounds():
    assert shaping.burst_bytes(MBIT) >= 65536 and shaping.burst_bytes(10_000 * MBIT) == 10_000 * MBIT // 800
    assert shaping.quantum_bytes(10 * MBIT) == 125_000
    assert shaping.quantum_bytes(1000) == shaping.MTU and shaping.quantum_bytes(10_000 * MBIT) == 200_000
    assert shaping.classid(2) == 0x10002
    with pytest.raises(ValueError):
        shaping.classid(1)  # 1:1 is the node's parent


def test_ipam_allocates_distinct_addresses_and_frees_only_its_own(tmp_path):
    ipam = Ipam(str(tmp_path), ipaddress.IPv4Network("10.9.0.0/29"))  # .2-.6 usable
    got = [ipam.allocate(f"t c{i}") for i in range(5)]
    assert sorted(got) == [f"10.9.0.{i}" for i in range(2, 7)]
    with pytest.raises(AddressesExhausted):
        ipam.allocate("t c5")
    ipam.release("someone else", got[0])
    assert ipam.owner(got[0]) == "t c0"
    ipam.release("t c0", got[0])
    assert ipam.allocate("t c6") == got[0]
    assert ipam.owned_by_prefix("t c6") == {got[0]: "t c6"}
    assert Ipam.host_index(ipam.subnet, "10.9.0.5") == 5


def test_ipam_claim_after_reboot(tmp_path):
    ipam = Ipam(str(tmp_path), ipaddress.IPv4Network("10.9.0.0/24"))
    assert ipam.claim("t a", "10.9.0.9") and ipam.claim("t a", "10.9.0.9")
    assert not ipam.claim("t b", "10.9.0.9")


def test_nft_table_script_is_idempotent_and_maps_ports():
    script = nat.table_script("gaia0", "gaia0", "10.213.0.0/16")
    assert script.count("flush chain ip gaia0") == 4  # rules replaced, the map's elements kept
    assert "flush map" not in script and "delete" not in script
    assert 'iifname "gaia0" ip daddr 127.0.0.0/8 drop' in script
    assert "fib daddr type local dnat ip to meta l4proto . th dport map @ports" in script
    assert nat.add_ports_script("gaia0", [("tcp", 20001), ("udp", 20002)], "10.213.0.7") == \
        "add element ip gaia0 ports { tcp . 20001 : 10.213.0.7, udp . 20002 : 10.213.0.7 }\n"
    assert nat.add_ports_script("gaia0", [], "10.213.0.7") == ""
    assert nat.delete_port_script("gaia0", "tcp", 20001) == "delete element ip gaia0 ports { tcp . 20001 }\n"


def test_process_driver_refuses_extra_namespaces_without_root(monkeypatch, tmp_path):
    from gaia_common.pb import types_pb2
    from gaia_common.spec import SpecError
    from gaia_node.drivers.process import ProcessDriver
    from gaia_node.state import ContainerDirs
    driver = ProcessDriver(ContainerDirs(str(tmp_path)))
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert not driver.capabilities().network_namespaces and driver.capabilities().namespaces == ()
    # a network of its own is the network hook's decision (see test_network_fallback.py)
    driver.validate(types_pb2.ContainerSpec(command=["true"]))
    with pytest.raises(SpecError):
        driver.validate(types_pb2.ContainerSpec(command=["true"], host_network=True, namespaces=["pid"]))
    driver.validate(types_pb2.ContainerSpec(command=["true"], host_network=True))
    monkeypatch.setattr("os.geteuid", lambda: 0)
    assert driver.capabilities().namespaces == ("pid", "mount", "uts", "ipc")
    with pytest.raises(SpecError):
        driver.validate(types_pb2.ContainerSpec(command=["true"], namespaces=["net"]))


def test_app_network_field_decides_host_network_of_instances():
    from gaia_am.containers import container_spec
    from gaia_common import spec as app_spec
    from gaia_common.pb import types_pb2
    from gaia_common.spec import SpecError
    base = {"name": "web", "command": ["true"]}
    own = app_spec.from_dict(base)
    host = app_spec.from_dict({**base, "network": "host"})
    assert app_spec.from_dict({**base, "network": "namespace"}).network == "namespace"
    with pytest.raises(SpecError) as err:
        app_spec.from_dict({**base, "network": "bridge"})
    assert err.value.field == "network"
    for spec, shared in ((own, False), (host, True)):
        record = types_pb2.AppRecord(app_id="web-1", spec=spec)
        assert container_spec(record, "0", 1).host_network is shared


def test_ipam_allocates_from_many_threads_at_once_without_failing(tmp_path):
    """A node starts containers concurrently: every allocation succeeds, each address once."""
    import concurrent.futures
    ipam = Ipam(str(tmp_path), ipaddress.IPv4Network("10.9.0.0/24"))
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        addresses = list(pool.map(lambda i: ipam.allocate(f"c{i}"), range(200)))
    assert len(set(addresses)) == 200
