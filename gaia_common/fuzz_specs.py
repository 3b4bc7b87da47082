"""A fuzz run of the request validators: every answer is success or INVALID_ARGUMENT.

Hypothesis draws hostile requests: random specs, and valid specs with a few fields made
absurd (sizes, negative and huge numbers, NaN, NUL bytes, '..' and host paths, privileged
flags, deep YAML nesting). Two targets:
  - the validators in-process: spec.validate, spec.from_dict / load_yaml, the pool parsers and
    checks, the host-path allow-list; anything but SpecError is a failure;
  - the leader's handlers over real gRPC (SubmitApp, UpdateApp, CreatePool, UpdatePool): any
    status but OK and INVALID_ARGUMENT is a failure, save the conflicts the run itself set up
    (ALREADY_EXISTS for a name or path it created before, NOT_FOUND for one it never did).

`run_fuzz(examples)` runs both on a private etcd and an in-process master and returns
{"executions", "failures", "seconds", "examples"} (failures: how many drawn requests got a
wrong answer; the first few are in "failing"); `gaia bench tls` prints it. The tests run the
same code (tests/unit/test_fuzz_specs.py, tests/integration/test_hostile_input.py);
GAIA_FUZZ_EXAMPLES sets how many examples each target draws (default 300).
"""
import contextlib
import itertools
import os
import tempfile
import time

import grpc

from gaia_common import spec as spec_mod
from gaia_common.pb import master_pb2, types_pb2

DEFAULT_EXAMPLES = 300
EXAMPLES_ENV = "GAIA_FUZZ_EXAMPLES"
FUZZ_CLUSTER = "fuzz"
HOST_PATH_ALLOW = ["/data"]          # the fuzzed master's allow-list: some host paths pass
CALL_DEADLINE = 10.0
KEEP_FAILING = 5
# Strings a validator must refuse or accept cleanly, whatever field they land in.
NASTY = ["", ".", "..", "../etc", "a/../../b", "/", "//", "/./x", "/etc/passwd", "/data", "/data/x",
         "/data/../etc", "/data//x", "/data/x/", "/dev/fuse", "/dev/null", "/dev/../etc/shadow",
         "GAIA_CLUSTER", "\x00", "a\x00b", "-1", "nan", "1e309", "Ti", "64Ti", "\u202e", "x" * 300, "x" * 70_000]


def examples_from_env(default: int = DEFAULT_EXAMPLES) -> int:
    try:
        return max(1, int(os.environ.get(EXAMPLES_ENV, default)))
    except ValueError:
        return default


class Tally:
    """Executions and the requests answered wrongly (the first few kept, to show)."""

    def __init__(self):
        self.executions = 0
        self.failures = 0
        self.failing = []

    def ok(self):
        self.executions += 1

    def fail(self, what: str):
        self.executions += 1
        self.failures += 1
        if len(self.failing) < KEEP_FAILING:
            self.failing.append(what[:500])

    def result(self, seconds: float, examples: int) -> dict:
        return {"executions": self.executions, "failures": self.failures, "seconds": round(seconds, 2),
                "examples": examples, "failing": list(self.failing)}


# ---- strategies ----

def strategies():
    """name -> hypothesis strategy (imported here: only fuzz runs need hypothesis)."""
    from hypothesis import strategies as st

    nasty = st.sampled_from(NASTY)
    text = st.one_of(st.text(max_size=24), nasty)
    int32 = st.one_of(st.integers(-2**31, 2**31 - 1), st.sampled_from([0, 1, -1, 2**31 - 1, -2**31]))
    int64 = st.one_of(st.integers(-2**63, 2**63 - 1), st.integers(0, 2**40), st.sampled_from([0, -1, 2**63 - 1]))
    number = st.floats(allow_nan=True, allow_infinity=True)
    resources = st.builds(types_pb2.Resources, **{attr: int64 for attr, _, _ in spec_mod.RESOURCE_FIELDS.values()})
    requirements = st.builds(types_pb2.ResourceRequirements, request=resources, limit=resources)
    port = st.builds(types_pb2.Port, name=st.one_of(st.sampled_from(["http", "grpc", "Bad"]), text),
                     container_port=int32, protocol=st.sampled_from(["tcp", "udp", "", "sctp"]))
    volume = st.builds(types_pb2.Volume, host_path=text, container_path=text, read_only=st.booleans())
    check = st.builds(types_pb2.HealthCheck, kind=st.sampled_from(["tcp", "http", "exec", "", "icmp"]),
                      port=text, path=text, command=st.lists(text, max_size=3), interval_seconds=number,
                      timeout_seconds=number, failure_threshold=int32, initial_delay_seconds=number)
    autoscale = st.builds(types_pb2.Autoscale, min=int32, max=int32, metric=st.sampled_from(["cpu", "", "rps"]),
                          target=number, cooldown_seconds=number)
    update = st.builds(types_pb2.UpdatePolicy, max_unavailable=int32, health_gate_seconds=number,
                       gate_timeout_seconds=number, no_rollback=st.booleans())
    constraint = st.builds(types_pb2.Constraint, label=text, op=st.sampled_from(list(spec_mod.CONSTRAINT_OPS) + ["~"]),
                           values=st.lists(text, max_size=3))
    fields = {   # AppSpec field -> values for it, the absurd included
        "name": st.one_of(st.from_regex(spec_mod.NAME, fullmatch=True), text),
        "pool": st.one_of(st.just("default"), text), "priority": int32, "instances": int32,
        "kind": st.sampled_from([0, 1, 2, 3, 99]), "driver": st.sampled_from(["process", "docker", "vm", ""]),
        "command": st.lists(text, max_size=4), "image": text,
        "env": st.dictionaries(st.one_of(st.from_regex(spec_mod.ENV_NAME, fullmatch=True), text), text, max_size=4),
        "resources": requirements, "ports": st.lists(port, max_size=3), "retry_times": int32,
        "migrate_times": int32, "workdir": text, "network": st.sampled_from(["", "namespace", "host", "bridge"]),
        "gang": int32, "constraints": st.lists(constraint, max_size=2), "gpu_model": text,
        "max_per_node": int32, "spread_by": text, "max_per_domain": int32, "health_check": check,
        "autoscale": autoscale, "update": update, "am_attempts": int32,
        "on_partition": st.sampled_from(["", "stop", "keep", "pause"]), "private": st.booleans(),
        "volumes": st.lists(volume, max_size=3), "devices": st.lists(text, max_size=3),
        "privileged": st.booleans(), "gpu_mode": st.sampled_from(["", "hard", "elastic", "soft"]),
    }
    base = st.builds(types_pb2.AppSpec, name=st.from_regex(spec_mod.NAME, fullmatch=True), pool=st.just("default"),
                     instances=st.integers(0, 3), kind=st.just(1), driver=st.just("process"),
                     command=st.just(["sleep", "60"]))
    mutations = st.lists(st.sampled_from(sorted(fields)).flatmap(
        lambda f: st.tuples(st.just(f), fields[f])), max_size=3)
    app_spec = st.one_of(st.builds(_mutated, base, mutations),
                         st.builds(_mutated, st.just(types_pb2.AppSpec()), st.lists(
                             st.sampled_from(sorted(fields)).flatmap(lambda f: st.tuples(st.just(f), fields[f])),
                             max_size=8)))
    pool = st.builds(types_pb2.Pool, path=st.one_of(st.from_regex(spec_mod.POOL, fullmatch=True), text),
                     weight=number, min=resources, max=resources, gpu_models=st.lists(text, max_size=3),
                     max_gpus=int32, tenant=st.one_of(st.just(""), text))
    scalar = st.one_of(st.none(), st.booleans(), st.integers(), number, text)
    document = st.recursive(scalar, lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.one_of(st.sampled_from(sorted(fields)), text),
                                                        children, max_size=4)), max_leaves=20)
    return {"app_spec": app_spec, "pool": pool, "document": document,
            "allow": st.lists(st.one_of(st.sampled_from(["/data", "/dev/fuse", "/"]), text), max_size=3)}


def set_fields(message, changes):
    """Replace each (field, value) of `changes` in `message`, in place, and return it: protobuf
    wants a map updated, a repeated field extended and a message field copied into, not assigned."""
    for field, value in changes:
        message.ClearField(field)
        if isinstance(value, dict):
            getattr(message, field).update(value)
        elif isinstance(value, list):
            getattr(message, field).extend(value)
        elif hasattr(value, "DESCRIPTOR"):
            getattr(message, field).CopyFrom(value)
        else:
            setattr(message, field, value)
    return message


def _mutated(base: types_pb2.AppSpec, changes) -> types_pb2.AppSpec:
    spec = types_pb2.AppSpec()
    spec.CopyFrom(base)
    return set_fields(spec, changes)


def deeply_nested(depth: int) -> str:
    """YAML nested `depth` lists deep under a known field: a parser's recursion must not crash."""
    return "name: deep\ncommand: " + "[" * depth + "]" * depth + "\n"


# ---- the validators, in-process ----

def fuzz_validators(examples: int, tally: Tally = None) -> Tally:
    """Draw `examples` requests per validator; a failure is any exception but SpecError."""
    from hypothesis import HealthCheck, given, settings
    tally = tally or Tally()
    s = strategies()
    options = settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                       suppress_health_check=list(HealthCheck))

    def expect_spec_error(what, call, *args):
        try:
            call(*args)
        except spec_mod.SpecError:
            pass
        except Exception as e:   # noqa: BLE001 - the point: anything else is a failure
            tally.fail(f"{what}: {type(e).__name__}: {e} <- {args!r}"[:500])
            return
        tally.ok()

    @options
    @given(s["app_spec"], s["allow"])
    def app_specs(spec, allow):
        expect_spec_error("validate", spec_mod.validate, spec)
        expect_spec_error("check_host_paths", spec_mod.check_host_paths, spec, [a for a in allow if a.startswith("/")])

    @options
    @given(s["document"])
    def documents(doc):
        expect_spec_error("from_dict", spec_mod.from_dict, doc)
        expect_spec_error("pool_from_dict", spec_mod.pool_from_dict, doc)

    @options
    @given(s["pool"])
    def pools(pool):
        expect_spec_error("validate_pool", spec_mod.validate_pool, pool)

    for run in (app_specs, documents, pools):
        run()
    for depth in (10, 1_000, 20_000):
        expect_spec_error("load_yaml", spec_mod.load_yaml, deeply_nested(depth))
    return tally


# ---- the master's handlers, over gRPC ----

class MasterTarget:
    """Calls a leader's handlers with drawn requests; remembers what it created."""

    def __init__(self, stub, tally: Tally):
        self.stub = stub
        self.tally = tally
        self.apps = set()
        self.pools = {"default"}
        self._seq = itertools.count()

    def call(self, what: str, method, request, expected=()):
        try:
            method(request, timeout=CALL_DEADLINE)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.INVALID_ARGUMENT or e.code() in expected:
                self.tally.ok()
                return False
            self.tally.fail(f"{what}: {e.code().name}: {e.details()} <- {str(request)[:300]!r}")
            return False
        self.tally.ok()
        return True

    def submit(self, spec):
        conflict = (grpc.StatusCode.ALREADY_EXISTS,) if spec.name in self.apps else ()
        key = f"fuzz-{next(self._seq)}"
        if self.call("SubmitApp", self.stub.SubmitApp, master_pb2.SubmitAppRequest(spec=spec, idempotency_key=key),
                     conflict):
            self.apps.add(spec.name)

    def update(self, spec):
        name = spec.name if spec.name in self.apps else "target"
        self.call("UpdateApp", self.stub.UpdateApp, master_pb2.UpdateAppRequest(name=name, spec=spec))

    def pool(self, pool, create: bool):
        if create:
            conflict = (grpc.StatusCode.ALREADY_EXISTS,) if pool.path in self.pools else ()
            if self.call("CreatePool", self.stub.CreatePool, master_pb2.PoolRequest(pool=pool), conflict):
                self.pools.add(pool.path)
        else:
            missing = () if pool.path in self.pools else (grpc.StatusCode.NOT_FOUND,)
            self.call("UpdatePool", self.stub.UpdatePool, master_pb2.PoolRequest(pool=pool), missing)


def fuzz_master(stub, examples: int, tally: Tally = None) -> Tally:
    """Draw `examples` requests per handler against the leader behind `stub` (a MasterStub);
    it needs app "target" (0 instances, pool default) submitted beforehand."""
    from hypothesis import HealthCheck, given, settings, strategies as st
    tally = tally or Tally()
    target = MasterTarget(stub, tally)
    target.apps.add("target")
    s = strategies()
    options = settings(max_examples=examples, deadline=None, database=None,
                       suppress_health_check=list(HealthCheck))

    @options
    @given(s["app_spec"])
    def submits(spec):
        target.submit(spec)

    @options
    @given(s["app_spec"])
    def updates(spec):
        target.update(spec)

    @options
    @given(s["pool"], st.booleans())
    def pools(pool, create):
        target.pool(pool, create)

    for run in (submits, updates, pools):
        run()
    return tally


TARGET_APP = "name: target\ninstances: 0\ncommand: ['sleep', '60']\n"


@contextlib.contextmanager
def fuzzed_master(etcd_endpoint: str = None):
    """A MasterStub to an in-process leader (on `etcd_endpoint`, else a private etcd) with the
    app "target" submitted; everything stopped afterwards."""
    from gaia_common import rpc
    from gaia_common.client import MasterClient
    from gaia_common.config import MasterConfig
    from gaia_common.etcd import EtcdServer
    from gaia_common.pb import master_pb2_grpc
    from gaia_master.main import Master
    with contextlib.ExitStack() as stack:
        if etcd_endpoint is None:
            work = stack.enter_context(tempfile.TemporaryDirectory(prefix="gaia-fuzz-"))
            os.makedirs(os.path.join(work, "etcd"))
            etcd = EtcdServer(data_dir=os.path.join(work, "etcd"), name="fuzz").start()
            stack.callback(etcd.stop)
            etcd_endpoint = etcd.endpoint
        cluster = f"{FUZZ_CLUSTER}{os.getpid()}x{int(time.time() * 1000) % 100000}"
        master = Master(MasterConfig(cluster=cluster, etcd=[etcd_endpoint], lease_ttl=5,
                                     host_path_allow=list(HOST_PATH_ALLOW))).start()
        stack.callback(master.stop)
        client = MasterClient(cluster, etcd_endpoints=[etcd_endpoint], retry_for=30)
        stack.callback(client.close)
        client.call("SubmitApp", master_pb2.SubmitAppRequest(spec=spec_mod.load_yaml(TARGET_APP),
                                                             idempotency_key="target"))
        channel = rpc.channel(master.address)
        stack.callback(channel.close)
        yield master_pb2_grpc.MasterStub(channel)


def run_fuzz(examples: int = None, etcd_endpoint: str = None) -> dict:
    """The whole fuzz run: validators in-process, then the master's handlers over gRPC.
    {"executions", "failures", "seconds", "examples", "failing"}."""
    examples = examples or examples_from_env()
    started = time.monotonic()
    tally = fuzz_validators(examples)
    with fuzzed_master(etcd_endpoint) as stub:
        fuzz_master(stub, examples, tally)
    return tally.result(time.monotonic() - started, examples)
