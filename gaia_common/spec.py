"""Application specs: YAML in, a validated AppSpec out, or a SpecError naming the field.

Validation happens in the CLI (early, friendly) and again in the master (authoritative):
the master never stores a spec that `validate` rejects.
"""
import contextlib
import re
import shlex

import yaml

from gaia_common import quantity
from gaia_common.pb import types_pb2

NAME = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
TENANT = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
POOL = re.compile(r"^[a-z0-9][a-z0-9_-]*(/[a-z0-9][a-z0-9_-]*){0,7}$")
PORT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DRIVERS = ("process", "docker")
KINDS = {"service": types_pb2.APP_KIND_SERVICE, "batch": types_pb2.APP_KIND_BATCH}
MAX_INSTANCES = 100_000
MAX_RETRIES = 10_000
MAX_ENV = 256
MAX_COMMAND_ARGS = 1024
MAX_TEXT = 64 * 1024

# field -> (parser, absurd ceiling); ceilings reject typos such as "64Ti" of memory
RESOURCE_FIELDS = {
    "cpu": ("cpu_millis", quantity.cpu_millis, 4096 * 1000),
    "memory": ("memory_bytes", quantity.byte_count, 64 * 2**40),
    "disk": ("disk_bytes", quantity.byte_count, 2**50),
    "net_in": ("net_in_bps", quantity.bits_per_second, 400 * 10**9),
    "net_out": ("net_out_bps", quantity.bits_per_second, 400 * 10**9),
    "disk_read": ("disk_read_bps", quantity.byte_count, 2**40),
    "disk_write": ("disk_write_bps", quantity.byte_count, 2**40),
    "gpu_share": ("gpu_share", int, 100 * 64),
    "gpu_memory": ("gpu_memory_bytes", quantity.byte_count, 64 * 2**40),
}
UNCAPPED_BY_DEFAULT = {"cpu"}
TOP_FIELDS = {"name", "pool", "priority", "instances", "kind", "driver", "command", "image",
              "env", "resources", "ports", "retry_times", "migrate_times", "workdir", "network",
              "gang", "constraints", "gpu_model", "max_per_node", "spread_by", "max_per_domain",
              "health_check", "autoscale", "update", "am_attempts", "on_partition", "private",
              "gpu_mode", "volumes", "devices", "privileged"}
NETWORKS = ("", "namespace", "host")    # "" = namespace: an instance's own network namespace
# node labels as constraints and spread_by name them: like Kubernetes label keys, optionally prefixed
LABEL = re.compile(r"^([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
# op -> number of values (None: 1 or more); the same operators as Sfair's label filter
CONSTRAINT_OPS = {"=": 1, "!=": 1, "in": None, "not_in": None, "exists": 0, "not_exists": 0}
MAX_CONSTRAINTS = 32
MAX_CONSTRAINT_VALUES = 256
GPU_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,62}$")


class SpecError(ValueError):
    """A spec problem: `field` is a dotted path (resources.request.memory), `problem` says what."""

    def __init__(self, field: str, problem: str):
        # bounded: problems quote what was sent, which may be megabytes
        field, problem = _bounded(field, 200), _bounded(problem, 1000)
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def _bounded(text: str, limit: int) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters)"


def load_yaml(text: str) -> types_pb2.AppSpec:
    try:
        doc = _safe_yaml(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "the document"
        raise SpecError("yaml", f"malformed YAML at {where}: {getattr(e, 'problem', e)}") from None
    return from_dict(doc)


MAX_YAML_BYTES = 1024 * 1024     # a spec file; what reaches the master is bounded again there


def _safe_yaml(text: str):
    """yaml.safe_load, with a document too big or nested too deep for the parser refused."""
    if len(text) > MAX_YAML_BYTES:
        raise SpecError("yaml", f"{len(text)} characters; a spec file holds at most {MAX_YAML_BYTES}")
    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise SpecError("yaml", "nested too deeply") from None


def from_dict(doc) -> types_pb2.AppSpec:
    if not isinstance(doc, dict):
        raise SpecError("spec", "must be a mapping of fields (name, command, ...)")
    unknown = sorted(set(map(str, doc)) - TOP_FIELDS)
    if unknown:
        raise SpecError(unknown[0], f"unknown field (known: {', '.join(sorted(TOP_FIELDS))})")
    spec = types_pb2.AppSpec(
        name=_text(doc, "name", required=True),
        pool=_text(doc, "pool") or "default",
        priority=_int(doc, "priority", 0, -1000, 1000),
        instances=_int(doc, "instances", 1, 0, MAX_INSTANCES),
        kind=_kind(doc.get("kind", "service")),
        driver=_text(doc, "driver") or "process",
        image=_text(doc, "image"),
        workdir=_text(doc, "workdir"),
        network=_text(doc, "network"),
        retry_times=_int(doc, "retry_times", 3, 0, MAX_RETRIES),
        migrate_times=_int(doc, "migrate_times", 3, 0, MAX_RETRIES),
        gang=_int(doc, "gang", 0, 0, MAX_INSTANCES),
        gpu_model=_text(doc, "gpu_model"),
        max_per_node=_int(doc, "max_per_node", 0, 0, MAX_INSTANCES),
        spread_by=_text(doc, "spread_by"),
        max_per_domain=_int(doc, "max_per_domain", 0, 0, MAX_INSTANCES),
        am_attempts=_int(doc, "am_attempts", 0, 0, MAX_AM_ATTEMPTS),
        on_partition=_text(doc, "on_partition"),
        gpu_mode=_text(doc, "gpu_mode"),
    )
    spec.constraints.extend(_constraints(doc.get("constraints")))
    spec.command.extend(_command(doc.get("command")))
    spec.env.update(_env(doc.get("env")))
    spec.resources.CopyFrom(_requirements(doc.get("resources")))
    spec.ports.extend(_ports(doc.get("ports")))
    _am_sections(spec, doc)
    private = doc.get("private", False)
    if not isinstance(private, bool):
        raise SpecError("private", f"must be true or false, not {private!r}")
    spec.private = private    # hidden from other tenants' resolve and from DNS
    _host_access(spec, doc)
    validate(spec)
    return spec


def validate(spec: types_pb2.AppSpec) -> types_pb2.AppSpec:
    """Checks that hold however the spec arrived (YAML or a raw gRPC call)."""
    _validate_sizes(spec)
    if not NAME.fullmatch(spec.name):
        raise SpecError("name", f"{spec.name!r} must be 1-63 lowercase letters, digits or '-', starting with a letter")
    if not POOL.fullmatch(spec.pool):
        raise SpecError("pool", f"{spec.pool!r} must be a path like ads/ranking/online")
    if spec.driver not in DRIVERS:
        raise SpecError("driver", f"{spec.driver!r} is not one of {', '.join(DRIVERS)}")
    if spec.kind not in KINDS.values():
        raise SpecError("kind", "must be service or batch")
    if not 0 <= spec.instances <= MAX_INSTANCES:
        raise SpecError("instances", f"must be between 0 and {MAX_INSTANCES}")
    if spec.driver == "process" and not spec.command:
        raise SpecError("command", "required for the process driver")
    if spec.driver == "docker" and not spec.image:
        raise SpecError("image", "required for the docker driver")
    if len(spec.command) > MAX_COMMAND_ARGS or any(len(a) > MAX_TEXT for a in spec.command):
        raise SpecError("command", "too long")
    if spec.workdir and (".." in spec.workdir.split("/")):
        raise SpecError("workdir", "must not contain '..'")
    if spec.network not in NETWORKS:
        raise SpecError("network", f"{spec.network!r} must be namespace (the default) or host")
    for i in (spec.retry_times, spec.migrate_times):
        if not 0 <= i <= MAX_RETRIES:
            raise SpecError("retry_times" if i == spec.retry_times else "migrate_times",
                            f"must be between 0 and {MAX_RETRIES}")
    validate_requirements(spec.resources)
    validate_gpu_mode(spec.gpu_mode, spec.resources)
    _validate_ports(spec.ports)
    _validate_placement(spec)
    _validate_am(spec)
    validate_host_access(spec)
    return spec


def _validate_placement(spec: types_pb2.AppSpec):
    if not 0 <= spec.gang <= spec.instances:
        raise SpecError("gang", f"{spec.gang} must be between 0 (off) and instances ({spec.instances})")
    if not 0 <= spec.max_per_node <= MAX_INSTANCES:
        raise SpecError("max_per_node", f"must be between 0 (any) and {MAX_INSTANCES}")
    if spec.gpu_model and not GPU_MODEL.fullmatch(spec.gpu_model):
        raise SpecError("gpu_model", f"{spec.gpu_model!r} must be 1-63 letters, digits, '.', '_', '-' or spaces")
    if spec.spread_by and not LABEL.fullmatch(spec.spread_by):
        raise SpecError("spread_by", f"{spec.spread_by!r} is not a node label name")
    if not 0 <= spec.max_per_domain <= MAX_INSTANCES:
        raise SpecError("max_per_domain", f"must be between 0 (an even spread) and {MAX_INSTANCES}")
    if spec.max_per_domain and not spec.spread_by:
        raise SpecError("max_per_domain", "needs spread_by (the label whose values are the domains)")
    if len(spec.constraints) > MAX_CONSTRAINTS:
        raise SpecError("constraints", f"at most {MAX_CONSTRAINTS}")
    for i, c in enumerate(spec.constraints):
        where = f"constraints[{i}]"
        if not LABEL.fullmatch(c.label):
            raise SpecError(f"{where}.label", f"{c.label!r} is not a node label name")
        if c.op not in CONSTRAINT_OPS:
            raise SpecError(f"{where}.op", f"{c.op!r} is not one of {', '.join(CONSTRAINT_OPS)}")
        wanted = CONSTRAINT_OPS[c.op]
        if wanted == 0 and c.values:
            raise SpecError(f"{where}.values", f"{c.op} takes no value")
        if wanted == 1 and len(c.values) != 1:
            raise SpecError(f"{where}.value", f"{c.op} takes exactly one value")
        if wanted is None and not 1 <= len(c.values) <= MAX_CONSTRAINT_VALUES:
            raise SpecError(f"{where}.values", f"{c.op} takes 1 to {MAX_CONSTRAINT_VALUES} values")
        if any(len(v) > 63 for v in c.values):
            raise SpecError(f"{where}.values", "a label value is at most 63 characters")


def _constraints(value) -> list:
    """[{label, op, value}] or [{label, op: in, values: [...]}] or [{label, op: exists}]."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpecError("constraints", "must be a list of {label, op, value(s)}")
    out = []
    for i, c in enumerate(value):
        where = f"constraints[{i}]"
        if not isinstance(c, dict):
            raise SpecError(where, "must be {label, op, value} or {label, op: in, values}")
        unknown = sorted(set(map(str, c)) - {"label", "op", "value", "values"})
        if unknown:
            raise SpecError(f"{where}.{unknown[0]}", "unknown field (known: label, op, value, values)")
        if "value" in c and "values" in c:
            raise SpecError(where, "give value or values, not both")
        label, op = c.get("label"), c.get("op", "=")
        if not isinstance(label, str):
            raise SpecError(f"{where}.label", "required: a node label name")
        if not isinstance(op, str):
            raise SpecError(f"{where}.op", f"{op!r} is not one of {', '.join(CONSTRAINT_OPS)}")
        raw = c.get("values", [c["value"]] if "value" in c else [])
        if not isinstance(raw, list) or any(isinstance(v, (dict, list)) or v is None for v in raw):
            raise SpecError(f"{where}.values", "must be a list of strings")
        out.append(types_pb2.Constraint(label=label, op=op,
                                        values=[str(v).lower() if isinstance(v, bool) else str(v) for v in raw]))
    return out


def _text(doc, field, required=False) -> str:
    value = doc.get(field)
    if value is None:
        if required:
            raise SpecError(field, "required")
        return ""
    if not isinstance(value, str):
        raise SpecError(field, f"must be a string, not {type(value).__name__}")
    if len(value) > MAX_TEXT:
        raise SpecError(field, "too long")
    return value


def _int(doc, field, default, low, high) -> int:
    value = doc.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(field, f"must be an integer, not {value!r}")
    if not low <= value <= high:
        raise SpecError(field, f"{value} is out of range [{low}, {high}]")
    return value


def _kind(value):
    if value not in KINDS:
        raise SpecError("kind", f"{value!r} is not one of {', '.join(KINDS)}")
    return KINDS[value]


def _command(value) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as e:
            raise SpecError("command", str(e)) from None
    if not isinstance(value, list) or not all(isinstance(a, (str, int, float)) for a in value):
        raise SpecError("command", "must be a string or a list of strings")
    return [str(a) for a in value]


def _env(value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError("env", "must be a mapping of NAME: value")
    if len(value) > MAX_ENV:
        raise SpecError("env", f"at most {MAX_ENV} variables")
    out = {}
    for k, v in value.items():
        if not isinstance(k, str) or not ENV_NAME.fullmatch(k):
            raise SpecError(f"env.{k}", "not a valid variable name")
        if k.startswith("GAIA_"):
            raise SpecError(f"env.{k}", "GAIA_* variables are set by Gaia")
        if isinstance(v, (dict, list)) or v is None:
            raise SpecError(f"env.{k}", "must be a string, number or boolean")
        out[k] = str(v)
    return out


def _resources(value, where) -> types_pb2.Resources:
    if value is None:
        return types_pb2.Resources()
    if not isinstance(value, dict):
        raise SpecError(where, "must be a mapping (cpu, memory, disk, ...)")
    out = types_pb2.Resources()
    for key, raw in value.items():
        if key not in RESOURCE_FIELDS:
            raise SpecError(f"{where}.{key}", f"unknown resource (known: {', '.join(RESOURCE_FIELDS)})")
        attr, parse, _ = RESOURCE_FIELDS[key]
        if isinstance(raw, bool) or raw is None:
            raise SpecError(f"{where}.{key}", f"{raw!r} is not an amount")
        if isinstance(raw, (int, float)) and raw < 0 or str(raw).strip().startswith("-"):
            raise SpecError(f"{where}.{key}", f"{raw!r} must not be negative")
        try:
            setattr(out, attr, parse(raw))
        except (ValueError, TypeError) as e:
            raise SpecError(f"{where}.{key}", str(e)) from None
    return out


def _requirements(value) -> types_pb2.ResourceRequirements:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise SpecError("resources", "must have request and/or limit")
    unknown = set(value) - {"request", "limit"}
    if unknown:
        raise SpecError(f"resources.{sorted(unknown)[0]}", "unknown field (known: request, limit)")
    request = _resources(value.get("request"), "resources.request")
    limit = _resources(value.get("limit"), "resources.limit")
    for key, (attr, _, _) in RESOURCE_FIELDS.items():
        # An unset limit means the limit is the request; except for cpu, where no limit means
        # no quota: the container may use idle cpu beyond its request (its weight still holds).
        if not getattr(limit, attr) and key not in UNCAPPED_BY_DEFAULT:
            setattr(limit, attr, getattr(request, attr))
    return types_pb2.ResourceRequirements(request=request, limit=limit)


def validate_requirements(req: types_pb2.ResourceRequirements):
    for key, (attr, _, ceiling) in RESOURCE_FIELDS.items():
        r, l = getattr(req.request, attr), getattr(req.limit, attr)
        for where, v in (("request", r), ("limit", l)):
            if v < 0:
                raise SpecError(f"resources.{where}.{key}", "must not be negative")
            if v > ceiling:
                raise SpecError(f"resources.{where}.{key}", f"{v} is absurd (over {ceiling})")
        if l and l < r:
            raise SpecError(f"resources.limit.{key}", f"limit {l} is below the request {r}")


GPU_MODES = ("", "hard", "elastic")     # "" = hard


def validate_gpu_mode(mode: str, req: types_pb2.ResourceRequirements, prefix: str = ""):
    """gpu_mode applies to a fraction of one GPU (whole GPUs are exclusive): hard keeps the
    container at resources.request.gpu_share; elastic lets it use idle time up to
    resources.limit.gpu_share, a ceiling between the share and one whole GPU."""
    if mode not in GPU_MODES:
        raise SpecError(f"{prefix}gpu_mode", f"{mode!r} must be hard or elastic")
    share, ceiling = req.request.gpu_share, req.limit.gpu_share
    if mode and not share:
        raise SpecError(f"{prefix}gpu_mode", "needs resources.request.gpu_share")
    if mode == "elastic":
        if share >= 100:
            raise SpecError(f"{prefix}gpu_mode", f"elastic shares one GPU: gpu_share {share} asks for whole GPUs")
        if ceiling and not share <= ceiling <= 100:
            raise SpecError(f"{prefix}resources.limit.gpu_share",
                            f"the elastic ceiling {ceiling} must be between the share ({share}) and 100")


def _ports(value) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpecError("ports", "must be a list of {name, port, protocol}")
    out = []
    for i, p in enumerate(value):
        if isinstance(p, str):
            p = {"name": p}
        if not isinstance(p, dict) or set(p) - {"name", "port", "protocol"}:
            raise SpecError(f"ports[{i}]", "must be a name or {name, port, protocol}")
        port = p.get("port", 0)
        if isinstance(port, bool) or not isinstance(port, int):
            raise SpecError(f"ports[{i}].port", "must be an integer")
        out.append(types_pb2.Port(name=str(p.get("name", "")), container_port=port,
                                  protocol=str(p.get("protocol", "tcp"))))
    return out


def _validate_ports(ports):
    seen = set()
    for i, p in enumerate(ports):
        if not PORT_NAME.fullmatch(p.name):
            raise SpecError(f"ports[{i}].name", f"{p.name!r} must be lowercase letters, digits or '-'")
        if p.name in seen:
            raise SpecError(f"ports[{i}].name", f"duplicate port name {p.name!r}")
        seen.add(p.name)
        if not 0 <= p.container_port <= 65535:
            raise SpecError(f"ports[{i}].port", f"{p.container_port} is not a port number")
        if p.protocol not in ("tcp", "udp"):
            raise SpecError(f"ports[{i}].protocol", "must be tcp or udp")


# ---- ApplicationMaster behaviour: health_check, autoscale, update, am_attempts, on_partition ----

MAX_AM_ATTEMPTS = 100
ON_PARTITION = ("", "stop", "keep")     # "": the default (stop for gang and batch apps, else keep)
HEALTH_KINDS = ("tcp", "http", "exec")
HEALTH_FIELDS = {"kind", "port", "path", "command", "interval", "timeout", "failure_threshold", "initial_delay"}
AUTOSCALE_FIELDS = {"min", "max", "metric", "target", "cooldown"}
AUTOSCALE_METRICS = ("cpu",)
UPDATE_FIELDS = {"max_unavailable", "health_gate", "gate_timeout", "rollback"}
MAX_SECONDS = 86400.0
DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?)\s*(ms|s|m|h)?\s*$")
DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


@contextlib.contextmanager
def _within(prefix: str):
    """Errors of a sub-mapping's own parsers name the field from the top (update.health_gate)."""
    try:
        yield
    except SpecError as e:
        raise SpecError(f"{prefix}.{e.field}", e.problem) from None


def _section(doc, field, known) -> dict:
    """The mapping `doc[field]` (None when absent), with no field outside `known`."""
    value = doc.get(field)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SpecError(field, f"must be a mapping ({', '.join(sorted(known))})")
    unknown = sorted(set(map(str, value)) - known)
    if unknown:
        raise SpecError(f"{field}.{unknown[0]}", f"unknown field (known: {', '.join(sorted(known))})")
    return value


def _seconds(doc, field, default: float) -> float:
    """A duration: a number of seconds, or text such as 500ms, 5s, 2m, 1h."""
    value = doc.get(field, default)
    if isinstance(value, bool) or value is None:
        raise SpecError(field, f"{value!r} is not a duration")
    if isinstance(value, (int, float)):
        return float(value)
    match = DURATION.fullmatch(str(value))
    if not match:
        raise SpecError(field, f"{value!r} is not a duration (a number of seconds, or e.g. 500ms, 5s, 2m)")
    return float(match.group(1)) * DURATION_UNITS[match.group(2)]


def _number(doc, field, default: float) -> float:
    value = doc.get(field, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(field, f"must be a number, not {value!r}")
    return float(value)


def _am_sections(spec: types_pb2.AppSpec, doc: dict):
    """health_check, autoscale and update from YAML; defaults written out so status shows them."""
    check = _section(doc, "health_check", HEALTH_FIELDS)
    if check is not None:
        with _within("health_check"):
            spec.health_check.CopyFrom(_health_check(check))
    scale = _section(doc, "autoscale", AUTOSCALE_FIELDS)
    if scale is not None:
        with _within("autoscale"):
            spec.autoscale.CopyFrom(types_pb2.Autoscale(
                min=_int(scale, "min", spec.instances, 0, MAX_INSTANCES),
                max=_int(scale, "max", spec.instances, 0, MAX_INSTANCES),
                metric=_text(scale, "metric") or "cpu", target=_number(scale, "target", 60),
                cooldown_seconds=_seconds(scale, "cooldown", 30)))
    update = _section(doc, "update", UPDATE_FIELDS)
    if update is not None:
        with _within("update"):
            rollback = update.get("rollback", True)
            if not isinstance(rollback, bool):
                raise SpecError("rollback", f"must be true or false, not {rollback!r}")
            spec.update.CopyFrom(types_pb2.UpdatePolicy(
                max_unavailable=_int(update, "max_unavailable", 1, 1, MAX_INSTANCES),
                health_gate_seconds=_seconds(update, "health_gate", 3),
                gate_timeout_seconds=_seconds(update, "gate_timeout", 60), no_rollback=not rollback))


def _health_check(doc: dict) -> types_pb2.HealthCheck:
    kind = _text(doc, "kind", required=True)
    out = types_pb2.HealthCheck(
        kind=kind, port=_text(doc, "port"), path=_text(doc, "path") or ("/" if kind == "http" else ""),
        interval_seconds=_seconds(doc, "interval", 2), timeout_seconds=_seconds(doc, "timeout", 1),
        failure_threshold=_int(doc, "failure_threshold", 3, 1, 1000),
        initial_delay_seconds=_seconds(doc, "initial_delay", 0))
    try:
        out.command.extend(_command(doc.get("command")))
    except SpecError as e:
        raise SpecError("command", e.problem) from None
    return out


def _validate_am(spec: types_pb2.AppSpec):
    if not 0 <= spec.am_attempts <= MAX_AM_ATTEMPTS:
        raise SpecError("am_attempts", f"must be between 0 (the master's default) and {MAX_AM_ATTEMPTS}")
    if spec.on_partition not in ON_PARTITION:
        raise SpecError("on_partition", f"{spec.on_partition!r} must be stop or keep")
    if spec.HasField("health_check"):
        with _within("health_check"):
            _validate_health_check(spec.health_check, {p.name for p in spec.ports})
    if spec.HasField("autoscale"):
        with _within("autoscale"):
            _validate_autoscale(spec)
    if spec.HasField("update"):
        with _within("update"):
            _validate_update(spec.update)


def _check_seconds(field: str, value: float, low: float, high: float = MAX_SECONDS, low_open=False):
    """`value` within [low, high] ((low, high] when low_open); NaN is never in range."""
    if not (low < value <= high if low_open else low <= value <= high):
        raise SpecError(field, f"{value:g} must be {'above' if low_open else 'at least'} {low:g} "
                               f"and at most {high:g} seconds")


def _validate_health_check(check: types_pb2.HealthCheck, port_names: set):
    if check.kind not in HEALTH_KINDS:
        raise SpecError("kind", f"{check.kind!r} is not one of {', '.join(HEALTH_KINDS)}")
    if check.kind in ("tcp", "http"):
        if check.port not in port_names:
            known = ", ".join(sorted(port_names)) or "none declared"
            raise SpecError("port", f"{check.port!r} must name one of the app's ports ({known})")
        if check.command:
            raise SpecError("command", f"only for exec checks, not {check.kind}")
    else:
        if not check.command:
            raise SpecError("command", "required for exec checks")
        if check.port:
            raise SpecError("port", "only for tcp and http checks")
        if len(check.command) > MAX_COMMAND_ARGS or any(len(a) > MAX_TEXT for a in check.command):
            raise SpecError("command", "too long")
    if check.path and (check.kind != "http" or not check.path.startswith("/")):
        raise SpecError("path", "only for http checks, and starts with '/'")
    _check_seconds("interval", check.interval_seconds, 0, 3600, low_open=check.interval_seconds != 0)
    _check_seconds("timeout", check.timeout_seconds, 0, 3600, low_open=check.timeout_seconds != 0)
    _check_seconds("initial_delay", check.initial_delay_seconds, 0)
    if not 0 <= check.failure_threshold <= 1000:   # 0: the default, 3
        raise SpecError("failure_threshold", f"{check.failure_threshold} must be between 1 and 1000")


def _validate_autoscale(spec: types_pb2.AppSpec):
    scale = spec.autoscale
    if spec.kind != types_pb2.APP_KIND_SERVICE:
        raise SpecError("kind", "autoscaling is for services only")
    if not 1 <= scale.min <= MAX_INSTANCES:
        raise SpecError("min", f"{scale.min} must be between 1 and {MAX_INSTANCES}")
    if not scale.min <= scale.max <= MAX_INSTANCES:
        raise SpecError("max", f"{scale.max} must be between min ({scale.min}) and {MAX_INSTANCES}")
    if scale.min < spec.gang:
        raise SpecError("min", f"{scale.min} is below the app's gang of {spec.gang}")
    if not scale.min <= spec.instances <= scale.max:
        raise SpecError("min" if spec.instances < scale.min else "max",
                        f"instances ({spec.instances}) must lie within [min, max] = [{scale.min}, {scale.max}]")
    if (scale.metric or "cpu") not in AUTOSCALE_METRICS:
        raise SpecError("metric", f"{scale.metric!r} is not one of {', '.join(AUTOSCALE_METRICS)}")
    if not 0 < scale.target <= 1000:
        raise SpecError("target", f"{scale.target:g} must be above 0 and at most 1000 (percent of the request)")
    _check_seconds("cooldown", scale.cooldown_seconds, 0)


def _validate_update(update: types_pb2.UpdatePolicy):
    if not 0 <= update.max_unavailable <= MAX_INSTANCES:   # 0: the default, 1
        raise SpecError("max_unavailable", f"{update.max_unavailable} must be between 1 and {MAX_INSTANCES}")
    _check_seconds("health_gate", update.health_gate_seconds, 0, 3600)
    _check_seconds("gate_timeout", update.gate_timeout_seconds, 0, low_open=update.gate_timeout_seconds != 0)
    if update.gate_timeout_seconds and update.gate_timeout_seconds <= update.health_gate_seconds:
        raise SpecError("gate_timeout", f"{update.gate_timeout_seconds:g} s must be longer than "
                                        f"health_gate ({update.health_gate_seconds:g} s)")


# ---- hostile input: sizes, and what reaches the node's host (volumes, devices, privileged) ----

# A spec is stored with its other versions in one etcd value (the app record): bounded well
# below etcd's 1.5 MiB request limit even while a rollout keeps three versions of it.
MAX_SPEC_BYTES = 256 * 1024
MAX_POOL_PATH = 255
MAX_IMAGE = 1024
MAX_PORTS = 64
MAX_PATH = 4096
MAX_VOLUMES = 32
MAX_DEVICES = 32
PRIORITIES = (-1000, 1000)
VOLUME_FIELDS = {"host_path", "container_path", "read_only"}


def _validate_sizes(spec: types_pb2.AppSpec):
    """Bounds on what a raw gRPC call may send (the YAML parser has its own, friendlier ones)."""
    size = spec.ByteSize()
    if size > MAX_SPEC_BYTES:
        raise SpecError("spec", f"{size} bytes; at most {MAX_SPEC_BYTES} (keep data out of the spec)")
    if not PRIORITIES[0] <= spec.priority <= PRIORITIES[1]:
        raise SpecError("priority", f"{spec.priority} is out of range [{PRIORITIES[0]}, {PRIORITIES[1]}]")
    if len(spec.pool) > MAX_POOL_PATH:
        raise SpecError("pool", f"at most {MAX_POOL_PATH} characters")
    if len(spec.image) > MAX_IMAGE or not spec.image.isprintable():
        raise SpecError("image", f"at most {MAX_IMAGE} printable characters")
    if any("\0" in a for a in spec.command):
        raise SpecError("command", "must not contain NUL characters")
    if len(spec.workdir) > MAX_PATH or "\0" in spec.workdir:
        raise SpecError("workdir", f"at most {MAX_PATH} characters, no NUL")
    if len(spec.env) > MAX_ENV:
        raise SpecError("env", f"at most {MAX_ENV} variables")
    for name, value in sorted(spec.env.items()):
        if not ENV_NAME.fullmatch(name) or len(name) > 255:
            raise SpecError(f"env.{name[:64]!r}", "not a valid variable name")
        if name.startswith("GAIA_"):
            raise SpecError(f"env.{name}", "GAIA_* variables are set by Gaia")
        if len(value) > MAX_TEXT or "\0" in value:
            raise SpecError(f"env.{name}", f"at most {MAX_TEXT} characters, no NUL")
    if len(spec.ports) > MAX_PORTS:
        raise SpecError("ports", f"at most {MAX_PORTS}")


def _host_access(spec: types_pb2.AppSpec, doc: dict):
    """volumes, devices and privileged from YAML."""
    volumes = doc.get("volumes")
    if volumes is not None:
        if not isinstance(volumes, list):
            raise SpecError("volumes", "must be a list of {host_path, container_path, read_only} "
                                       "or 'host_path:container_path[:ro]'")
        spec.volumes.extend(_volume(v, f"volumes[{i}]") for i, v in enumerate(volumes))
    devices = doc.get("devices")
    if devices is not None:
        if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
            raise SpecError("devices", "must be a list of device paths (e.g. /dev/fuse)")
        spec.devices.extend(devices)
    privileged = doc.get("privileged", False)
    if not isinstance(privileged, bool):
        raise SpecError("privileged", f"must be true or false, not {privileged!r}")
    spec.privileged = privileged


def _volume(value, where: str) -> types_pb2.Volume:
    if isinstance(value, str):
        parts = value.split(":")
        if len(parts) not in (2, 3) or parts[2:] not in ([], ["ro"], ["rw"]):
            raise SpecError(where, f"{value!r} must be host_path:container_path, optionally :ro or :rw")
        return types_pb2.Volume(host_path=parts[0], container_path=parts[1], read_only=parts[2:] == ["ro"])
    if not isinstance(value, dict):
        raise SpecError(where, "must be {host_path, container_path, read_only} or 'host_path:container_path[:ro]'")
    unknown = sorted(set(map(str, value)) - VOLUME_FIELDS)
    if unknown:
        raise SpecError(f"{where}.{unknown[0]}", f"unknown field (known: {', '.join(sorted(VOLUME_FIELDS))})")
    read_only = value.get("read_only", False)
    if not isinstance(read_only, bool):
        raise SpecError(f"{where}.read_only", f"must be true or false, not {read_only!r}")
    with _within(where):
        return types_pb2.Volume(host_path=_text(value, "host_path", required=True),
                                container_path=_text(value, "container_path", required=True), read_only=read_only)


def validate_host_access(spec, prefix: str = ""):
    """The shape of volumes and devices (an AppSpec's or a ContainerSpec's): bounded lists of
    absolute, normalised paths. Whether a host path may be used is the cluster's allow-list
    (check_host_paths, on the master and again on the node); who may ask at all, the
    `privileged` capability on the pool (gaia_master)."""
    if len(spec.volumes) > MAX_VOLUMES:
        raise SpecError(f"{prefix}volumes", f"at most {MAX_VOLUMES}")
    targets = set()
    for i, volume in enumerate(spec.volumes):
        where = f"{prefix}volumes[{i}]"
        _absolute_path(f"{where}.host_path", volume.host_path)
        _absolute_path(f"{where}.container_path", volume.container_path)
        if volume.container_path == "/":
            raise SpecError(f"{where}.container_path", "must not be / (the container's own root)")
        if volume.container_path in targets:
            raise SpecError(f"{where}.container_path", f"{volume.container_path!r} is mounted twice")
        targets.add(volume.container_path)
    if len(spec.devices) > MAX_DEVICES:
        raise SpecError(f"{prefix}devices", f"at most {MAX_DEVICES}")
    for i, device in enumerate(spec.devices):
        _absolute_path(f"{prefix}devices[{i}]", device)
        if not device.startswith("/dev/"):
            raise SpecError(f"{prefix}devices[{i}]", f"{device!r} is not a device path under /dev/")
    if len(set(spec.devices)) != len(spec.devices):
        raise SpecError(f"{prefix}devices", "lists a device twice")


def _absolute_path(field: str, path: str):
    if not path:
        raise SpecError(field, "required: an absolute path")
    if len(path) > MAX_PATH or not path.isprintable():
        raise SpecError(field, f"at most {MAX_PATH} printable characters")
    if not path.startswith("/"):
        raise SpecError(field, f"{path!r} must be an absolute path")
    if ".." in path.split("/"):
        raise SpecError(field, f"{path!r} must not contain '..'")
    if path != normal_path(path):
        raise SpecError(field, f"{path!r} must be written plainly, as {normal_path(path)!r} (no '//', '/./' or "
                               "trailing '/')")


def normal_path(path: str) -> str:
    """`path` with empty and '.' segments dropped (not '..': those are refused, never resolved)."""
    return "/" + "/".join(p for p in path.split("/") if p not in ("", "."))


def host_paths(spec) -> list:
    """(field, path) of every host path a spec asks for: volumes' host paths, devices, and a
    process-driver workdir that is absolute (the process driver runs on the node's own
    filesystem, so that workdir is made and entered on the host)."""
    out = [(f"volumes[{i}].host_path", v.host_path) for i, v in enumerate(spec.volumes)]
    out.extend((f"devices[{i}]", d) for i, d in enumerate(spec.devices))
    if spec.driver == "process" and spec.workdir.startswith("/"):
        out.append(("workdir", normal_path(spec.workdir)))
    return out


def host_path_allowed(path: str, allow) -> bool:
    """`path` is one of the prefixes in `allow` or lies below one (whole segments: /data
    allows /data/x, not /database)."""
    return any(path == prefix or path.startswith(prefix.rstrip("/") + "/") for prefix in allow)


def check_host_paths(spec, allow, prefix: str = "", whose: str = "this cluster's") -> None:
    """Every host path of `spec` lies under `allow` (host_path_allow: a list of absolute
    prefixes; empty allows none)."""
    for field, path in host_paths(spec):
        if not host_path_allowed(path, allow):
            allowed = ", ".join(allow) if allow else "none: host_path_allow is empty"
            raise SpecError(f"{prefix}{field}", f"{path!r} lies outside {whose} allowed host paths ({allowed})")


def check_allow_list(value) -> list:
    """A host_path_allow setting: a list of absolute, plainly written paths (ValueError if not)."""
    if not isinstance(value, list):
        raise ValueError("must be a list of absolute paths (prefixes host paths may lie under)")
    for i, path in enumerate(value):
        if not isinstance(path, str):
            raise ValueError(f"[{i}]: must be a path, not {path!r}")
        try:
            _absolute_path(f"[{i}]", path)
        except SpecError as e:
            raise ValueError(str(e)) from None
    return value


# ---- resource pool specs: `gaia pool create FILE` ----

POOL_FIELDS = {"path", "weight", "min", "max", "gpu_models", "max_gpus", "tenant"}
MAX_POOL_WEIGHT = 1_000_000
MIN_POOL_WEIGHT = 0.001
MAX_POOL_QUANTITY = 2**53
MAX_GPU_MODELS = 64


def load_pool_yaml(text: str) -> types_pb2.Pool:
    try:
        doc = _safe_yaml(text)
    except yaml.YAMLError as e:
        raise SpecError("yaml", f"malformed YAML: {getattr(e, 'problem', e)}") from None
    return pool_from_dict(doc)


def pool_from_dict(doc) -> types_pb2.Pool:
    """A pool from its YAML form: path, weight, min, max (resource maps), gpu_models, max_gpus."""
    if not isinstance(doc, dict):
        raise SpecError("pool", "must be a mapping of fields (path, weight, min, max, ...)")
    unknown = sorted(set(map(str, doc)) - POOL_FIELDS)
    if unknown:
        raise SpecError(unknown[0], f"unknown field (known: {', '.join(sorted(POOL_FIELDS))})")
    weight = doc.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise SpecError("weight", f"must be a number, not {weight!r}")
    models = doc.get("gpu_models") or []
    if not isinstance(models, list) or any(isinstance(m, (dict, list, bool)) or m is None for m in models):
        raise SpecError("gpu_models", "must be a list of GPU model names")
    pool = types_pb2.Pool(path=_text(doc, "path", required=True), weight=float(weight),
                          min=_resources(doc.get("min"), "min"), max=_resources(doc.get("max"), "max"),
                          gpu_models=[str(m) for m in models],
                          max_gpus=_int(doc, "max_gpus", 0, 0, 1_000_000), tenant=_text(doc, "tenant"))
    return validate_pool(pool)


def validate_pool(pool: types_pb2.Pool) -> types_pb2.Pool:
    """Checks of one pool on its own; its place in the tree is checked by the master."""
    if not POOL.fullmatch(pool.path):
        raise SpecError("path", f"{pool.path!r} must be a path like ads/ranking/online "
                                "(up to 8 segments of lowercase letters, digits, '_', '-')")
    # a floor too: the fair-share arithmetic divides by weights (a denormal one makes inf, then NaN)
    if not MIN_POOL_WEIGHT <= pool.weight <= MAX_POOL_WEIGHT:  # also false for NaN
        raise SpecError("weight", f"{pool.weight} must be between {MIN_POOL_WEIGHT} and {MAX_POOL_WEIGHT}")
    for key, (attr, _, _) in RESOURCE_FIELDS.items():
        low, high = getattr(pool.min, attr), getattr(pool.max, attr)
        if low < 0 or high < 0:
            raise SpecError(f"{'min' if low < 0 else 'max'}.{key}", "must not be negative")
        if max(low, high) > MAX_POOL_QUANTITY:   # exact as a float, as the scheduler computes
            raise SpecError(f"{'min' if low > MAX_POOL_QUANTITY else 'max'}.{key}",
                            f"{max(low, high)} is absurd (over {MAX_POOL_QUANTITY})")
        if high and low > high:
            raise SpecError(f"min.{key}", f"{low} is above max.{key} {high}")
    if len(pool.gpu_models) > MAX_GPU_MODELS:
        raise SpecError("gpu_models", f"at most {MAX_GPU_MODELS}")
    for i, model in enumerate(pool.gpu_models):
        if not GPU_MODEL.fullmatch(model):
            raise SpecError(f"gpu_models[{i}]", f"{model!r} must be 1-63 letters, digits, '.', '_', '-' or spaces")
    if len(set(pool.gpu_models)) != len(pool.gpu_models):
        raise SpecError("gpu_models", "lists a model twice")
    if pool.max_gpus < 0:
        raise SpecError("max_gpus", "must not be negative (0: no ceiling)")
    if pool.tenant and not TENANT.fullmatch(pool.tenant):
        raise SpecError("tenant", f"{pool.tenant!r} is not a tenant name (lowercase letters, digits, '-')")
    return pool
