"""Application specs: the examples parse, defaults are filled in, and every kind of bad input
is a SpecError that names the field at fault."""
import pathlib
import textwrap

import pytest

from gaia_common import spec
from gaia_common.pb import types_pb2

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.yaml") if p.name not in ("master.yaml", "node.yaml", "dns.yaml"))

MINIMAL = "name: web\ncommand: sleep 60\n"


def load(text: str) -> types_pb2.AppSpec:
    return spec.load_yaml(textwrap.dedent(text))


def rejects(text: str) -> spec.SpecError:
    with pytest.raises(spec.SpecError) as info:
        load(text)
    return info.value


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_valid(path):
    parsed = spec.load_yaml(path.read_text())
    assert parsed.name and parsed.command


def test_example_apps_exist():
    names = {p.name for p in EXAMPLES}
    assert {"hello.yaml", "batch.yaml"} <= names


def test_hello_example_shape():
    hello = spec.load_yaml((ROOT / "examples" / "hello.yaml").read_text())
    assert hello.kind == types_pb2.APP_KIND_SERVICE
    assert hello.instances == 2
    assert [p.name for p in hello.ports] == ["http"]
    assert "${GAIA_PORT_HTTP}" in hello.command
    assert hello.resources.request.memory_bytes == 64 * 2**20
    assert hello.resources.limit.memory_bytes == 128 * 2**20


def test_batch_example_shape():
    batch = spec.load_yaml((ROOT / "examples" / "batch.yaml").read_text())
    assert batch.kind == types_pb2.APP_KIND_BATCH
    assert list(batch.command) == ["sh", "-c", "echo done"]
    assert batch.instances == 2


def test_defaults():
    s = load(MINIMAL)
    assert s.pool == "default"
    assert s.instances == 1
    assert s.kind == types_pb2.APP_KIND_SERVICE
    assert s.driver == "process"
    assert s.retry_times == 3 and s.migrate_times == 3
    assert s.priority == 0
    assert list(s.command) == ["sleep", "60"]


def test_full_spec():
    s = load("""
        name: api
        pool: ads/ranking/online
        priority: 10
        instances: 3
        kind: batch
        driver: docker
        image: busybox:latest
        command: [sh, -c, "echo hi"]
        env: {MODE: fast, THREADS: 4, DEBUG: true}
        workdir: /srv
        resources:
          request: {cpu: "1.5", memory: 1Gi, disk: 10G, net_in: 100Mbit, net_out: 1Gbit,
                    disk_read: 50Mi, disk_write: 20Mi, gpu_share: 50, gpu_memory: 4Gi}
          limit: {cpu: 2, memory: 2Gi}
        ports:
          - http
          - {name: metrics, port: 9100, protocol: tcp}
          - {name: dns, protocol: udp}
        retry_times: 5
        migrate_times: 0
    """)
    r, l = s.resources.request, s.resources.limit
    assert (r.cpu_millis, r.memory_bytes, r.disk_bytes) == (1500, 2**30, 10**10)
    assert (r.net_in_bps, r.net_out_bps) == (10**8, 10**9)
    assert (r.disk_read_bps, r.disk_write_bps) == (50 * 2**20, 20 * 2**20)
    assert (r.gpu_share, r.gpu_memory_bytes) == (50, 4 * 2**30)
    assert (l.cpu_millis, l.memory_bytes) == (2000, 2 * 2**30)
    assert l.disk_bytes == r.disk_bytes, "an unset limit is the request"
    assert dict(s.env) == {"MODE": "fast", "THREADS": "4", "DEBUG": "True"}
    assert [(p.name, p.container_port, p.protocol) for p in s.ports] == [
        ("http", 0, "tcp"), ("metrics", 9100, "tcp"), ("dns", 0, "udp")]
    assert (s.retry_times, s.migrate_times, s.priority) == (5, 0, 10)


# (case id, YAML, the field the error must name)
BAD = [
    ("malformed-yaml", "name: [web\ncommand: x\n", "yaml"),
    ("malformed-yaml-indent", "name: web\n  command: x\n bad: 1\n", "yaml"),
    ("not-a-mapping", "- name: web\n", "spec"),
    ("unknown-top-field", MINIMAL + "replicas: 3\n", "replicas"),
    ("missing-name", "command: sleep 1\n", "name"),
    ("name-uppercase", "name: Web\ncommand: x\n", "name"),
    ("name-underscore", "name: my_app\ncommand: x\n", "name"),
    ("name-too-long", f"name: {'a' * 64}\ncommand: x\n", "name"),
    ("name-not-text", "name: 12\ncommand: x\n", "name"),
    ("name-trailing-newline", 'name: "web\\n"\ncommand: x\n', "name"),
    ("bad-pool", MINIMAL + "pool: /abs\n", "pool"),
    ("pool-trailing-newline", MINIMAL + 'pool: "ads\\n"\n', "pool"),
    ("bad-driver", MINIMAL + "driver: lxc\n", "driver"),
    ("bad-kind", MINIMAL + "kind: daemon\n", "kind"),
    ("missing-command", "name: web\n", "command"),
    ("docker-without-image", MINIMAL + "driver: docker\n", "image"),
    ("unbalanced-quote", "name: web\ncommand: \"sh -c 'x\"\n", "command"),
    ("command-not-text", "name: web\ncommand: {a: 1}\n", "command"),
    ("negative-instances", MINIMAL + "instances: -1\n", "instances"),
    ("too-many-instances", MINIMAL + "instances: 100001\n", "instances"),
    ("instances-not-int", MINIMAL + "instances: two\n", "instances"),
    ("instances-bool", MINIMAL + "instances: true\n", "instances"),
    ("priority-out-of-range", MINIMAL + "priority: 5000\n", "priority"),
    ("negative-retry", MINIMAL + "retry_times: -2\n", "retry_times"),
    ("negative-migrate", MINIMAL + "migrate_times: -1\n", "migrate_times"),
    ("workdir-escapes", MINIMAL + "workdir: ../etc\n", "workdir"),
    ("env-not-mapping", MINIMAL + "env: [A]\n", "env"),
    ("env-bad-name", MINIMAL + "env: {1A: x}\n", "env.1A"),
    ("env-name-trailing-newline", MINIMAL + 'env: {"A\\n": x}\n', "env.A\n"),
    ("env-reserved", MINIMAL + "env: {GAIA_APP: x}\n", "env.GAIA_APP"),
    ("env-nested", MINIMAL + "env: {A: [1]}\n", "env.A"),
    ("resources-not-mapping", MINIMAL + "resources: 1\n", "resources"),
    ("resources-unknown-part", MINIMAL + "resources: {requests: {cpu: 1}}\n", "resources.requests"),
    ("unknown-resource-key", MINIMAL + "resources: {request: {gpus: 1}}\n", "resources.request.gpus"),
    ("negative-memory", MINIMAL + "resources: {request: {memory: -64Mi}}\n", "resources.request.memory"),
    ("negative-cpu-number", MINIMAL + "resources: {request: {cpu: -1}}\n", "resources.request.cpu"),
    ("negative-limit", MINIMAL + "resources: {limit: {disk: -1}}\n", "resources.limit.disk"),
    ("absurd-memory", MINIMAL + "resources: {request: {memory: 100Ti}}\n", "resources.request.memory"),
    ("absurd-cpu", MINIMAL + "resources: {request: {cpu: 5000}}\n", "resources.request.cpu"),
    ("absurd-network", MINIMAL + "resources: {limit: {net_out: 1000Gbit}}\n", "resources.limit.net_out"),
    ("not-a-quantity", MINIMAL + "resources: {request: {memory: lots}}\n", "resources.request.memory"),
    ("null-quantity", MINIMAL + "resources: {request: {cpu: null}}\n", "resources.request.cpu"),
    ("limit-below-request", MINIMAL + "resources: {request: {memory: 128Mi}, limit: {memory: 64Mi}}\n",
     "resources.limit.memory"),
    ("ports-not-list", MINIMAL + "ports: http\n", "ports"),
    ("port-unknown-field", MINIMAL + "ports: [{name: http, host: 1}]\n", "ports[0]"),
    ("port-bad-name", MINIMAL + "ports: [HTTP]\n", "ports[0].name"),
    ("port-name-trailing-newline", MINIMAL + 'ports: ["http\\n"]\n', "ports[0].name"),
    ("port-duplicate-name", MINIMAL + "ports: [http, {name: http, port: 80}]\n", "ports[1].name"),
    ("port-out-of-range", MINIMAL + "ports: [{name: http, port: 70000}]\n", "ports[0].port"),
    ("port-not-int", MINIMAL + "ports: [{name: http, port: eighty}]\n", "ports[0].port"),
    ("port-bad-protocol", MINIMAL + "ports: [{name: http, protocol: sctp}]\n", "ports[0].protocol"),
]


@pytest.mark.parametrize("text,field", [(t, f) for _, t, f in BAD], ids=[c for c, _, _ in BAD])
def test_bad_input_names_the_field(text, field):
    err = rejects(text)
    assert err.field == field
    assert str(err).startswith(field + ":"), "the message starts with the field"
    assert err.problem


def test_malformed_yaml_says_where():
    err = rejects("name: [web\ncommand: x\n")
    assert "line" in err.problem and "column" in err.problem


def test_unknown_field_lists_known_ones():
    err = rejects(MINIMAL + "replicas: 3\n")
    assert "instances" in err.problem


def test_validate_catches_raw_messages():
    """Specs that arrive over gRPC skip the YAML parser; validate() still holds the line."""
    good = load(MINIMAL)
    spec.validate(good)

    negative = types_pb2.AppSpec()
    negative.CopyFrom(good)
    negative.resources.request.memory_bytes = -1
    with pytest.raises(spec.SpecError) as info:
        spec.validate(negative)
    assert info.value.field == "resources.request.memory"

    no_driver = types_pb2.AppSpec()
    no_driver.CopyFrom(good)
    no_driver.driver = ""
    with pytest.raises(spec.SpecError) as info:
        spec.validate(no_driver)
    assert info.value.field == "driver"

    no_kind = types_pb2.AppSpec()
    no_kind.CopyFrom(good)
    no_kind.kind = types_pb2.APP_KIND_UNSPECIFIED
    with pytest.raises(spec.SpecError) as info:
        spec.validate(no_kind)
    assert info.value.field == "kind"


def test_unset_limits_default_to_the_request_except_cpu():
    s = spec.load_yaml("name: a\ncommand: x\nresources: {request: {cpu: 250m, memory: 64Mi, net_out: 10Mbit}}\n")
    assert s.resources.limit.memory_bytes == 64 * 2**20
    assert s.resources.limit.net_out_bps == 10**7
    assert s.resources.limit.cpu_millis == 0  # no quota: idle cpu may be borrowed
