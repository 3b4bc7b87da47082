"""Hostile input, piece by piece: spec bounds, paths and the host-path allow-lists (master and
node), the gRPC edge (malformed requests, bounded details, bounded concurrency), deadlines on
every call, and what the drivers make of volumes, devices and privileged."""
import ast
import os
import pathlib
import re
import threading
import time

import grpc
import pytest

from gaia_common import edge, rpc, spec as spec_mod
from gaia_common.fuzz_specs import set_fields
from gaia_common.pb import master_pb2, master_pb2_grpc, types_pb2
from gaia_node.validation import check_host_access, validate_container_spec

ROOT = pathlib.Path(__file__).resolve().parents[2]


def app(**fields) -> types_pb2.AppSpec:
    spec = types_pb2.AppSpec(name="web", pool="default", kind=1, driver="process", command=["sleep", "1"])
    return set_fields(spec, fields.items())


def refused(spec, field_prefix: str, *, allow=None) -> str:
    with pytest.raises(spec_mod.SpecError) as e:
        spec_mod.validate(spec)
        if allow is not None:
            spec_mod.check_host_paths(spec, allow)
    assert e.value.field.startswith(field_prefix), e.value
    return e.value.problem


# ---- absurd sizes ----

@pytest.mark.parametrize("fields, field", [
    ({"command": ["x" * 70_000] * 5}, "spec"),                        # 350 KB of spec
    ({"env": {f"V{i}": "x" for i in range(300)}}, "env"),
    ({"env": {"V": "x" * 70_000}}, "env.V"),
    ({"env": {"GAIA_CLUSTER": "other"}}, "env.GAIA_CLUSTER"),
    ({"env": {"A-B": "x"}}, "env."),
    ({"env": {"V": "a\0b"}}, "env.V"),
    ({"command": ["sleep", "1\0"]}, "command"),
    ({"priority": 2**31 - 1}, "priority"),
    ({"image": "x" * 2000}, "image"),
    ({"pool": "a" * 300}, "pool"),
    ({"ports": [types_pb2.Port(name=f"p{i}", protocol="tcp") for i in range(65)]}, "ports"),
    ({"instances": 2**31 - 1}, "instances"),
    ({"resources": types_pb2.ResourceRequirements(request=types_pb2.Resources(memory_bytes=2**62))},
     "resources.request.memory"),
    ({"volumes": [types_pb2.Volume(host_path=f"/data/{i}", container_path=f"/m/{i}") for i in range(33)]}, "volumes"),
    ({"devices": [f"/dev/d{i}" for i in range(33)]}, "devices"),
])
def test_absurd_sizes_are_refused_naming_the_field(fields, field):
    refused(app(**fields), field)


def test_error_details_are_bounded():
    problem = refused(app(image="\n" * 10), "image")
    assert len(problem) < 200
    e = spec_mod.SpecError("f" * 10_000, "p" * 100_000)
    assert len(str(e)) < 1500 and "more characters" in str(e)


# ---- paths ----

@pytest.mark.parametrize("fields, field", [
    ({"workdir": "a/../../etc"}, "workdir"),
    ({"volumes": [types_pb2.Volume(host_path="/data/../etc", container_path="/m")]}, "volumes[0].host_path"),
    ({"volumes": [types_pb2.Volume(host_path="data", container_path="/m")]}, "volumes[0].host_path"),
    ({"volumes": [types_pb2.Volume(host_path="/data//x", container_path="/m")]}, "volumes[0].host_path"),
    ({"volumes": [types_pb2.Volume(host_path="/data/x", container_path="/m/../..")]}, "volumes[0].container_path"),
    ({"volumes": [types_pb2.Volume(host_path="/data/x", container_path="/")]}, "volumes[0].container_path"),
    ({"volumes": [types_pb2.Volume(host_path="/data/x", container_path="/m"),
                  types_pb2.Volume(host_path="/data/y", container_path="/m")]}, "volumes[1].container_path"),
    ({"devices": ["/etc/shadow"]}, "devices[0]"),
    ({"devices": ["/dev/../etc/shadow"]}, "devices[0]"),
    ({"devices": ["/dev/fuse", "/dev/fuse"]}, "devices"),
])
def test_path_traversal_and_odd_paths_are_refused(fields, field):
    refused(app(**fields), field)


@pytest.mark.parametrize("fields, field", [
    ({"volumes": [types_pb2.Volume(host_path="/etc", container_path="/m")]}, "volumes[0].host_path"),
    ({"volumes": [types_pb2.Volume(host_path="/database", container_path="/m")]}, "volumes[0].host_path"),
    ({"devices": ["/dev/sda"]}, "devices[0]"),
    ({"workdir": "/etc/cron.d"}, "workdir"),        # a process workdir is made and entered on the host
])
def test_host_paths_outside_the_allow_list_are_refused(fields, field):
    assert "outside this cluster's allowed host paths (/data, /dev/fuse)" in refused(
        app(**fields), field, allow=["/data", "/dev/fuse"])


def test_host_paths_inside_the_allow_list_pass():
    spec = app(volumes=[types_pb2.Volume(host_path="/data/a", container_path="/m", read_only=True)],
               devices=["/dev/fuse"], workdir="/data/work", privileged=True)
    spec_mod.validate(spec)
    spec_mod.check_host_paths(spec, ["/data", "/dev/fuse"])
    spec_mod.check_host_paths(app(driver="docker", image="x", workdir="/srv"), [])   # docker: inside the image


def test_an_empty_allow_list_allows_no_host_path():
    spec = app(volumes=[types_pb2.Volume(host_path="/data/a", container_path="/m")])
    assert "none: host_path_allow is empty" in refused(spec, "volumes[0].host_path", allow=[])


def test_yaml_volumes_devices_privileged():
    spec = spec_mod.load_yaml("name: v\ncommand: [x]\nvolumes: ['/data/a:/a:ro', {host_path: /data/b, "
                              "container_path: /b}]\ndevices: [/dev/fuse]\nprivileged: true\n")
    assert [(v.host_path, v.container_path, v.read_only) for v in spec.volumes] == [
        ("/data/a", "/a", True), ("/data/b", "/b", False)]
    assert list(spec.devices) == ["/dev/fuse"] and spec.privileged
    for text, field in (("volumes: /data", "volumes"), ("volumes: ['/a:/b:rx']", "volumes[0]"),
                        ("volumes: [{host_path: /a, container_path: /b, mode: x}]", "volumes[0].mode"),
                        ("privileged: yes please", "privileged"), ("devices: [1]", "devices")):
        with pytest.raises(spec_mod.SpecError) as e:
            spec_mod.load_yaml(f"name: v\ncommand: [x]\n{text}\n")
        assert e.value.field == field, e.value


def test_allow_list_setting_is_checked():
    assert spec_mod.check_allow_list(["/data", "/dev/fuse"]) == ["/data", "/dev/fuse"]
    for bad in ("/data", ["data"], ["/a/../b"], [3]):
        with pytest.raises(ValueError):
            spec_mod.check_allow_list(bad)


# ---- the node's own allow-list ----

def container(tmp_path, **fields) -> types_pb2.ContainerSpec:
    spec = types_pb2.ContainerSpec(container_id="a.0.0", app_id="a", app_name="a", instance_id="0",
                                   driver="process", command=["true"])
    for name, value in fields.items():
        getattr(spec, name).extend(value) if isinstance(value, list) else setattr(spec, name, value)
    return spec


def test_node_refuses_what_its_own_allow_list_does_not_hold(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "other").mkdir()
    allow = [str(tmp_path / "data")]
    ok = container(tmp_path, volumes=[types_pb2.Volume(host_path=str(tmp_path / "data"), container_path="/m")])
    check_host_access(ok, allow)
    outside = container(tmp_path, volumes=[types_pb2.Volume(host_path=str(tmp_path / "other"), container_path="/m")])
    with pytest.raises(spec_mod.SpecError, match=r"^spec.volumes\[0\].host_path: .* outside this node's allowed"):
        check_host_access(outside, allow)


def test_node_resolves_symlinks_and_wants_what_exists(tmp_path):
    (tmp_path / "data").mkdir()
    os.symlink("/etc", tmp_path / "data" / "escape")
    allow = [str(tmp_path / "data")]
    escape = container(tmp_path, volumes=[types_pb2.Volume(host_path=str(tmp_path / "data" / "escape"),
                                                           container_path="/m")])
    with pytest.raises(spec_mod.SpecError, match="resolves to '/etc'"):
        check_host_access(escape, allow)
    missing = container(tmp_path, volumes=[types_pb2.Volume(host_path=str(tmp_path / "data" / "nope"),
                                                            container_path="/m")])
    with pytest.raises(spec_mod.SpecError, match="does not exist on this node"):
        check_host_access(missing, allow)
    (tmp_path / "data" / "file").write_text("x")
    not_a_device = container(tmp_path, devices=[str(tmp_path / "data" / "file")])
    with pytest.raises(spec_mod.SpecError, match="is not a device"):
        check_host_access(not_a_device, allow)
    check_host_access(container(tmp_path, devices=["/dev/null"]), ["/dev/null"])


def test_node_checks_the_shape_too():
    class AnyDriver:
        def validate(self, spec):
            pass
    spec = types_pb2.ContainerSpec(container_id="a.0.0", app_id="a", app_name="a", instance_id="0",
                                   driver="process", command=["true"], devices=["/dev/../etc/shadow"])
    with pytest.raises(spec_mod.SpecError, match=r"^spec.devices\[0\]"):
        validate_container_spec(spec, {"process": AnyDriver()})


# ---- the drivers ----

def test_docker_driver_passes_volumes_devices_and_privileged():
    pytest.importorskip("docker")
    from gaia_node.drivers.docker import DockerDriver
    spec = types_pb2.ContainerSpec(volumes=[types_pb2.Volume(host_path="/data/a", container_path="/a", read_only=True)],
                                   devices=["/dev/fuse"], privileged=True)
    options = DockerDriver._host_access(spec, ["/dev/nvidia0:/dev/nvidia0:rwm"])
    (mount,) = options["mounts"]
    assert (mount["Source"], mount["Target"], mount["Type"], mount["ReadOnly"]) == ("/data/a", "/a", "bind", True)
    assert options["devices"] == ["/dev/nvidia0:/dev/nvidia0:rwm", "/dev/fuse:/dev/fuse:rwm"]
    assert options["privileged"] is True
    assert DockerDriver._host_access(types_pb2.ContainerSpec(), []) == {}


def test_process_driver_refuses_what_it_cannot_honour(tmp_path, monkeypatch):
    from gaia_node.drivers import process
    spec = types_pb2.ContainerSpec(container_id="a.0.0", command=["true"],
                                   volumes=[types_pb2.Volume(host_path=str(tmp_path), container_path="/nowhere/x")])
    driver = process.ProcessDriver(dirs=None)
    with pytest.raises(spec_mod.SpecError, match=r"container_path: '/nowhere/x' does not exist on this node"):
        driver._validate_host_access(spec, root=True)
    with pytest.raises(spec_mod.SpecError, match="not root"):
        driver._validate_host_access(spec, root=False)
    with pytest.raises(spec_mod.SpecError, match=r"^spec.privileged: .*not root"):
        driver._validate_host_access(types_pb2.ContainerSpec(privileged=True), root=False)
    file_over_dir = types_pb2.ContainerSpec(volumes=[types_pb2.Volume(host_path=__file__,
                                                                      container_path=str(tmp_path))])
    with pytest.raises(spec_mod.SpecError, match="a directory binds over a directory"):
        driver._validate_host_access(file_over_dir, root=True)


# ---- the gRPC edge ----

class Slow(master_pb2_grpc.MasterServicer):
    def __init__(self):
        self.release = threading.Event()

    def SubmitApp(self, request, context):
        self.release.wait(5)
        return master_pb2.SubmitAppResponse(app_id="ok")

    def ListPools(self, request, context):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, edge.details("x" * 100_000))


@pytest.fixture
def slow_server():
    servicer = Slow()
    server = rpc.make_server(max_workers=2, max_concurrent_rpcs=4)
    master_pb2_grpc.add_MasterServicer_to_server(servicer, server)
    address = rpc.bind(server, "127.0.0.1:0", tls=None)
    server.start()
    channel = grpc.insecure_channel(address)
    yield servicer, channel
    servicer.release.set()
    channel.close()
    server.stop(0)


def test_malformed_and_deeply_nested_requests_are_invalid_argument(slow_server):
    _, channel = slow_server
    raw = channel.unary_unary("/gaia.v1.Master/SubmitApp", request_serializer=lambda b: b,
                              response_deserializer=lambda b: b)
    deep = b"".join([b"\xa3\x06"] * 500) + b"".join([b"\xa4\x06"] * 500)   # groups nested 500 deep
    for payload in (b"\xff\xff\xff", deep):
        with pytest.raises(grpc.RpcError) as e:
            raw(payload, timeout=5)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert e.value.details().startswith("request: not a valid SubmitApp request")


def test_long_details_reach_the_caller_cut(slow_server):
    _, channel = slow_server
    with pytest.raises(grpc.RpcError) as e:
        master_pb2_grpc.MasterStub(channel).ListPools(master_pb2.ListPoolsRequest(), timeout=5)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and len(e.value.details()) <= edge.MAX_DETAILS


def test_calls_beyond_the_concurrency_bound_are_refused_at_once(slow_server):
    servicer, channel = slow_server
    stub = master_pb2_grpc.MasterStub(channel)
    calls = [stub.SubmitApp.future(master_pb2.SubmitAppRequest(), timeout=10) for _ in range(10)]
    time.sleep(0.5)
    servicer.release.set()
    codes = []
    for call in calls:
        try:
            call.result()
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as e:
            codes.append(e.code())
    assert codes.count(grpc.StatusCode.OK) == 4
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 6


# ---- deadlines ----

def rpc_methods() -> set:
    names = set()
    for proto in (ROOT / "proto").glob("*.proto"):
        names |= set(re.findall(r"rpc\s+(\w+)\s*\(", proto.read_text()))
    return names


def test_every_grpc_call_names_a_deadline():
    """Each stub call in the daemons, the AM and the CLI passes timeout= (None only for a
    stream that follows for as long as the caller wants: logs -f, watches with a watchdog)."""
    methods, missing = rpc_methods(), []
    for package in ("gaia_common", "gaia_am", "gaia_master", "gaia_cli", "gaia_node", "gaia_dns"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name.endswith("_pb2_grpc.py"):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in methods and not any(k.arg == "timeout" for k in node.keywords)):
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.func.attr}")
    assert not missing, missing


def test_the_client_has_a_default_deadline():
    from gaia_common.client import MasterClient
    client = MasterClient("x", masters=["127.0.0.1:1"], retry_for=0)
    assert client.deadline > 0
    client.close()
