"""`gaia bench dns`: a real `gaia dns` process on a private etcd, measured from outside.

Registry entries are written straight into etcd (as nodes write them; no master, no node is
needed to serve DNS). With two cores or more the server is pinned to core 0 and dnsperf
(Debian's `dnsperf`) to core 1, so they do not take turns on one core and the throughput is
one core's:

  throughput   dnsperf with 100 queries outstanding: completed queries per second
  latency      dnsperf -Q RATE -v: every query's latency, p50 / p99 / max; pinned as above,
               then again unpinned (as a server runs in production: on a shared machine a
               pinned process waits for its one core while another is idle)
  appear       put an instance's entry, query its name in a tight loop until it answers
  vanish       delete the entry, or revoke its lease (how a dead node's entries go), or let
               the lease expire; query until NXDOMAIN

The queries are a realistic mix over every app: its A record, its SRV record, one instance's A.
"""
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import psutil
from dnslib import QTYPE, RCODE, DNSRecord

from gaia_common.etcd import EtcdServer, connect
from gaia_common.keys import Keys
from gaia_common.pb import types_pb2
from gaia_cli.bench.stats import percentiles

CLUSTER = "bench"
ZONE = f"{CLUSTER}.gaia"
TARGETS = {"qps": 10000, "p99_ms": 1.0, "appear_p99_ms": 500.0, "vanish_p99_ms": 500.0}
PORTS = ("http", "metrics")
EXPIRY_SAMPLES, EXPIRY_TTL = 5, 2


def run(apps: int = 100, instances: int = 10, seconds: int = 10, rate: int = 5000, samples: int = 200) -> dict:
    dnsperf = shutil.which("dnsperf")
    pinned = len(os.sched_getaffinity(0)) >= 2
    with tempfile.TemporaryDirectory(prefix="gaia-bench-dns-") as home, _etcd(home) as etcd_server:
        etcd = connect([etcd_server.endpoint])
        keys = Keys(CLUSTER)
        names = _write_registry(etcd, keys, apps, instances)
        with _dns_server(home, etcd_server.endpoint, pinned) as (proc, port):
            with _Client(port) as client:
                client.wait_answer(f"app-0.{ZONE}", 20)
                figures = {"setup": _setup(apps, instances, pinned, dnsperf)}
                if dnsperf:
                    queries = _query_file(home, names)
                    figures["throughput"] = _throughput(dnsperf, port, queries, seconds, pinned, proc)
                    figures["latency"] = _latency(dnsperf, port, queries, seconds, rate, pinned)
                    if pinned:
                        _unpin(proc.pid)
                        figures["latency_unpinned"] = _latency(dnsperf, port, queries, seconds, rate, False)
                appear, delete = _appear_and_delete(etcd, keys, client, apps, samples)
                figures["appear_ms"], figures["vanish_delete_ms"] = appear, delete
                figures["vanish_lease_revoke_ms"] = _vanish_revoke(etcd, keys, client, samples)
                figures["vanish_lease_expiry_ms"] = _vanish_expiry(etcd, keys, client)
        etcd.close()
    return _summarise(figures, dnsperf)


# ---- set-up ----

@contextlib.contextmanager
def _etcd(home):
    os.makedirs(os.path.join(home, "etcd"))
    server = EtcdServer(data_dir=os.path.join(home, "etcd"), name="gaia-bench-dns").start()
    try:
        yield server
    finally:
        server.stop()


def _write_registry(etcd, keys, apps: int, instances: int) -> list:
    """apps x instances healthy entries spread over 100 hosts; the names a client would ask."""
    puts, names = [], []
    for a in range(apps):
        app = f"app-{a}"
        names += [(f"{app}.{ZONE}", "A"), (f"_http._tcp.{app}.{ZONE}", "SRV"), (f"{a % instances}.{app}.{ZONE}", "A")]
        for i in range(instances):
            node = (a * 7 + i) % 100
            puts.append((keys.service(app, str(i)), _entry(app, str(i), f"10.0.{node // 250}.{node % 250 + 1}", i)))
    for start in range(0, len(puts), 100):   # etcd's default --max-txn-ops is 128
        etcd.transaction(compare=[], success=[etcd.transactions.put(k, v) for k, v in puts[start:start + 100]],
                         failure=[])
    return names


def _entry(app: str, instance: str, host: str, i: int, lease=None) -> bytes:
    return types_pb2.ServiceEndpoint(app=app, instance_id=instance, host=host, health="healthy",
                                     ports={p: 20000 + 2 * i + n for n, p in enumerate(PORTS)},
                                     node_id=f"node-{host}", container_id=f"{app}.{instance}.1").SerializeToString()


@contextlib.contextmanager
def _dns_server(home: str, etcd_endpoint: str, pinned: bool):
    """`gaia dns run` on a free port (pinned to core 0); yields (process, port)."""
    log_path = os.path.join(home, "dns.log")
    args = [sys.executable, "-m", "gaia_cli", "dns", "run", "--cluster", CLUSTER, "--etcd", etcd_endpoint,
            "--listen", "127.0.0.1:0"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=(lambda: os.sched_setaffinity(0, {0})) if pinned else None)
    try:
        yield proc, _bound_port(proc, log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _bound_port(proc, log_path: str, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(log_path, errors="replace") as f:
            found = re.search(r"serving DNS on udp and tcp [^ ]+:(\d+)", f.read())
        if found:
            return int(found.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    with open(log_path, errors="replace") as f:
        raise RuntimeError(f"gaia dns did not start: {f.read()[-2000:]}")


def _unpin(pid: int):
    """Every thread of `pid` may run on every core again (affinity is per thread)."""
    cores = os.sched_getaffinity(0)
    for thread in psutil.Process(pid).threads():
        os.sched_setaffinity(thread.id, cores)


def _setup(apps, instances, pinned, dnsperf) -> dict:
    return {"apps": apps, "instances_per_app": instances, "registry_entries": apps * instances,
            "load_average_1m": round(os.getloadavg()[0], 2), "cores": os.cpu_count(),
            "pinning": "gaia dns on core 0, dnsperf on core 1" if pinned else "not pinned (one core)",
            "dnsperf": dnsperf or "missing"}


def _query_file(home: str, names: list) -> str:
    path = os.path.join(home, "queries.txt")
    with open(path, "w") as f:
        f.writelines(f"{name} {qtype}\n" for name, qtype in names)
    return path


# ---- dnsperf ----

def _dnsperf(dnsperf, port, queries, args, pinned) -> str:
    cmd = [dnsperf, "-s", "127.0.0.1", "-p", str(port), "-d", queries, *args]
    if pinned:
        cmd = ["taskset", "-c", "1", *cmd] if shutil.which("taskset") else cmd
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True).stdout


def _throughput(dnsperf, port, queries, seconds, pinned, proc) -> dict:
    server = psutil.Process(proc.pid)
    before, started = server.cpu_times(), time.monotonic()
    out = _dnsperf(dnsperf, port, queries, ["-l", str(seconds), "-q", "100"], pinned)
    after, elapsed = server.cpu_times(), time.monotonic() - started
    cpu = (after.user + after.system - before.user - before.system) / elapsed
    qps = _stat(out, r"Queries per second:\s+([\d.]+)")
    return {"qps": round(qps), "lost_pct": _stat(out, r"Queries lost:\s+\d+ \(([\d.]+)%\)"),
            "avg_latency_ms": round(_stat(out, r"Average Latency \(s\):\s+([\d.]+)") * 1000, 3),
            "server_cpu_cores": round(cpu, 2),
            # CPU per answered query: what one query costs the server, free of any queueing
            "server_cpu_us_per_query": round(cpu * 1e6 / max(1.0, qps), 1)}


def _latency(dnsperf, port, queries, seconds, rate, pinned) -> dict:
    out = _dnsperf(dnsperf, port, queries, ["-l", str(seconds), "-Q", str(rate), "-v"], pinned)
    latencies = [float(m) * 1000 for m in re.findall(r"^> \S+ \S+ \S+ ([\d.]+)$", out, re.M)]
    stats = percentiles(latencies)
    return {"rate": rate, "qps": round(_stat(out, r"Queries per second:\s+([\d.]+)")),
            "lost_pct": _stat(out, r"Queries lost:\s+\d+ \(([\d.]+)%\)"),
            "p50_ms": stats["p50"], "p99_ms": stats["p99"], "max_ms": stats["max"], "n": stats["n"]}


def _stat(out: str, pattern: str) -> float:
    found = re.search(pattern, out)
    return float(found.group(1)) if found else 0.0   # dnsperf printed no such line: nothing measured


# ---- the registry seen through DNS ----

class _Client:
    """A UDP client asking one name until its answer changes, as fast as the server replies."""

    def __init__(self, port: int):
        self.address = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(0.5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()

    def answered(self, name: str) -> bool:
        """Whether `name` has A records now (NOERROR with answers)."""
        query = DNSRecord.question(name, "A")
        self.sock.sendto(bytes(query.pack()), self.address)
        while True:
            try:
                reply = DNSRecord.parse(self.sock.recv(4096))
            except socket.timeout:
                return False
            if reply.header.id == query.header.id:   # a late reply to an earlier query: skip it
                return reply.header.rcode == RCODE.NOERROR and any(rr.rtype == QTYPE.A for rr in reply.rr)

    def wait(self, name: str, present: bool, timeout: float = 10.0) -> float:
        """Seconds until `name` is (or is no longer) answered; raises after `timeout`."""
        started = time.perf_counter()
        while self.answered(name) != present:
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"{name} still {'missing' if present else 'answered'} after {timeout}s")
        return time.perf_counter() - started

    def wait_answer(self, name: str, timeout: float):
        self.wait(name, True, timeout)


def _appear_and_delete(etcd, keys, client, apps: int, samples: int):
    """Each sample adds an instance to an existing app (as a scale-up does), then deletes it.
    Timed from before the put: etcd's commit is part of it (its p50 is reported beside)."""
    appear, vanish, commits = [], [], []
    for k in range(samples):
        app, instance = f"app-{k % apps}", str(1000 + k)
        key, name = keys.service(app, instance), f"{instance}.app-{k % apps}.{ZONE}"
        started = time.perf_counter()
        etcd.put(key, _entry(app, instance, "10.9.0.1", k))
        commits.append(time.perf_counter() - started)
        client.wait(name, True)
        appear.append(time.perf_counter() - started)
        started = time.perf_counter()
        etcd.delete(key)
        client.wait(name, False)
        vanish.append(time.perf_counter() - started)
    return dict(_ms(appear), etcd_put_p50=_ms(commits)["p50"]), _ms(vanish)


def _vanish_revoke(etcd, keys, client, samples: int) -> dict:
    """A node's entries are bound to its lease: revoking it is what etcd does when it expires."""
    times = []
    for k in range(samples):
        lease = etcd.lease(60)
        key, name = keys.service("leased", str(k)), f"{k}.leased.{ZONE}"
        etcd.put(key, _entry("leased", str(k), "10.9.0.2", k), lease=lease)
        client.wait(name, True)
        started = time.perf_counter()
        lease.revoke()
        client.wait(name, False)
        times.append(time.perf_counter() - started)
    return _ms(times)


def _vanish_expiry(etcd, keys, client) -> dict:
    """Leases left to expire: time from the TTL's end to the name gone (etcd checks expiry
    every 500 ms, so this is mostly etcd's lag)."""
    leases = []
    for k in range(EXPIRY_SAMPLES):
        ends = time.perf_counter() + EXPIRY_TTL   # the grant starts the TTL
        lease = etcd.lease(EXPIRY_TTL)
        etcd.put(keys.service("expiring", str(k)), _entry("expiring", str(k), "10.9.0.3", k), lease=lease)
        leases.append((ends, f"{k}.expiring.{ZONE}"))
    for _, name in leases:       # all of them there before the first expires
        client.wait(name, True)
    late = []
    for ends, name in leases:
        client.wait(name, False, timeout=EXPIRY_TTL + 10)
        late.append(max(0.0, time.perf_counter() - ends))
    return _ms(late)


def _ms(seconds: list) -> dict:
    stats = percentiles([s * 1000 for s in seconds])
    return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in stats.items()}


# ---- the table ----

def _summarise(figures: dict, dnsperf) -> dict:
    notes = []
    if not dnsperf:
        notes.append("dnsperf is not installed (Debian: apt-get install dnsperf): throughput and latency "
                     "were NOT measured")
    rows = _dnsperf_rows(figures) + _propagation_rows(figures)
    setup = figures["setup"]
    notes.append(f"{setup['registry_entries']} registry entries ({setup['apps']} apps); {setup['pinning']}; "
                 f"load average {setup['load_average_1m']} on {setup['cores']} cores at the start")
    figures.update(table=rows, notes=notes, missing=[] if dnsperf else ["dnsperf"])
    return figures


def _dnsperf_rows(figures: dict) -> list:
    t = figures.get("throughput")
    if not t:
        return []
    rows = [_row("max throughput (qps)", t["qps"], f">= {TARGETS['qps']:,}", t["qps"] >= TARGETS["qps"],
                 f"{t['lost_pct']}% lost, server {t['server_cpu_cores']} cores, "
                 f"{t['server_cpu_us_per_query']} us CPU a query")]
    both = "latency_unpinned" in figures
    for key, how in (("latency", ", pinned" if both else ""), ("latency_unpinned", ", unpinned")):
        lat = figures.get(key)
        if lat:
            met = lat["p99_ms"] is not None and lat["p99_ms"] < TARGETS["p99_ms"]
            rows.append(_row(f"p99 latency at {lat['rate']:,} qps{how} (ms)", lat["p99_ms"], f"< {TARGETS['p99_ms']}",
                             met, f"p50 {lat['p50_ms']}, max {lat['max_ms']}, {lat['lost_pct']}% lost"))
    return rows


def _propagation_rows(figures: dict) -> list:
    rows = []
    for key, label, target in (("appear_ms", "registry put -> resolvable", TARGETS["appear_p99_ms"]),
                               ("vanish_delete_ms", "registry delete -> NXDOMAIN", TARGETS["vanish_p99_ms"]),
                               ("vanish_lease_revoke_ms", "lease revoked -> NXDOMAIN", TARGETS["vanish_p99_ms"])):
        s = figures[key]
        commit = f", etcd put p50 {s['etcd_put_p50']}" if "etcd_put_p50" in s else ""
        rows.append(_row(f"{label}, p99 (ms)", s["p99"], f"< {target:g}", s["p99"] < target,
                         f"p50 {s['p50']}, max {s['max']}, n {s['n']}{commit}"))
    e = figures["vanish_lease_expiry_ms"]
    rows.append(_row(f"lease expired ({EXPIRY_TTL} s TTL) -> NXDOMAIN, after the TTL (ms)", e["max"], "-", None,
                     f"p50 {e['p50']}, n {e['n']}"))
    return rows


def _row(figure, measured, target, met, detail) -> dict:
    return {"figure": figure, "measured": f"{measured} ({detail})", "target": target,
            "met": "-" if met is None else ("yes" if met else "NO")}
