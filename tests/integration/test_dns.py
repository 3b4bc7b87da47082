"""`gaia dns` as a real process on real etcd, asked with dig, against a real cluster's registry.

What dig gets must be exactly what the registry in etcd holds (resolvable entries only) and
what `gaia resolve` lists; health checks and lost nodes must show in DNS within bounded time.
Nodes get host addresses of their own (127.0.0.2, 127.0.0.3: loopback, so reachable) so that
A records tell the nodes apart.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from gaia_common.etcd import connect
from gaia_common.keys import Keys
from gaia_common.mirror import PrefixMirror
from gaia_common.pb import types_pb2
from gaia_master.node_view import resolvable
from tests.integration.harness import FLAG_SERVER, ROOT, LocalCluster, wait_for

pytestmark = pytest.mark.skipif(shutil.which("dig") is None,
                                reason="dig is not installed (Debian: dnsutils; .ci/run installs it)")

HOSTS = ("127.0.0.2", "127.0.0.3")
LEASE_TTL = 3

# ---- a gaia dns process and dig ----

class DnsProcess:
    def __init__(self, cluster: LocalCluster):
        self.cluster = cluster
        self.log_path = os.path.join(cluster.workdir, "dns.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gaia_cli", "dns", "run", "--cluster", cluster.name,
                 "--etcd", ",".join(cluster.etcd_endpoints), "--listen", "127.0.0.1:0", "--ttl", "1"],
                stdout=log, stderr=subprocess.STDOUT, env=cluster._env(), cwd=ROOT, start_new_session=True)
        self.port = wait_for(self._port, 20, what="gaia dns to listen", on_timeout=self.log)
        self.zone = f"{cluster.name}.gaia"

    def _port(self):
        assert self.proc.poll() is None, self.log()
        found = re.search(r"serving DNS on udp and tcp [^ ]+:(\d+)", self.log())
        return int(found.group(1)) if found else None

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()[-3000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def dig(self, name: str, qtype: str = "A", *options) -> "Dig":
        out = subprocess.run(["dig", "@127.0.0.1", "-p", str(self.port), "+tries=1", "+time=2", "+noall",
                              "+comments", "+answer", "+authority", "+additional", *options, name, qtype],
                             capture_output=True, text=True, timeout=15).stdout
        return Dig(out)


class Dig:
    """dig's output: the status, the flags and each section's records as (name, type, data)."""

    def __init__(self, out: str):
        self.out = out
        found = re.search(r"status: (\w+)", out)
        self.status = found.group(1) if found else f"no answer: {out!r}"
        flags = re.search(r";; flags: ([a-z ]*);", out)
        self.flags = set(flags.group(1).split()) if flags else set()
        self.sections, section = {"ANSWER": [], "AUTHORITY": [], "ADDITIONAL": []}, None
        for line in out.splitlines():
            header = re.match(r";; (\w+) SECTION:", line)
            if header:
                section = header.group(1)
            elif line and not line.startswith(";") and section in self.sections:
                name, _ttl, _class, rtype, data = line.split(None, 4)
                self.sections[section].append((name, rtype, data))

    def data(self, section: str = "ANSWER", rtype: str = None) -> set:
        return {d for _, t, d in self.sections[section] if rtype in (None, t)}


def registry(cluster: LocalCluster, app: str) -> dict:
    """instance id -> ServiceEndpoint of the resolvable entries in etcd."""
    out = {}
    for value, meta in cluster.etcd.get_prefix(cluster.keys.app_services(app)):
        entry = types_pb2.ServiceEndpoint()
        entry.ParseFromString(value)
        if resolvable(entry):
            out[meta.key.decode().rsplit("/", 1)[1]] = entry
    return out


def resolved(cluster: LocalCluster, app: str) -> dict:
    """instance id -> endpoint JSON, as `gaia resolve` lists them."""
    return {e["instance_id"]: e for e in cluster.cli_json("resolve", app)["endpoints"]}


def srv_view(dns: DnsProcess, app: str) -> set:
    """{(port, target, target's address)} from dig's SRV answer and its additional records."""
    reply = dns.dig(f"_http._tcp.{app}.{dns.zone}", "SRV")
    addresses = {name: data for name, t, data in reply.sections["ADDITIONAL"] if t == "A"}
    return {(int(d.split()[2]), d.split()[3], addresses.get(d.split()[3])) for d in reply.data(rtype="SRV")}


def expected_srv(dns: DnsProcess, app: str, entries: dict) -> set:
    return {(e.ports["http"], f"{iid}.{app}.{dns.zone}.", e.host) for iid, e in entries.items()}


def app_spec(tmp_path, name: str, instances: int, retry_times: int = 2, health: bool = False) -> str:
    spec = {"name": name, "instances": instances, "ports": ["http"], "retry_times": retry_times,
            "resources": {"request": {"cpu": "50m", "memory": "32Mi"}},
            "command": [sys.executable, "-c", FLAG_SERVER, str(tmp_path / "ok-$GAIA_INSTANCE"), "$GAIA_PORT_HTTP"]}
    if health:
        spec["health_check"] = {"kind": "http", "port": "http", "path": "/", "interval": "300ms",
                                "timeout": "1s", "failure_threshold": 2}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


@pytest.fixture
def cluster(etcd_server, cluster_name, tmp_path):
    c = LocalCluster(etcd_server.endpoint, cluster_name, tmp_path)
    try:
        c.start_master()
        for host in HOSTS:
            c.start_node(host_ip=host, lease_ttl=LEASE_TTL)
        c.wait_ready(nodes=len(HOSTS))
        yield c
    finally:
        c.stop()


@pytest.fixture
def dns(cluster):
    d = DnsProcess(cluster)
    yield d
    d.stop()


def all_running(cluster, app: str, count: int):
    entries = resolved(cluster, app)
    return entries if len(entries) == count else None


# ---- the tests ----

def test_dig_answers_exactly_the_registry_and_resolve(cluster, dns, tmp_path):
    for i in range(4):
        (tmp_path / f"ok-{i}").touch()
    cluster.cli("submit", app_spec(tmp_path, "web", 4))
    wait_for(lambda: all_running(cluster, "web", 4), 60, what="4 instances in gaia resolve")
    entries = registry(cluster, "web")
    listed = resolved(cluster, "web")
    assert set(entries) == set(listed) == {"0", "1", "2", "3"}
    assert {(iid, e.host, e.ports["http"]) for iid, e in entries.items()} == {
        (iid, e["host"], e["ports"]["http"]) for iid, e in listed.items()}

    # the watch brings the registry to DNS within moments; then every answer is exact
    wait_for(lambda: srv_view(dns, "web") == expected_srv(dns, "web", entries), 5,
             what="dig's SRV answer to match the registry", on_timeout=lambda: srv_view(dns, "web"))
    a = dns.dig(f"web.{dns.zone}")
    assert a.status == "NOERROR" and "aa" in a.flags
    assert a.data(rtype="A") == {e.host for e in entries.values()}
    for iid, e in entries.items():
        assert dns.dig(f"{iid}.web.{dns.zone}").data(rtype="A") == {e.host}
    over_tcp = dns.dig(f"_http._tcp.web.{dns.zone}", "SRV", "+tcp")
    assert over_tcp.data(rtype="SRV") == dns.dig(f"_http._tcp.web.{dns.zone}", "SRV").data(rtype="SRV")

    # unknown names in the zone: NXDOMAIN with the zone's SOA; other zones: REFUSED
    for name, qtype in ((f"nope.{dns.zone}", "A"), (f"9.web.{dns.zone}", "A"), (f"_ftp._tcp.web.{dns.zone}", "SRV")):
        reply = dns.dig(name, qtype)
        assert reply.status == "NXDOMAIN" and not reply.sections["ANSWER"], name
        assert [t for _, t, _ in reply.sections["AUTHORITY"]] == ["SOA"]
    assert dns.dig(f"web.{dns.zone}", "MX").status == "NOERROR"          # the name is there, no MX
    for name in (f"web.other-{cluster.name}.gaia", "example.com", "gaia"):
        assert dns.dig(name).status == "REFUSED", name

    # scaling down: the instance leaves DNS as it leaves the registry
    cluster.cli("scale", "web", "3", "--instances", "2")
    wait_for(lambda: "2" not in registry(cluster, "web"), 30, what="instance 2 out of the registry")
    wait_for(lambda: dns.dig(f"2.web.{dns.zone}").status == "NXDOMAIN", 3, what="2.web to be NXDOMAIN")
    assert srv_view(dns, "web") == expected_srv(dns, "web", registry(cluster, "web"))


def test_an_unhealthy_instance_leaves_dns_and_comes_back(cluster, dns, tmp_path):
    for i in range(2):
        (tmp_path / f"ok-{i}").touch()
    # retry_times 0: the AM leaves an unhealthy instance running (unresolved) rather than restarting it
    cluster.cli("submit", app_spec(tmp_path, "checked", 2, retry_times=0, health=True))
    wait_for(lambda: all_running(cluster, "checked", 2), 60, what="2 healthy instances in gaia resolve")
    both = registry(cluster, "checked")
    wait_for(lambda: srv_view(dns, "checked") == expected_srv(dns, "checked", both), 5, what="both in DNS")

    (tmp_path / "ok-0").unlink()                     # instance 0's check fails from now on
    started = time.monotonic()
    one = {"1": both["1"]}
    wait_for(lambda: srv_view(dns, "checked") == expected_srv(dns, "checked", one), 10,
             what="instance 0 out of DNS", on_timeout=lambda: srv_view(dns, "checked"))
    assert time.monotonic() - started < 10
    assert set(registry(cluster, "checked")) == set(resolved(cluster, "checked")) == {"1"}
    gone = dns.dig(f"0.checked.{dns.zone}")
    assert gone.status == "NOERROR" and not gone.sections["ANSWER"]   # still registered, not resolvable
    assert dns.dig(f"checked.{dns.zone}").data(rtype="A") == {both["1"].host}

    (tmp_path / "ok-0").touch()                      # healthy again: back, same container
    wait_for(lambda: srv_view(dns, "checked") == expected_srv(dns, "checked", both), 10,
             what="instance 0 back in DNS", on_timeout=lambda: srv_view(dns, "checked"))
    assert set(resolved(cluster, "checked")) == {"0", "1"}


def test_a_killed_nodes_instances_leave_dns_within_the_lease_ttl(cluster, dns, tmp_path):
    for i in range(4):
        (tmp_path / f"ok-{i}").touch()
    cluster.cli("submit", app_spec(tmp_path, "spread", 4))
    wait_for(lambda: all_running(cluster, "spread", 4), 60, what="4 instances in gaia resolve")
    entries = registry(cluster, "spread")
    wait_for(lambda: srv_view(dns, "spread") == expected_srv(dns, "spread", entries), 5, what="all in DNS")
    node_of_host = {host: f"{cluster.name}-n{i + 1}" for i, host in enumerate(HOSTS)}
    victim_host = next(e.host for e in entries.values())
    victims = {iid for iid, e in entries.items() if e.host == victim_host}

    cluster.nodes[node_of_host[victim_host]].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    # the node's lease expires within its TTL (+ etcd's expiry check and our slack); its
    # entries go with it, and DNS must stop naming that host
    wait_for(lambda: victim_host not in dns.dig(f"spread.{dns.zone}").data(rtype="A"), LEASE_TTL + 4,
             what=f"{victim_host} out of DNS", on_timeout=lambda: dns.dig(f"spread.{dns.zone}").out)
    assert time.monotonic() - killed < LEASE_TTL + 4
    for iid in victims:     # each is gone, or already replaced on the surviving node
        assert victim_host not in dns.dig(f"{iid}.spread.{dns.zone}").data(rtype="A")
    assert all(host != victim_host for _, _, host in srv_view(dns, "spread"))
    assert srv_view(dns, "spread") == expected_srv(dns, "spread", registry(cluster, "spread")) or \
        wait_for(lambda: srv_view(dns, "spread") == expected_srv(dns, "spread", registry(cluster, "spread")), 3,
                 what="DNS to match the registry again")


# ---- the mirror under the cache: a broken watch reloads ----

def test_a_broken_watch_reloads_and_misses_nothing(etcd_server, cluster_name):
    import threading
    etcd = connect([etcd_server.endpoint])
    keys = Keys(cluster_name)
    seen = {}
    loads = []

    def on_load(revision, items):
        seen.clear()
        seen.update(items[keys.services])
        loads.append(revision)

    def on_events(revision, changes):
        for _, rest, value in changes:
            seen.pop(rest, None) if value is None else seen.__setitem__(rest, value)

    mirror = PrefixMirror(etcd, [keys.services], on_load, on_events)
    stop = threading.Event()
    follower = threading.Thread(target=mirror.follow, args=(stop, 0.1, 0.05), daemon=True)
    try:
        etcd.put(keys.service("a", "0"), b"x")
        follower.start()
        wait_for(lambda: seen == {"a/0": b"x"}, 5, what="the first load")
        etcd.put(keys.service("a", "1"), b"y")
        wait_for(lambda: seen.get("a/1") == b"y", 5, what="a watched put")
        mirror._on_watch(mirror._generation, RuntimeError("stream reset"))   # as etcd3 reports a broken stream
        assert mirror.broken
        etcd.delete(keys.service("a", "0"))                                  # while nobody watches
        wait_for(lambda: len(loads) == 2 and seen == {"a/1": b"y"}, 5, what="a reload that sees the delete")
        etcd.put(keys.service("a", "2"), b"z")
        wait_for(lambda: seen.get("a/2") == b"z", 5, what="the new watch's events")
    finally:
        stop.set()
        mirror.close()
        etcd.delete_prefix(keys.services)
        etcd.close()
