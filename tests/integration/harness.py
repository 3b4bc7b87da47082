"""A real local cluster for integration tests: master and node processes on a real etcd.

Daemons are separate processes (started through the `gaia` CLI) so tests can kill -9 and
SIGSTOP them for real. Cleanup finds every process of the test's cluster — daemons, shims,
AMs, instances — by the GAIA_CLUSTER / config path in its environment or command line.
"""
import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import psutil
import yaml

from gaia_cli.procs import remove_cgroups
from gaia_common.client import MasterClient
from gaia_common.config import NodeConfig
from gaia_common.etcd import connect
from gaia_common.keys import Keys
from gaia_common.security.identity import Identity
from gaia_common.security.pki import CertificateAuthority
from gaia_node.hollow.fleet import hollow_ids
from gaia_node.network import hook as network_hook

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Serves HTTP on 0.0.0.0:argv[2]: 200 while the file argv[1] exists, else 503 (its health check fails).
FLAG_SERVER = (
    "import http.server, os, sys\n"
    "flag, port = sys.argv[1], int(sys.argv[2])\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200 if os.path.exists(flag) else 503); self.end_headers()\n"
    "    def log_message(self, *a): pass\n"
    "http.server.ThreadingHTTPServer(('0.0.0.0', port), H).serve_forever()\n")

# One instance whose process sleeps ten minutes: an app that stays up for as long as a test looks.
SLEEPER_APP = """\
name: {name}
instances: 1
command: ["{python}", "-c", "import time; time.sleep(600)"]
resources: {{request: {{cpu: 50m, memory: 32Mi}}}}
"""


def wait_for(predicate, timeout: float, interval: float = 0.1, what: str = "condition", on_timeout=None):
    """Poll `predicate` until it returns something truthy; bounded by `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # the system is converging; remember why it is not there yet
            last_error = e
        time.sleep(interval)
    seen = f"; last seen: {on_timeout()}" if on_timeout is not None else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" +
                         (f" (last error: {last_error})" if last_error else "") + seen)


class LocalCluster:
    def __init__(self, etcd_endpoint, name: str, workdir, tls: bool = False):
        """`etcd_endpoint`: one URL, or a list of the members' URLs. `tls`: mutual TLS everywhere,
        with a CA made in <workdir>/tls; the client config and client() present user `admin`."""
        self.etcd_endpoints = [etcd_endpoint] if isinstance(etcd_endpoint, str) else list(etcd_endpoint)
        self.etcd_endpoint = self.etcd_endpoints[0]
        self.name = name
        self.keys = Keys(name)
        self.workdir = str(workdir)
        self.masters = []     # Popen
        self.nodes = {}       # node_id -> Popen
        self.client_config = os.path.join(self.workdir, "client.yaml")
        self.ca = CertificateAuthority.create(os.path.join(self.workdir, "tls"), name) if tls else None
        self.admin_tls = self.tls_files("user", "admin")
        entry = {"etcd": self.etcd_endpoints, **({"tls": self.admin_tls} if tls else {})}
        with open(self.client_config, "w") as f:
            yaml.safe_dump({"current": name, "clusters": {name: entry}}, f)
        self.etcd = connect(self.etcd_endpoints)
        self._clients = []

    def tls_files(self, role: str, name: str, **issue) -> dict:
        """A certificate of this cluster's CA for `role`/`name` ({ca, cert, key}), None without TLS."""
        if self.ca is None:
            return None
        directory = os.path.join(self.workdir, "tls")
        stem = f"{role}-{name}" + ("-" + issue.pop("stem") if "stem" in issue else "")
        identity = (Identity.am(self.name, name, issue.pop("attempt")) if role == "am"
                    else Identity(role, name, self.name))
        hosts = () if role in ("user", "am") else ("127.0.0.1", "localhost")
        self.ca.issue(identity, hosts=hosts, directory=directory, stem=stem, **issue)
        return {"ca": os.path.join(directory, "ca.crt"), "cert": os.path.join(directory, f"{stem}.crt"),
                "key": os.path.join(directory, f"{stem}.key")}

    def _with_tls(self, config: dict, role: str, name: str) -> dict:
        if self.ca is not None:
            config.setdefault("tls", self.tls_files(role, name))
            if role == "master":
                config.setdefault("ca_key", os.path.join(self.workdir, "tls", "ca.key"))
        return config

    # ---- processes ----

    def _env(self, extra=None):
        env = dict(os.environ, GAIA_CONFIG=self.client_config, GAIA_TEST_CLUSTER=self.name,
                   PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env.pop("GAIA_FAULTS", None)
        env.update(extra or {})
        return env

    def _spawn(self, kind: str, config: dict, log_name: str, env_extra=None, args=()) -> subprocess.Popen:
        path = os.path.join(self.workdir, f"{log_name}.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(config, f)
        log = open(os.path.join(self.workdir, f"{log_name}.log"), "ab")
        return subprocess.Popen([sys.executable, "-m", "gaia_cli", kind, "run", "--config", path, *args],
                                stdout=log, stderr=subprocess.STDOUT, env=self._env(env_extra),
                                start_new_session=True, cwd=ROOT)

    def start_master(self, env_extra=None, lease_ttl: int = 2, **overrides) -> subprocess.Popen:
        n = len(self.masters) + 1
        config = {"cluster": self.name, "etcd": self.etcd_endpoints, "listen": "127.0.0.1:0",
                  "id": f"{self.name}-m{n}", "lease_ttl": lease_ttl, **overrides}
        proc = self._spawn("master", self._with_tls(config, "master", config["id"]), f"master-{n}", env_extra)
        self.masters.append(proc)
        return proc

    def start_node(self, node_id: str = None, **overrides) -> subprocess.Popen:
        node_id = node_id or f"{self.name}-n{len(self.nodes) + 1}"
        config = {"cluster": self.name, "etcd": self.etcd_endpoints, "listen": "127.0.0.1:0",
                  "id": node_id, "state_dir": os.path.join(self.workdir, node_id),
                  "cgroup_parent": f"gaia-{self.name}", "lease_ttl": 3, **overrides}
        proc = self._spawn("node", self._with_tls(config, "node", node_id), node_id)
        self.nodes[node_id] = proc
        return proc

    def start_hollow(self, count: int, base_id: str = None, **overrides) -> subprocess.Popen:
        """`gaia node run --hollow count`: node ids <base_id>-hollow-<i>, all in one process."""
        base_id = base_id or f"{self.name}-h"
        config = {"cluster": self.name, "etcd": self.etcd_endpoints, "listen": "127.0.0.1:0",
                  "id": base_id, "lease_ttl": 3, **overrides}
        if self.ca is not None:   # one certificate naming every hollow node's server name
            config.setdefault("tls", self.tls_files("node", base_id, serves=hollow_ids(base_id, count)))
        proc = self._spawn("node", config, base_id, args=("--hollow", str(count)))
        self.nodes[base_id] = proc
        return proc

    # ---- views ----

    def client(self, **kwargs) -> MasterClient:
        kwargs.setdefault("tls", self.admin_tls)
        c = MasterClient(self.name, etcd_endpoints=self.etcd_endpoints, **kwargs)
        self._clients.append(c)
        return c

    def leader(self):
        masters = MasterClient(self.name, etcd_endpoints=self.etcd_endpoints).masters()
        return masters[0] if masters else None

    def leader_proc(self) -> subprocess.Popen:
        """The Popen of the leading master, found by the pid in its id."""
        info = self.leader()
        index = int(info.id.rsplit("-m", 1)[1]) - 1
        return self.masters[index]

    def wait_ready(self, nodes: int = None, timeout: float = 30.0):
        nodes = len(self.nodes) if nodes is None else nodes
        from gaia_common.pb import master_pb2
        c = self.client(retry_for=2)
        wait_for(lambda: len(c.call("ListNodes", master_pb2.ListNodesRequest()).nodes) >= nodes,
                 timeout, what=f"a leader and {nodes} nodes")

    def cli(self, *args, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "gaia_cli", "--cluster", self.name, *args],
                                capture_output=True, text=True, env=self._env(), timeout=timeout, cwd=ROOT)
        if check and result.returncode != 0:
            raise AssertionError(f"gaia {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def cli_json(self, *args):
        return json.loads(self.cli(*args, "-o", "json").stdout)

    def submit_sleeper(self, name: str) -> str:
        """`gaia submit` of SLEEPER_APP named `name` (its spec file in the workdir); the app's id."""
        spec = os.path.join(self.workdir, f"{name}.yaml")
        with open(spec, "w") as f:
            f.write(SLEEPER_APP.format(name=name, python=sys.executable))
        return self.cli("submit", spec).stdout.strip()

    def etcd_snapshot(self) -> dict:
        """Everything under the cluster's prefix but the masters' own keys (leases, leader), with
        each key's mod revision: equal snapshots mean nothing was written in between."""
        return {m.key: (v, m.mod_revision) for v, m in self.etcd.get_prefix(self.keys.root)
                if not m.key.startswith(self.keys.masters.encode())}

    def log(self, name: str) -> str:
        with open(os.path.join(self.workdir, f"{name}.log"), errors="replace") as f:
            return f.read()

    # ---- teardown ----

    def stop(self):
        for c in self._clients:
            c.close()
        procs = self.masters + list(self.nodes.values())
        for p in procs:
            if p.poll() is None:
                _signal_group(p.pid, signal.SIGCONT)
                _signal_group(p.pid, signal.SIGKILL)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass
        kill_cluster_processes(self.name)
        remove_cgroups(f"gaia-{self.name}")
        for node_id in self.nodes:  # killed nodes ran no poststop: unwire the namespaces they made
            network_hook.sweep(NodeConfig(cluster=self.name, state_dir=os.path.join(self.workdir, node_id)))
        self.etcd.close()


@contextlib.contextmanager
def running_cluster(etcd_endpoint, name: str, workdir, masters: int = 1, nodes: int = 1):
    """A LocalCluster with `masters` and `nodes` started and ready; stopped afterwards."""
    cluster = LocalCluster(etcd_endpoint, name, workdir)
    try:
        for _ in range(masters):
            cluster.start_master()
        for _ in range(nodes):
            cluster.start_node()
        cluster.wait_ready(nodes=nodes)
        yield cluster
    finally:
        cluster.stop()


def _signal_group(pid: int, sig):
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def cluster_processes(name: str) -> list:
    """Every live process started for cluster `name` (AMs, instances, shims, daemons)."""
    found = []
    for p in psutil.process_iter(["pid"]):
        try:
            env = p.environ()
        except (psutil.Error, OSError):
            continue
        if env.get("GAIA_CLUSTER") == name or env.get("GAIA_TEST_CLUSTER") == name:
            found.append(p)
    return found


def kill_cluster_processes(name: str, timeout: float = 30.0):
    """SIGKILL every process of the cluster, again on each pass: one may have been started
    meanwhile, and exits slowed by network-namespace teardown on a loaded machine take a while."""
    def all_gone():
        left = cluster_processes(name)
        for p in left:
            try:
                p.kill()
            except psutil.Error:
                pass
        return not left

    try:
        wait_for(all_gone, timeout, interval=0.5, what=f"processes of {name} to exit")
    except AssertionError:
        left = [f"{p.pid} {_describe(p)}" for p in cluster_processes(name)]
        raise AssertionError(f"processes of {name} still there after {timeout}s: {left}") from None


def _describe(p) -> str:
    try:
        return f"{p.status()} {' '.join(p.cmdline())[:80]}"
    except psutil.Error:
        return "(gone)"
