"""`gaia bench tls`: what mutual TLS costs, measured against plaintext in the same run.

Submit:           Master.SubmitApp on two private dev clusters (etcd + one master, no nodes, so
                  the apps wait and start nothing), one plaintext and one with mutual TLS (user
                  admin's certificate). Timed from the request to the answer (etcd write included).
Round trip:       Master.WhoAmI on the same masters: the cheapest call there is, so the per-call
                  cost of TLS (record encryption, the interceptor's checks) shows undiluted.
Container start:  Node.StartContainer of a process container (`sleep 60`) on two in-process node
                  managers, one plaintext and one with mutual TLS (the master's certificate), as
                  `gaia bench node` times it; each container is stopped after its sample.
Both ways on a reused channel (one connection for every call: the steady state of the CLI, the
AMs and the masters) and on a new channel per call (a TCP connect and, with TLS, a full
handshake each time), reported separately; samples interleaved so drift hits both sides alike.
Target (issue 8): under 10% extra latency on reused channels.
Fuzz:             the hostile-input fuzz run's figures, from gaia_cli/bench/fuzz.py `figures()`
                  (FUZZ_MODULE), printed under "fuzz".
"""
import contextlib
import importlib
import os
import pathlib
import shutil
import tempfile
import time
import uuid

import grpc

from gaia_cli.bench.stats import percentiles

TARGET_EXTRA_PCT = 10.0
FUZZ_MODULE = "gaia_cli.bench.fuzz"      # its figures(**options) -> dict goes under "fuzz"
MODES = ("plaintext", "mtls")
MiB = 1 << 20


def run(submits: int = 200, starts: int = 30, fuzz: bool = True, fuzz_options: dict = None) -> dict:
    figures = {"samples": {"submit": submits, "round_trip": submits, "container_start": starts},
               "target_extra_pct": TARGET_EXTRA_PCT}
    with _dev_clusters() as clusters:
        figures["submit"] = _compare(clusters, submits, _submit_call)
        figures["round_trip"] = _compare(clusters, submits, _whoami_call)
    with _node_managers() as nodes:
        figures["container_start"] = _compare(nodes, starts, _start_call)
    reused = figures["submit"]["reused_channel"].get("extra_p50_pct")
    figures["met"] = reused is not None and reused < TARGET_EXTRA_PCT
    if fuzz:
        figures["fuzz"] = fuzz_figures(**(fuzz_options or {}))
    return figures


def fuzz_figures(**options) -> dict:
    """The fuzz run's figures (executions, failures), or why there are none."""
    try:
        module = importlib.import_module(FUZZ_MODULE)
    except ImportError as e:
        return {"error": f"not measured: {FUZZ_MODULE} cannot be imported ({e})"}
    if not callable(getattr(module, "figures", None)):
        return {"error": f"not measured: {FUZZ_MODULE} has no figures()"}
    return module.figures(**options)


# ---- measuring ----

def _compare(targets: dict, samples: int, make_call) -> dict:
    """targets: mode -> Target. Interleaved samples of each mode, per channel kind."""
    out = {}
    for kind, fresh in (("reused_channel", False), ("new_channel", True)):
        times = {mode: [] for mode in MODES}
        for target in targets.values():                      # warm both sides up (imports, caches)
            for _ in range(3):
                _timed(target, make_call, fresh)
        for i in range(samples):
            order = MODES if i % 2 == 0 else MODES[::-1]
            for mode in order:
                times[mode].append(_timed(targets[mode], make_call, fresh))
        out[kind] = _summary(times)
    return out


def _timed(target, make_call, fresh: bool) -> float:
    channel = target.new_channel() if fresh else target.channel
    try:
        call, after = make_call(target, channel)
        began = time.perf_counter()
        call()
        took = time.perf_counter() - began
        after()
        return took
    finally:
        if fresh:
            channel.close()


def _summary(times: dict) -> dict:
    plain = percentiles([t * 1000 for t in times["plaintext"]])
    mtls = percentiles([t * 1000 for t in times["mtls"]])
    out = {"plaintext_ms": plain, "mtls_ms": mtls}
    if plain["n"] and mtls["n"]:
        out["extra_p50_pct"] = round((mtls["p50"] - plain["p50"]) / plain["p50"] * 100, 1)
        out["extra_p99_pct"] = round((mtls["p99"] - plain["p99"]) / plain["p99"] * 100, 1)
        out["extra_p50_ms"] = round(mtls["p50"] - plain["p50"], 3)
    return out


def _submit_call(target, channel):
    from gaia_common import spec as spec_mod
    from gaia_common.pb import master_pb2, master_pb2_grpc
    target.seq += 1
    spec = spec_mod.load_yaml(f"name: b{target.seq}\ninstances: 0\ncommand: ['true']\n")
    request = master_pb2.SubmitAppRequest(spec=spec, idempotency_key=uuid.uuid4().hex)
    stub = master_pb2_grpc.MasterStub(channel)
    return (lambda: stub.SubmitApp(request, timeout=10)), (lambda: None)


def _whoami_call(target, channel):
    from gaia_common.pb import master_pb2, master_pb2_grpc
    stub = master_pb2_grpc.MasterStub(channel)
    return (lambda: stub.WhoAmI(master_pb2.WhoAmIRequest(), timeout=10)), (lambda: None)


def _start_call(target, channel):
    from gaia_common.pb import node_pb2, node_pb2_grpc, types_pb2
    stub = node_pb2_grpc.NodeStub(channel)
    spec = target.container_spec()

    def start():
        status = stub.StartContainer(node_pb2.StartContainerRequest(epoch=1, spec=spec), timeout=60)
        if status.state != types_pb2.CONTAINER_STATE_RUNNING:
            raise RuntimeError(f"{spec.container_id} did not run: {status.message}")

    def stop():
        stub.StopContainer(node_pb2.StopContainerRequest(epoch=1, container_id=spec.container_id,
                                                         grace_seconds=1, remove=True), timeout=60)
    return start, stop


class Target:
    """One server of one mode: its address, the client's TLS (None: plaintext), a reused channel."""

    def __init__(self, address: str, tls, cluster: str, server_name: str = None):
        """`server_name`: the name the server's certificate must carry (a node's), as a master
        dialing that node expects it."""
        from gaia_common import rpc
        from gaia_common.security.tls import TlsFiles, channel_credentials
        self.address = address
        self.cluster = cluster
        files = TlsFiles.from_config(tls)
        self.credentials = channel_credentials(files) if files else None
        self.server_name = server_name if files else None
        self.channel = rpc.channel(address, tls=self.credentials, server_name=self.server_name)
        self.seq = 0

    def new_channel(self) -> grpc.Channel:
        """A channel of its own connection: gRPC otherwise shares one between equal channels."""
        from gaia_common import rpc
        options = rpc.CHANNEL_OPTIONS + [("grpc.use_local_subchannel_pool", 1)]
        if self.server_name:
            options.append(("grpc.ssl_target_name_override", self.server_name))
        if self.credentials is None:
            return grpc.insecure_channel(self.address, options=options)
        return grpc.secure_channel(self.address, self.credentials, options=options)

    def container_spec(self):
        from gaia_common.pb import types_pb2
        self.seq += 1
        app_id = f"b{self.seq}-{uuid.uuid4().hex[:8]}"
        spec = types_pb2.ContainerSpec(container_id=f"{app_id}.0.1", app_id=app_id, app_name=f"b{self.seq}",
                                       instance_id="0", driver="process", command=["sleep", "60"],
                                       cluster=self.cluster, host_network=True)
        spec.resources.request.memory_bytes, spec.resources.limit.memory_bytes = 32 * MiB, 64 * MiB
        spec.resources.request.cpu_millis = 100
        return spec

    def close(self):
        self.channel.close()


# ---- the servers ----

@contextlib.contextmanager
def _dev_clusters():
    """Two dev clusters (plaintext, mutual TLS): etcd and one master each, no nodes."""
    from gaia_cli.devcluster import DevCluster
    home = pathlib.Path(tempfile.mkdtemp(prefix="gaia-bench-tls-"))
    old_config = os.environ.get("GAIA_CONFIG")
    os.environ["GAIA_CONFIG"] = str(home / "client.yaml")   # leave the user's config alone
    clusters, targets = [], {}
    try:
        for mode in MODES:
            cluster = DevCluster(name=f"bench-tls-{os.getpid()}-{mode}", home=home)
            clusters.append(cluster)
            cluster.start(masters=1, nodes=0, tls=mode == "mtls")
            cluster.wait_ready()
            client = cluster.client()
            address = client.masters()[0].address
            client.close()
            targets[mode] = Target(address, cluster.state.get("tls"), cluster.name)
        yield targets
    finally:
        for target in targets.values():
            target.close()
        for cluster in clusters:
            cluster.stop(grace=2.0)
        if old_config is None:
            os.environ.pop("GAIA_CONFIG", None)
        else:
            os.environ["GAIA_CONFIG"] = old_config
        shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def _node_managers():
    """Two in-process node managers on a private etcd (plaintext, mutual TLS), each its own cluster."""
    from gaia_common.config import NodeConfig
    from gaia_common.etcd import EtcdServer
    from gaia_common.security.identity import Identity, node_server_name
    from gaia_common.security.pki import CertificateAuthority
    from gaia_cli.procs import remove_cgroups
    from gaia_node import main
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="gaia-bench-tls-nodes-"))
    (workdir / "etcd").mkdir()
    etcd = EtcdServer(data_dir=str(workdir / "etcd"), name="gaia-bench-tls").start()
    tag = uuid.uuid4().hex[:8]
    managers, targets = [], {}
    try:
        for mode in MODES:
            cluster = f"bench-{tag}-{mode[0]}"
            server_tls = client_tls = None
            if mode == "mtls":
                pki = workdir / "tls"
                ca = CertificateAuthority.create(pki, cluster)
                ca.issue(Identity("node", f"bench-{tag}", cluster), hosts=("127.0.0.1",), directory=pki, stem="node")
                ca.issue(Identity("master", "bench", cluster), directory=pki, stem="master")
                server_tls, client_tls = ({"ca": str(pki / "ca.crt"), "cert": str(pki / f"{s}.crt"),
                                           "key": str(pki / f"{s}.key")} for s in ("node", "master"))
            cfg = NodeConfig(cluster=cluster, etcd=[etcd.endpoint], id=f"bench-{tag}", lease_ttl=3,
                             state_dir=str(workdir / mode), cgroup_parent=f"gaia-bench-{tag}-{mode}",
                             tls=server_tls)
            manager = main.start(cfg)
            managers.append(manager)
            targets[mode] = Target(manager.address, client_tls, cluster, node_server_name(cluster, f"bench-{tag}"))
        yield targets
    finally:
        for target in targets.values():
            target.close()
        for manager in managers:
            manager.stop()
            remove_cgroups(manager.cfg.cgroup_parent)
        etcd.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# ---- printing ----

def render(figures: dict) -> str:
    from gaia_cli.output import flatten, render_fields, render_table
    rows = []
    for what in ("submit", "round_trip", "container_start"):
        for kind in ("reused_channel", "new_channel"):
            if what not in figures:
                continue
            f = figures[what][kind]
            rows.append([what, kind.replace("_channel", ""), f["plaintext_ms"]["p50"], f["mtls_ms"]["p50"],
                         f["plaintext_ms"]["p99"], f["mtls_ms"]["p99"], f.get("extra_p50_pct"),
                         f.get("extra_p50_ms")])
    out = render_table(["CALL", "CHANNEL", "PLAIN P50 MS", "MTLS P50 MS", "PLAIN P99 MS", "MTLS P99 MS",
                        "EXTRA P50 %", "EXTRA P50 MS"], rows)
    out += (f"\ntarget: under {figures['target_extra_pct']:g}% extra on reused channels (submit p50): "
            f"{'met' if figures['met'] else 'NOT met'}")
    if "fuzz" in figures:
        out += "\n\nfuzz\n" + render_fields(sorted(flatten(figures["fuzz"])))
    return out
