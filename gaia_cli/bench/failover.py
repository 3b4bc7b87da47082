"""`gaia bench failover`: kill -9 the leading master N times under a stream of submissions.

Measures, per kill, the time from the kill to the first successful call answered by the new
leader, and at the end counts the submitted apps the masters acknowledged against what is
stored: lost (acknowledged, not stored) and duplicated (one submission stored twice, or a
retry of it refused as a second app). Runs on a private dev cluster (etcd + masters, no
nodes: submissions only need the masters) in a temporary directory, torn down afterwards.
"""
import contextlib
import os
import random
import signal
import tempfile
import threading
import time
import uuid

import grpc

from gaia_common import rpc, spec as spec_mod
from gaia_common.client import GaiaError, MasterClient
from gaia_common.pb import master_pb2, master_pb2_grpc
from gaia_cli.bench.stats import percentiles
from gaia_cli.devcluster import DevCluster

PROBE_APP = "probe"


class Submitter(threading.Thread):
    """Submits apps back to back, each with its own idempotency key, as a user's CLI would."""

    def __init__(self, client: MasterClient):
        super().__init__(name="submitter", daemon=True)
        self.client = client
        self.acked, self.errors, self.refused_retries = [], [], 0
        self.done = threading.Event()

    def run(self):
        i = 0
        while not self.done.is_set():
            spec = spec_mod.load_yaml(f"name: b{i}\ninstances: 0\ncommand: ['true']\n")
            try:
                request = master_pb2.SubmitAppRequest(spec=spec, idempotency_key=str(uuid.uuid4()))
                self.acked.append((spec.name, self.client.call("SubmitApp", request).app_id))
            except GaiaError as e:
                self.errors.append(e.message)
                self.refused_retries += e.code == grpc.StatusCode.ALREADY_EXISTS
            i += 1


@contextlib.contextmanager
def private_cluster(masters: int, lease_ttl: int):
    with tempfile.TemporaryDirectory(prefix="gaia-bench-") as home:
        old_config = os.environ.get("GAIA_CONFIG")
        os.environ["GAIA_CONFIG"] = os.path.join(home, "client.yaml")  # leave the user's config alone
        cluster = DevCluster(name=f"bench-{os.getpid()}", home=__import__("pathlib").Path(home))
        try:
            # plaintext: the figures stay comparable with earlier runs (`gaia bench tls` prices TLS)
            cluster.start(masters=masters, nodes=0, lease_ttl=lease_ttl, tls=False)
            cluster.wait_ready()
            yield cluster
        finally:
            cluster.stop(grace=2.0)
            if old_config is None:
                os.environ.pop("GAIA_CONFIG", None)
            else:
                os.environ["GAIA_CONFIG"] = old_config


def first_answer_from_new_leader(client: MasterClient, old_epoch: int, timeout: float = 30.0) -> float:
    """Monotonic time of the first GetApp answered by a leader other than `old_epoch`."""
    deadline = time.monotonic() + timeout
    channels = {}
    try:
        while time.monotonic() < deadline:
            try:
                masters = client.masters()
            except Exception:
                masters = []
            if masters and masters[0].epoch != old_epoch:
                address = masters[0].address
                channels.setdefault(address, rpc.channel(address))
                try:
                    status = master_pb2_grpc.MasterStub(channels[address]).GetApp(
                        master_pb2.GetAppRequest(name=PROBE_APP), timeout=0.5)
                    if status.epoch != old_epoch:
                        return time.monotonic()
                except grpc.RpcError:
                    pass
            time.sleep(0.01)
    finally:
        for ch in channels.values():
            ch.close()
    raise TimeoutError(f"no new leader answered within {timeout}s")


def run(kills: int = 10, masters: int = 3, lease_ttl: int = 2, settle: float = 1.0) -> dict:
    samples = []
    with private_cluster(masters, lease_ttl) as cluster:
        client = MasterClient(cluster.name, etcd_endpoints=[cluster.endpoint], retry_for=60, deadline=3)
        probe_spec = spec_mod.load_yaml(f"name: {PROBE_APP}\ninstances: 0\ncommand: ['true']\n")
        client.call("SubmitApp", master_pb2.SubmitAppRequest(spec=probe_spec, idempotency_key="probe"))
        submitter = Submitter(MasterClient(cluster.name, etcd_endpoints=[cluster.endpoint], retry_for=60,
                                           deadline=3))
        submitter.start()
        for _ in range(kills):
            leader = client.masters()[0]
            time.sleep(settle + random.random() * lease_ttl / 2)  # land anywhere in the keepalive cycle
            killed_at = time.monotonic()
            os.kill(cluster.master_pid(leader.id), signal.SIGKILL)
            samples.append(first_answer_from_new_leader(client, leader.epoch) - killed_at)
            cluster.restart_master(leader.id)
            cluster.wait_ready()
        submitter.done.set()
        submitter.join(60)
        stored = [a.app for a in client.call("ListApps", master_pb2.ListAppsRequest()).apps
                  if a.app.spec.name != PROBE_APP]
        client.close()
    stored_ids = {r.app_id for r in stored}
    names = [r.spec.name for r in stored]
    return {
        "kills": kills, "masters": masters, "lease_ttl_s": lease_ttl,
        "failover_s": percentiles(samples), "failover_samples_s": [round(s, 3) for s in samples],
        "apps_submitted": len(submitter.acked) + len(submitter.errors),
        "apps_acknowledged": len(submitter.acked),
        "apps_stored": len(stored),
        "lost": sum(1 for _, app_id in submitter.acked if app_id not in stored_ids),
        "duplicated": (len(names) - len(set(names))) + submitter.refused_retries,
        "submit_errors": len(submitter.errors),
    }
