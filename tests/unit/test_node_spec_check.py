"""A node checks an ApplicationMaster's StartContainer against the grant and the app's spec in
etcd (gaia_node/spec_check.py), through the Node service."""
import types

import grpc
import pytest

from gaia_common.pb import node_pb2, types_pb2
from gaia_node.service import NodeService
from gaia_node.spec_check import CannotCheck, NotGranted, SpecCheck

NODE = "n1"
GPU_REQ = types_pb2.Resources(cpu_millis=100, memory_bytes=64 << 20, gpu_share=100)


def app_spec(**kw):
    spec = types_pb2.AppSpec(name="web", driver="process", command=["sleep", "60"], workdir="/srv", priority=3, **kw)
    spec.resources.request.CopyFrom(GPU_REQ)
    spec.resources.limit.memory_bytes = 128 << 20
    return spec


def record(v1=None, v2=None):
    rec = types_pb2.AppRecord(app_id="web-1", version=2 if v2 else 1)
    rec.spec.CopyFrom(v2 or v1 or app_spec())
    rec.versions[1].CopyFrom(v1 or app_spec())
    if v2:
        rec.versions[2].CopyFrom(v2)
    return rec


def allocation(node_id=NODE, gpus=(1,)):
    return types_pb2.Allocation(app_id="web-1", instance_id="0", node_id=node_id, request=GPU_REQ,
                                gpu_indices=list(gpus), version=1)


def container(spec=None, version=1, gpus=(1,)):
    """What the AM sends (gaia_am/containers.container_spec) for instance 0."""
    spec = spec or app_spec()
    out = types_pb2.ContainerSpec(container_id="web-1.0.0", app_id="web-1", app_name="web", instance_id="0",
                                  driver=spec.driver, command=list(spec.command), workdir=spec.workdir,
                                  priority=spec.priority, version=version, gpu_indices=list(gpus),
                                  host_network=spec.network == "host")
    out.resources.CopyFrom(spec.resources)
    out.env["CUDA_VISIBLE_DEVICES"] = "1"
    out.volumes.extend(spec.volumes)
    out.devices.extend(spec.devices)
    out.privileged = spec.privileged
    return out


class Etcd:
    def __init__(self, alloc, rec):
        self.alloc, self.rec, self.down, self.reads = alloc, rec, False, []

    def read(self, app_id, instance_id, app_name):
        self.reads.append((app_id, instance_id, app_name))
        if self.down:
            raise CannotCheck("cannot read the grant of web-1/0 from etcd: away")
        return self.alloc, self.rec


class Aborted(Exception):
    pass


class Context:
    def abort(self, code, details):
        self.code, self.details = code, details
        raise Aborted(code)


@pytest.fixture
def node():
    etcd = Etcd(allocation(), record())
    started = []
    manager = types.SimpleNamespace(
        cfg=types.SimpleNamespace(host_path_allow=["/srv"]),
        epoch=types.SimpleNamespace(admit=lambda epoch: None),
        attempts=types.SimpleNamespace(admit=lambda app_id, attempt: None),
        spec_check=SpecCheck(NODE, etcd.read),
        containers=types.SimpleNamespace(start=lambda spec: started.append(spec.container_id) or
                                         types_pb2.ContainerStatus(container_id=spec.container_id)))
    return NodeService(manager), etcd, started


def start(svc, spec, am_attempt=1):
    context = Context()
    try:
        svc.StartContainer(node_pb2.StartContainerRequest(epoch=5, spec=spec, am_attempt=am_attempt), context)
    except Aborted:
        return context.code, context.details
    return grpc.StatusCode.OK, ""


def test_what_the_am_builds_from_the_grant_starts(node):
    svc, etcd, started = node
    assert start(svc, container()) == (grpc.StatusCode.OK, "")
    assert started == ["web-1.0.0"] and etcd.reads == [("web-1", "0", "web")]   # one transaction


def test_a_masters_start_is_not_checked(node):
    svc, etcd, started = node
    forged = container()
    forged.privileged = True
    assert start(svc, forged, am_attempt=0)[0] == grpc.StatusCode.OK
    assert etcd.reads == []


def _privileged(s):
    s.privileged = True


def _volume(s):
    s.volumes.add(host_path="/srv/data", container_path="/data")


def _device(s):
    s.devices.append("/dev/fuse")


def _host_network(s):
    s.host_network = True


def _more_cpu(s):
    s.resources.request.cpu_millis *= 4


def _higher_limit(s):
    s.resources.limit.memory_bytes *= 2


def _other_gpus(s):
    s.gpu_indices[:] = [0, 1]


def _command(s):
    s.command[:] = ["sh", "-c", "cat /etc/shadow"]


def _driver(s):
    s.driver = "docker"


def _workdir(s):
    s.workdir = "/"


def _namespaces(s):
    s.namespaces.append("pid")


def _credentials(s):
    s.tls.cert_pem = b"stolen"


def _priority(s):
    s.priority = 1000


def _exec_check(s):
    s.health_check.kind = "exec"
    s.health_check.command.append("true")


@pytest.mark.parametrize("forge, field", [
    (_privileged, "spec.privileged"), (_volume, "spec.volumes"), (_device, "spec.devices"),
    (_host_network, "spec.host_network"), (_more_cpu, "spec.resources.request"), (_higher_limit, "spec.resources"),
    (_other_gpus, "spec.gpu_indices"), (_command, "spec.command"), (_driver, "spec.driver"),
    (_workdir, "spec.workdir"), (_namespaces, "spec.namespaces"), (_credentials, "spec.tls"),
    (_priority, "spec.priority"), (_exec_check, "spec.health_check"),
])
def test_an_am_cannot_ask_for_more_than_the_master_granted(node, forge, field):
    svc, _, started = node
    spec = container()
    forge(spec)
    code, details = start(svc, spec)
    assert code == grpc.StatusCode.PERMISSION_DENIED and details.startswith(field + ":"), details
    assert started == []


def test_the_env_is_the_tenants_own(node):
    spec = container()
    spec.env["DEBUG"] = "1"
    assert start(node[0], spec)[0] == grpc.StatusCode.OK


def test_no_allocation_is_a_failed_precondition(node):
    svc, etcd, started = node
    etcd.alloc = None
    code, details = start(svc, container())
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "instance 0 of web-1 has no allocation" in details
    assert started == []


def test_an_allocation_on_another_node_is_refused(node):
    svc, etcd, _ = node
    etcd.alloc = allocation(node_id="n2")
    code, details = start(svc, container())
    assert code == grpc.StatusCode.PERMISSION_DENIED and "allocated to node 'n2'" in details


def test_another_apps_privileged_spec_cannot_be_borrowed(node):
    """A spec naming a privileged app's record (app_name) for its own app_id."""
    svc, etcd, _ = node
    etcd.rec = record(app_spec(privileged=True))
    etcd.rec.app_id = "admin-tools-1"
    spec = container(app_spec(privileged=True))
    code, details = start(svc, spec)
    assert code == grpc.StatusCode.PERMISSION_DENIED and details.startswith("spec.app_name:")


def test_a_finished_app_is_a_failed_precondition(node):
    svc, etcd, _ = node
    etcd.rec = None
    assert start(svc, container())[0] == grpc.StatusCode.FAILED_PRECONDITION


def test_etcd_away_is_unavailable(node):
    svc, etcd, started = node
    etcd.down = True
    assert start(svc, container())[0] == grpc.StatusCode.UNAVAILABLE and started == []


def test_both_versions_of_a_rolling_update_start_and_no_other(node):
    """During a rollout (or a rollback) the AM starts the new or the old version: both are held."""
    svc, etcd, _ = node
    v2 = app_spec()
    v2.command[:] = ["sleep", "120"]
    v2.resources.limit.memory_bytes = 256 << 20     # an update may change limits, not the request
    etcd.rec = record(app_spec(), v2)
    assert start(svc, container(v2, version=2))[0] == grpc.StatusCode.OK
    assert start(svc, container(app_spec(), version=1))[0] == grpc.StatusCode.OK
    mixed = container(v2, version=1)                # version 2's command claimed as version 1
    assert start(svc, mixed)[0] == grpc.StatusCode.PERMISSION_DENIED
    code, details = start(svc, container(v2, version=3))
    assert code == grpc.StatusCode.PERMISSION_DENIED and details.startswith("spec.version: 3 is not a version")


def test_a_record_from_before_versions_is_every_version(node):
    svc, etcd, _ = node
    etcd.rec = types_pb2.AppRecord(app_id="web-1", spec=app_spec())
    assert start(svc, container(version=0))[0] == grpc.StatusCode.OK


@pytest.mark.parametrize("field, value", [("instance_id", "../am"), ("app_name", ""), ("app_name", "a/b")])
def test_ids_that_would_make_other_keys_are_refused_before_reading(node, field, value):
    svc, etcd, _ = node
    spec = container()
    setattr(spec, field, value)
    code, details = start(svc, spec)
    assert code == grpc.StatusCode.PERMISSION_DENIED and details.startswith(f"spec.{field}:")
    assert etcd.reads == []


def test_every_spec_the_am_really_builds_passes(node):
    """gaia_am/containers.container_spec, for an app with every checked field set: a field the
    AM starts filling in from the app spec must be taught to the check too."""
    from gaia_am.containers import container_spec
    svc, etcd, _ = node
    rich = app_spec(network="host", privileged=True, devices=["/dev/null"], private=True, gpu_mode="elastic",
                    volumes=[types_pb2.Volume(host_path="/srv/data", container_path="/data", read_only=True)],
                    ports=[types_pb2.Port(name="http", protocol="tcp")], env={"A": "1"},
                    health_check=types_pb2.HealthCheck(kind="tcp", port="http"), on_partition="stop")
    etcd.rec = record(rich)
    for counter in (0, 3):      # the check alone: this machine's host paths are not the point here
        svc.manager.spec_check.check(container_spec(etcd.rec, allocation(), counter))
    forged = container_spec(etcd.rec, allocation(), 4)
    forged.volumes.add(host_path="/", container_path="/host")
    with pytest.raises(NotGranted, match="spec.volumes"):
        svc.manager.spec_check.check(forged)
