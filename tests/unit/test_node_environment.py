"""A container's environment and `$VAR` expansion of its command."""
import pytest

from gaia_common.pb import types_pb2
from gaia_common.spec import SpecError
from gaia_node.environment import build_env, expand_args, port_variable
from gaia_node.validation import validate_container_spec


def spec(**kw):
    base = dict(container_id="app-1.0.1", app_id="app-1", app_name="web", instance_id="0", driver="process",
                command=["true"])
    base.update(kw)
    return types_pb2.ContainerSpec(**base)


def test_gaia_variables_and_ports():
    env = build_env(spec(env={"MODE": "fast"}), cluster="prod", node_id="n1", host_ip="10.0.0.5",
                    host_ports={"http": 20001, "grpc-admin": 20002}, base={"PATH": "/bin", "SECRET": "x"})
    assert env == {"PATH": "/bin", "MODE": "fast", "GAIA_CLUSTER": "prod", "GAIA_APP": "web",
                   "GAIA_APP_ID": "app-1", "GAIA_INSTANCE": "0", "GAIA_CONTAINER_ID": "app-1.0.1",
                   "GAIA_HOST_IP": "10.0.0.5", "GAIA_NODE_ID": "n1",
                   "GAIA_PORT_HTTP": "20001", "GAIA_PORT_GRPC_ADMIN": "20002"}


def test_spec_cluster_wins_and_path_has_a_default():
    env = build_env(spec(cluster="other"), cluster="prod", node_id="n", host_ip="h", host_ports={}, base={})
    assert env["GAIA_CLUSTER"] == "other" and env["PATH"]


def test_port_variable_name():
    assert port_variable("http") == "GAIA_PORT_HTTP"
    assert port_variable("grpc-admin-2") == "GAIA_PORT_GRPC_ADMIN_2"


def test_expand_args():
    env = {"GAIA_PORT_HTTP": "20001", "HOST": "h"}
    assert expand_args(["serve", "$GAIA_PORT_HTTP", "--addr=${HOST}:$GAIA_PORT_HTTP", "$UNKNOWN", "$$5", "a$"],
                       env) == ["serve", "20001", "--addr=h:20001", "$UNKNOWN", "$5", "a$"]


class FakeDriver:
    def validate(self, spec):
        if spec.image:
            raise SpecError("spec.image", "no images")


@pytest.mark.parametrize("changes, field", [
    ({"container_id": "../x"}, "spec.container_id"),
    ({"container_id": ""}, "spec.container_id"),
    ({"app_id": "a/b"}, "spec.app_id"),
    ({"app_name": ""}, "spec.app_name"),
    ({"driver": "docker"}, "spec.driver"),
    ({"workdir": "../../etc"}, "spec.workdir"),
    ({"env": {"1BAD": "x"}}, "spec.env.1BAD"),
    ({"ports": [types_pb2.Port(name="Bad")]}, "spec.ports[0].name"),
    ({"ports": [types_pb2.Port(name="a"), types_pb2.Port(name="a")]}, "spec.ports[1].name"),
    ({"ports": [types_pb2.Port(name="a", protocol="sctp")]}, "spec.ports[0].protocol"),
    ({"image": "busybox"}, "spec.image"),
])
def test_bad_specs_name_the_field(changes, field):
    with pytest.raises(SpecError) as err:
        validate_container_spec(spec(**changes), {"process": FakeDriver()})
    assert err.value.field == field


def test_good_spec_passes():
    validate_container_spec(spec(ports=[types_pb2.Port(name="http", protocol="tcp")]), {"process": FakeDriver()})
