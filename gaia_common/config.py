"""Config files: the daemons' (master.yaml, node.yaml) and the client's (~/.gaia/config.yaml).

Daemon configs are dataclasses with defaults a dev cluster can use as they are; unknown keys
are errors (a typo must not silently mean "default").
"""
import dataclasses
import os
import pathlib
import socket

import yaml


class ConfigError(ValueError):
    pass


@dataclasses.dataclass
class MasterConfig:
    cluster: str = "dev"
    etcd: list = dataclasses.field(default_factory=lambda: ["http://127.0.0.1:2379"])
    listen: str = "127.0.0.1:0"           # gRPC host:port; port 0 picks a free one
    advertise: str = ""                   # address others dial; default: the bound listen address
    id: str = ""                          # default: <hostname>-<pid>
    lease_ttl: int = 2                    # seconds; a crashed leader is replaced within this + ~1s
    python: str = ""                      # interpreter for `gaia am` on nodes; default: this one
    am_attempts: int = 3                  # AM failures before the app fails
    am_resources: dict = dataclasses.field(default_factory=lambda: {"cpu": "100m", "memory": "128Mi"})
    # Prometheus /metrics (host:port; port 0 picks a free one); "" = not served. Off by default:
    # several daemons often share a host (gaia dev), and a fixed default port would collide.
    metrics_listen: str = ""
    log_format: str = "text"              # text (key=value fields) or json (one object a line)
    # mutual TLS for gRPC, {ca, cert, key} paths (gaia_common/security/tls.py); absent: plaintext,
    # every caller the anonymous admin. ca_key: the CA's key, to sign AM certificates (TLS on).
    tls: dict = None
    ca_key: str = ""
    # etcd RBAC and client TLS (gaia_common/etcd_auth.py): the user this daemon logs in as and a
    # file holding its password (absent: no login); etcd_tls {ca, cert, key} for https:// endpoints
    # (cert/key only where etcd asks for client certificates).
    etcd_user: str = ""
    etcd_password_file: str = ""
    etcd_tls: dict = None
    # the enrolment port (gaia_master/enrol.py): server-only TLS, `gaia node join` with a one-time
    # token; "" = no enrolment. Needs tls and ca_key.
    join_listen: str = ""
    # prefixes host paths of apps' volumes and devices (and absolute process-driver workdirs)
    # must lie under, e.g. [/data, /dev/fuse]; empty: no app may use a host path
    host_path_allow: list = dataclasses.field(default_factory=list)
    # long streams (WatchApp, WatchEndpoints, `gaia logs -f`) open at once, each holding a worker
    # of its own beside the unary calls' (gaia_master/watch.py): in all, per user, per app's AM,
    # per tenant (its users and AMs together); 0 = no cap of that kind. Over one: RESOURCE_EXHAUSTED.
    max_streams: int = 256
    max_streams_per_user: int = 64
    max_streams_per_am: int = 8
    max_streams_per_tenant: int = 192
    # Sfair hands what it has placed to the writer about every this many instances while it
    # decides (gaia_master/scheduling/applier.py); 0: the plan is written after Sfair, whole.
    schedule_stream_every: int = 512


@dataclasses.dataclass
class NodeConfig:
    cluster: str = "dev"
    etcd: list = dataclasses.field(default_factory=lambda: ["http://127.0.0.1:2379"])
    listen: str = "127.0.0.1:0"
    advertise: str = ""
    id: str = ""                          # default: the hostname
    host_ip: str = "127.0.0.1"            # the address instances are reachable at
    state_dir: str = "/var/lib/gaia/node"
    cgroup_root: str = "/sys/fs/cgroup"
    cgroup_parent: str = "gaia"
    lease_ttl: int = 3
    # seconds a node that cannot renew its lease keeps running the containers whose spec says
    # stop_on_partition; then it stops them (the others keep running). 0 = lease_ttl; at most lease_ttl.
    partition_grace: float = 0.0
    labels: dict = dataclasses.field(default_factory=dict)
    capacity: dict = dataclasses.field(default_factory=dict)   # overrides of what psutil reports
    port_range: list = dataclasses.field(default_factory=lambda: [20000, 32767])
    drivers: list = dataclasses.field(default_factory=lambda: ["process"])   # + "docker"
    # docker driver: the engine's address (unix:///path.sock, tcp://...); "" = $DOCKER_HOST or
    # the default socket. Unreachable at start: the node runs without the docker driver.
    docker_host: str = ""
    # disk: free space on state_dir's filesystem below this (a size, or a percentage of the
    # filesystem) is pressure: containers furthest over their disk request are evicted first.
    disk_pressure_free: str = "10%"
    disk_check_interval: float = 5.0      # seconds between walks of the containers' scratch dirs
    # network (gaia_node/network): containers without host networking get an address from
    # container_subnet on bridge network_bridge (gateway: the subnet's first address). Node
    # managers on one host may share both; pick a subnet unused on the hosts' own networks.
    network_bridge: str = "gaia0"
    container_subnet: str = "10.213.0.0/16"
    # elastic memory (gaia_node/isolation/memory.py): what the containers may hold together
    # ("" = total RAM less memory_reserve). Above memory_pressure_high of it (or at
    # memory_psi_threshold % PSI stall, 0 = ignore PSI) borrowers above their request are
    # squeezed, then killed, down to memory_reclaim_target of it; checked every interval seconds.
    memory_budget: str = ""
    memory_reserve: str = "1Gi"
    memory_pressure_high: float = 0.95
    memory_reclaim_target: float = 0.90
    memory_psi_threshold: float = 10.0
    memory_reclaim_interval: float = 0.5
    # GPUs the node offers, each {model, memory, link_path} (gaia_node/gpus.py); empty: the
    # ones NVML finds (gaia_node/gpu_discovery.py). They set the gpu capacity too.
    gpus: list = dataclasses.field(default_factory=list)
    metrics_listen: str = ""              # Prometheus /metrics host:port; "" = not served
    log_format: str = "text"              # text or json
    tls: dict = None                      # mutual TLS {ca, cert, key}; absent: plaintext
    # this node's own allow-list of host paths (as MasterConfig's): checked again here, so a
    # spec the master let through still cannot reach outside what this node allows
    host_path_allow: list = dataclasses.field(default_factory=list)
    etcd_user: str = ""                   # etcd login and client TLS: as in MasterConfig
    etcd_password_file: str = ""
    etcd_tls: dict = None


@dataclasses.dataclass
class DnsConfig:
    """`gaia dns run`: examples/dns.yaml documents each setting."""
    cluster: str = "dev"
    etcd: list = dataclasses.field(default_factory=lambda: ["http://127.0.0.1:2379"])
    listen: str = "127.0.0.1:5353"        # UDP and TCP host:port ([::1]:5353 for IPv6); port 0: a free one
    zone: str = "gaia"                    # suffix: names are <app>.<cluster>.<zone>
    ttl: int = 5                          # seconds, on every record and for negative answers
    tcp_connections: int = 128            # TCP clients served at once; more are closed at once
    tcp_idle_timeout: float = 10.0        # seconds a TCP client may stay idle
    etcd_user: str = ""                   # etcd login and client TLS: as in MasterConfig
    etcd_password_file: str = ""
    etcd_tls: dict = None


def load_daemon_config(cls, path: str = None, overrides: dict = None):
    """Read a YAML file into `cls`, then apply command-line overrides (None values ignored)."""
    values = {}
    if path:
        try:
            values = yaml.safe_load(pathlib.Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"{path}: {e}") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: must be a mapping of settings")
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{path or 'config'}: unknown setting {unknown[0]!r} (known: {', '.join(sorted(known))})")
    if isinstance(values.get("etcd"), str):
        values["etcd"] = [e for e in values["etcd"].split(",") if e]
    return cls(**values)


def default_id() -> str:
    return socket.gethostname()


# ---- the client's config: cluster names -> how to reach them ----

def client_config_path() -> pathlib.Path:
    return pathlib.Path(os.environ.get("GAIA_CONFIG") or pathlib.Path.home() / ".gaia" / "config.yaml")


def load_client_config(path: pathlib.Path = None) -> dict:
    path = path or client_config_path()
    if not path.exists():
        return {"current": "", "clusters": {}}
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: {e}") from None
    doc.setdefault("current", "")
    doc.setdefault("clusters", {})
    return doc


def save_client_config(doc: dict, path: pathlib.Path = None):
    path = path or client_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=True))
    os.replace(tmp, path)  # atomic: a crash never leaves half a config


def cluster_entry(name: str, path: pathlib.Path = None) -> dict:
    """The client config's entry for cluster `name`: {etcd: [...], masters: [...], tls: {...}}."""
    doc = load_client_config(path)
    entry = doc["clusters"].get(name)
    if entry is None:
        known = ", ".join(sorted(doc["clusters"])) or "none"
        raise ConfigError(f"unknown cluster {name!r} (known: {known}); add it with `gaia cluster add`")
    return entry
