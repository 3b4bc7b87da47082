"""Every setting of master.yaml / node.yaml checked before a daemon starts (and by
`gaia master|node run --check-config`): types, ranges, addresses, etcd URLs, quantities.

A bad setting is a ConfigError that names it ("lease_ttl: must be a whole number >= 1
(got 0)"), so an operator sees what to fix before systemd restarts the daemon in a loop.
Node rules that need the node's own parsers (drivers, GPUs, networks) import them only
when a node's config is checked: the CLI must not load the daemons' packages otherwise.
"""
import dataclasses
import ipaddress
import re
import urllib.parse

from gaia_common import logctx, quantity
from gaia_common.config import ConfigError, MasterConfig, NodeConfig
from gaia_common.keys import valid_cluster_name
from gaia_common.metrics import split_address

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
SCALARS = (str, int, float, bool)
_KIND_NAMES = {int: "a whole number", float: "a number", str: "a string", list: "a list", dict: "a mapping"}


def check(cfg) -> None:
    """Raise ConfigError naming the first setting of `cfg` that is wrong."""
    rules = {**COMMON, **(MASTER if isinstance(cfg, MasterConfig) else NODE)}
    for field in dataclasses.fields(cfg):
        value = getattr(cfg, field.name)
        rule = rules.get(field.name) or _of_type(field.type)
        try:
            rule(value)
        except (ValueError, TypeError) as e:   # ConfigError too: the node's parsers name the field
            message = str(e) if str(e).startswith(field.name) else f"{field.name}: {e}"
            raise ConfigError(f"{message} (got {value!r})") from None
    if bool(getattr(cfg, "etcd_user", "")) != bool(getattr(cfg, "etcd_password_file", "")):
        raise ConfigError("etcd_password_file: etcd_user and etcd_password_file go together")
    if isinstance(cfg, MasterConfig) and cfg.ca_key and not cfg.tls:
        raise ConfigError("ca_key: signs AM certificates, so it needs tls (the CA certificate in tls.ca)")
    if isinstance(cfg, MasterConfig) and cfg.join_listen and not (cfg.tls and cfg.ca_key):
        raise ConfigError("join_listen: enrolment needs tls and ca_key (the master signs the joining "
                          "node's certificate and serves the port over TLS)")
    if isinstance(cfg, NodeConfig):
        _node_relations(cfg)


# ---- building blocks: each raises ValueError with what is wrong ----

def _of_type(kind):
    def rule(value):
        _type(value, kind)
    return rule


def _type(value, kind):
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"must be {_KIND_NAMES.get(kind, 'a ' + kind.__name__)}")


def _number(kind, low=None, high=None, low_open=False):
    def rule(value):
        _type(value, kind)
        too_low = low is not None and (value <= low if low_open else value < low)
        if too_low or (high is not None and value > high):
            bounds = f"{'>' if low_open else '>='} {low}" if high is None else f"from {low} to {high}"
            raise ValueError(f"must be {'a whole number' if kind is int else 'a number'} {bounds}")
    return rule


def _address(optional: bool = False, port_zero: bool = True):
    def rule(value):
        _type(value, str)
        if optional and not value:
            return
        _, port = split_address(value)
        if port == 0 and not port_zero:
            raise ValueError("needs a real port, not 0")
    return rule


def _etcd(value):
    if not isinstance(value, list) or not value:
        raise ValueError("must be a list of etcd URLs (http://host:port), or one comma-separated string")
    for url in value:
        _type(url, str)
        parts = urllib.parse.urlparse(url if "://" in url else "http://" + url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"{url!r}: use http:// or https://")
        try:
            port = parts.port
        except ValueError as e:
            raise ValueError(f"{url!r}: {e}") from None
        if not parts.hostname or not port:
            raise ValueError(f"{url!r}: expected http(s)://host:port")


def _cluster(value):
    _type(value, str)
    if not valid_cluster_name(value):
        raise ValueError("use lowercase letters, digits and '-'")


def _id(value):
    _type(value, str)
    if value and not _ID.fullmatch(value):
        raise ValueError("use letters, digits, '.', '_' and '-' (it is part of etcd keys)")


def _choice(*choices):
    def rule(value):
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
    return rule


def _nonempty(value):
    _type(value, str)
    if not value:
        raise ValueError("must not be empty")


def _size(optional: bool = False):
    def rule(value):
        if optional and value == "":
            return
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValueError("must be a size such as 512Mi or 2Gi")
        quantity.byte_count(value)
    return rule


def _etcd_tls(value):
    """None, or {ca, cert, key} paths (cert and key together: etcd's client-cert-auth)."""
    if value is None:
        return
    _type(value, dict)
    unknown = set(value) - {"ca", "cert", "key"}
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0]!r} (known: ca, cert, key)")
    for key, path in value.items():
        if not isinstance(path, str) or not path:
            raise ValueError(f"{key}: must be a file path")
    if ("cert" in value) != ("key" in value):
        raise ValueError("cert and key go together")


def _tls(value):
    """None, or {ca, cert, key}: all three (a daemon serves with its own certificate). Whether
    the files can be read is checked where they are used (the daemon's own host)."""
    if value is None:
        return
    from gaia_common.security.tls import TlsFiles   # grpc + cryptography: only when it is set
    files = TlsFiles.from_config(value, check_files=False)   # names the sub-field it rejects
    if files is not None and not files.cert:
        raise ValueError("tls.cert: a daemon serves with its own certificate and key")


# ---- master ----

def _am_resources(value):
    _type(value, dict)
    unknown = set(value) - {"cpu", "memory"}
    if unknown:
        raise ValueError(f"unknown resource {sorted(unknown)[0]!r} (known: cpu, memory)")
    quantity.cpu_millis(value.get("cpu", "100m"))
    quantity.byte_count(value.get("memory", "128Mi"))


# ---- node ----

def _labels(value):
    _type(value, dict)
    for key, label in value.items():
        if not isinstance(key, SCALARS) or not isinstance(label, SCALARS):
            raise ValueError(f"{key!r}: labels map names to plain values")


def _capacity(value):
    from gaia_common.pb import types_pb2
    from gaia_node import capacity
    _type(value, dict)
    capacity.with_overrides(types_pb2.Resources(), value)


def _port_range(value):
    ok = isinstance(value, list) and len(value) == 2 and all(
        isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535 for p in value)
    if not ok or value[0] > value[1]:
        raise ValueError("must be [first, last] with 1 <= first <= last <= 65535")


def _drivers(value):
    from gaia_node.drivers import FACTORIES
    if not isinstance(value, list) or not value:
        raise ValueError(f"must be a list of drivers (known: {', '.join(sorted(FACTORIES))})")
    unknown = [d for d in value if d not in FACTORIES]
    if unknown:
        raise ValueError(f"unknown driver {unknown[0]!r} (known: {', '.join(sorted(FACTORIES))})")


def _docker_host(value):
    _type(value, str)
    if value and urllib.parse.urlparse(value).scheme not in ("unix", "tcp", "http", "https", "ssh"):
        raise ValueError("expected unix:///path.sock or tcp://host:port")


def _disk_pressure_free(value):
    from gaia_node.isolation import disk
    disk.pressure_threshold(value, 100)


def _host_ip(value):
    _type(value, str)
    ipaddress.ip_address(value)


def _network(cfg_value_name):
    def rule(value):
        from gaia_node.network import NetworkPlan
        _type(value, str)
        probe = NodeConfig(**{cfg_value_name: value})
        NetworkPlan.from_config(probe)
    return rule


def _gpus(value):
    from gaia_node import gpus
    gpus.declared(value)


def _host_path_allow(value):
    from gaia_common.spec import check_allow_list
    check_allow_list(value)


COMMON = {
    "cluster": _cluster, "etcd": _etcd, "listen": _address(), "advertise": _address(optional=True, port_zero=False),
    "id": _id, "lease_ttl": _number(int, 1), "metrics_listen": _address(optional=True),
    "log_format": _choice(*logctx.FORMATS),
    "etcd_user": _of_type(str), "etcd_password_file": _of_type(str), "etcd_tls": _etcd_tls,
    "tls": _tls, "host_path_allow": _host_path_allow,
}
MASTER = {"am_attempts": _number(int, 1), "am_resources": _am_resources,
          "join_listen": _address(optional=True), "ca_key": _of_type(str),
          # each stream holds a server worker: the total sizes the master's thread pool
          "max_streams": _number(int, 1, 10000), "max_streams_per_user": _number(int, 0),
          "max_streams_per_am": _number(int, 0), "max_streams_per_tenant": _number(int, 0)}
NODE = {
    "host_ip": _host_ip, "state_dir": _nonempty, "cgroup_root": _nonempty, "cgroup_parent": _nonempty,
    "partition_grace": _number(float, 0), "labels": _labels, "capacity": _capacity, "port_range": _port_range,
    "drivers": _drivers, "docker_host": _docker_host, "disk_pressure_free": _disk_pressure_free,
    "disk_check_interval": _number(float, 0, low_open=True),
    "network_bridge": _network("network_bridge"), "container_subnet": _network("container_subnet"),
    "memory_budget": _size(optional=True), "memory_reserve": _size(),
    "memory_pressure_high": _number(float, 0, 1), "memory_reclaim_target": _number(float, 0, 1),
    "memory_psi_threshold": _number(float, 0, 100), "memory_reclaim_interval": _number(float, 0, low_open=True),
    "gpus": _gpus,
}


def _node_relations(cfg) -> None:
    """What no single setting shows: reclaim must bring memory below the pressure mark; the
    partition fence must fall before AMs replace what it fences (the node's own rule)."""
    from gaia_node import partition
    if cfg.memory_reclaim_target > cfg.memory_pressure_high:
        raise ConfigError(f"memory_reclaim_target: must not exceed memory_pressure_high "
                          f"({cfg.memory_pressure_high}) (got {cfg.memory_reclaim_target!r})")
    partition.grace_seconds(cfg)
