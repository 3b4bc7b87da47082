"""Bad input against a real cluster: a clear error naming the field, non-zero exit, etcd unchanged."""
import subprocess
import sys
import time

import grpc
import pytest

from gaia_common import rpc
from gaia_common.pb import master_pb2, master_pb2_grpc, types_pb2
from tests.integration.harness import LocalCluster

GOOD = "name: keep\ninstances: 0\ncommand: ['sleep', '60']\n"
BAD_SPECS = {
    "malformed": ("name: [unclosed\n", "yaml"),
    "unknown-field": ("name: x\ncommand: ['true']\nreplicas: 3\n", "replicas"),
    "negative": ("name: x\ncommand: ['true']\nresources: {request: {memory: -1Gi}}\n", "resources.request.memory"),
    "absurd": ("name: x\ncommand: ['true']\nresources: {request: {cpu: 100000}}\n", "resources.request.cpu"),
    "limit-below-request": ("name: x\ncommand: ['true']\nresources: {request: {memory: 2Gi}, limit: {memory: 1Gi}}\n",
                            "resources.limit.memory"),
    "bad-name": ("name: Not_A_Name\ncommand: ['true']\n", "name"),
    "duplicate": (GOOD, "already"),
}


@pytest.fixture(scope="module")
def cluster(etcd_server, tmp_path_factory):
    c = LocalCluster(etcd_server.endpoint, "badinput", tmp_path_factory.mktemp("badinput"))
    c.start_master()
    try:
        c.wait_ready(nodes=0)
        spec = tmp_path_factory.mktemp("spec") / "keep.yaml"
        spec.write_text(GOOD)
        c.cli("submit", str(spec))
        yield c
    finally:
        c.stop()


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_cli_rejects_bad_spec_and_changes_nothing(cluster, tmp_path, case):
    text, field = BAD_SPECS[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    before = cluster.etcd_snapshot()
    result = cluster.cli("submit", str(path), check=False)
    assert result.returncode != 0
    assert field in result.stderr, result.stderr
    assert cluster.etcd_snapshot() == before


def test_unknown_cluster_name(cluster, tmp_path):
    path = tmp_path / "keep.yaml"
    path.write_text(GOOD.replace("keep", "other"))
    before = cluster.etcd_snapshot()
    env = cluster._env({"GAIA_CLUSTER": "nosuch"})
    result = subprocess.run([sys.executable, "-m", "gaia_cli", "submit", str(path)],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode != 0
    assert "unknown cluster 'nosuch'" in result.stderr, result.stderr
    assert cluster.etcd_snapshot() == before


def raw_submit(cluster, spec):
    """Straight to the leader's gRPC API, bypassing the CLI's own validation."""
    stub = master_pb2_grpc.MasterStub(rpc.channel(cluster.leader().address))
    return stub.SubmitApp(master_pb2.SubmitAppRequest(spec=spec, idempotency_key="raw"), timeout=5)


@pytest.mark.parametrize("spec, field", [
    (types_pb2.AppSpec(name="x", pool="default", driver="process", kind=types_pb2.APP_KIND_SERVICE), "command"),
    (types_pb2.AppSpec(name="x", pool="default", driver="vm", command=["true"], kind=1), "driver"),
    (types_pb2.AppSpec(name="x", pool="default", driver="process", command=["true"], kind=1, instances=-1),
     "instances"),
    (types_pb2.AppSpec(name="x", pool="default", driver="process", command=["true"], kind=1,
                       resources=types_pb2.ResourceRequirements(request=types_pb2.Resources(memory_bytes=-5))),
     "resources.request.memory"),
    (types_pb2.AppSpec(name="x", pool="../etc", driver="process", command=["true"], kind=1), "pool"),
    (types_pb2.AppSpec(name="x", pool="default", driver="process", command=["true"], kind=1,
                       workdir="/tmp/../etc"), "workdir"),
])
def test_master_validates_what_the_cli_did_not(cluster, spec, field):
    before = cluster.etcd_snapshot()
    with pytest.raises(grpc.RpcError) as e:
        raw_submit(cluster, spec)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details().startswith(field), e.value.details()
    assert cluster.etcd_snapshot() == before


def test_oversized_request_is_refused_before_etcd(cluster):
    spec = types_pb2.AppSpec(name="big", pool="default", driver="process", command=["x" * (2 * 2**20)], kind=1)
    before = cluster.etcd_snapshot()
    with pytest.raises(grpc.RpcError) as e:
        raw_submit(cluster, spec)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert cluster.etcd_snapshot() == before


def test_changing_a_finished_app_fails_at_once(cluster, tmp_path):
    path = tmp_path / "gone.yaml"
    path.write_text(GOOD.replace("keep", "gone"))
    cluster.cli("submit", str(path))
    cluster.cli("kill", "gone")
    started = time.monotonic()
    result = cluster.cli("scale", "gone", "3", check=False)
    assert result.returncode == 2
    assert "is killed" in result.stderr, result.stderr
    assert time.monotonic() - started < 10, "a final answer must not be retried like a failover"
