"""A whole cluster on this machine: one etcd, N masters, M nodes, each a process of its own.

Everything lives in $GAIA_DEV_HOME/<name>/ (default ~/.gaia/dev/<name>/): the daemons' config
files, logs/, the nodes' state, etcd's data, and state.json, which records every process (pid
and start time) so that `gaia dev down` can stop them from another shell. The cluster is
registered in the client config under its name, with its etcd endpoint.

TLS is on by default: a CA made for the cluster (tls/ca.crt, ca.key), a certificate for each
master and node, and one for the user `admin` (the cluster's bootstrap admin) that the client
config entry names, so the CLI speaks mutual TLS to the masters as every daemon does.
"""
import os
import pathlib
import shutil
import subprocess
import sys
import time
import uuid

import yaml

from gaia_common import config
from gaia_common.client import GaiaError, MasterClient
from gaia_common.etcd import TRANSIENT, EtcdServer
from gaia_common.keys import valid_cluster_name
from gaia_common.pb import master_pb2
from gaia_cli import procs
from gaia_cli.errors import EXIT_BAD_REQUEST, CliError

DEFAULT_NAME = "dev"
ADMIN_USER = "admin"                  # the bootstrap admin every leader makes (gaia_master/tenancy.py)
LOCAL_HOSTS = ("127.0.0.1", "localhost")   # what every dev daemon's certificate names: all serve here
PORT_RANGE = (20000, 32767)           # split between the nodes: they share one host
TOKEN_ENV = "GAIA_DEV_TOKEN"          # marks every process a dev cluster starts, for `down`
_REPO_ROOT = str(pathlib.Path(__file__).resolve().parent.parent)


def dev_home() -> pathlib.Path:
    return pathlib.Path(os.environ.get("GAIA_DEV_HOME") or pathlib.Path.home() / ".gaia" / "dev")


def node_id(i: int) -> str:
    return f"dev-node-{i}"


def master_id(i: int) -> str:
    return f"dev-master-{i}"


def make_pki(directory: pathlib.Path, cluster: str, masters: list, nodes: list, users=(ADMIN_USER,)) -> dict:
    """A new CA for `cluster` under `directory` and certificates for the given master ids, node
    ids and users (<role>-<id>.crt/.key). Returns {"ca", "ca_key", "<role>:<id>": {ca, cert, key}}."""
    from gaia_common.security.identity import Identity    # cryptography: only when TLS is wanted
    from gaia_common.security.pki import CA_CERT, CA_KEY, CertificateAuthority
    ca = CertificateAuthority.create(directory, cluster)
    files = {"ca": str(directory / CA_CERT), "ca_key": str(directory / CA_KEY)}
    wanted = [("master", m) for m in masters] + [("node", n) for n in nodes] + [("user", u) for u in users]
    for role, name in wanted:
        hosts = LOCAL_HOSTS if role != "user" else ()
        cert, key = _issue_to(ca, Identity(role, name, cluster), hosts, directory, f"{role}-{name}")
        files[f"{role}:{name}"] = {"ca": files["ca"], "cert": cert, "key": key}
    return files


def _issue_to(ca, identity, hosts, directory, stem) -> tuple:
    """Issue into <directory>/<stem>.crt and .key; return the two paths."""
    ca.issue(identity, hosts=hosts, directory=directory, stem=stem)
    return str(directory / f"{stem}.crt"), str(directory / f"{stem}.key")


class DevCluster:
    def __init__(self, name: str = DEFAULT_NAME, home: pathlib.Path = None):
        if not valid_cluster_name(name):
            raise CliError(f"cluster name {name!r}: use lowercase letters, digits and '-'", EXIT_BAD_REQUEST)
        self.name = name
        self.dir = (home or dev_home()) / name
        self.logs = self.dir / "logs"
        self.state_path = self.dir / "state.json"
        self.cgroup_parent = f"gaia-{name}"
        self.state = {}
        self.children = []              # Popen objects when this process started them

    # ---- state.json ----

    def load(self) -> dict:
        self.state = procs.read_state(self.state_path, '; remove it once nothing runs')
        return self.state

    def _save(self):
        procs.write_state(self.state_path, self.state)

    def _record(self, role: str, pid: int, log: str, **extra):
        self.state["processes"].append(dict(role=role, pid=pid, started=procs.start_time(pid),
                                            log=log, **extra))
        self._save()

    def running(self) -> list:
        """The recorded processes that still run (psutil.Process each)."""
        found = (procs.find(p["pid"], p["started"]) for p in self.state.get("processes", []))
        return [p for p in found if p is not None]

    @property
    def endpoint(self) -> str:
        return self.state.get("etcd", "")

    # ---- up ----

    def ensure_not_running(self):
        """A clear error when this cluster is already up (any recorded process still runs)."""
        self.load()
        if self.running():
            raise CliError(f"dev cluster {self.name!r} is already up ({self.state_path}); "
                           f"stop it with `gaia dev down --name {self.name}`", EXIT_BAD_REQUEST)

    def start(self, masters: int, nodes: int, lease_ttl: int = None, timeout: float = 60.0, tls: bool = True):
        """Start etcd, the masters and then the nodes, each recorded as it starts so `down` can
        always clean up. Call ensure_not_running first, and wait_ready after.

        The nodes start once a leader answers, as a real cluster comes up: every master has
        loaded its view of the nodes by then and follows them from there.
        `lease_ttl`: the masters' (default: theirs). `tls`: mutual TLS everywhere (a new CA)."""
        if self.state:
            self.stop()  # a stale record: sweep whatever it left behind (containers) first
        self._fresh_dirs()
        self.state = {"name": self.name, "etcd": "", "masters": masters, "nodes": nodes,
                      "cgroup_parent": self.cgroup_parent, "token": uuid.uuid4().hex, "processes": []}
        pki = make_pki(self.dir / "tls", self.name, [master_id(i) for i in range(1, masters + 1)],
                       [node_id(i) for i in range(1, nodes + 1)]) if tls else {}
        if pki:
            self.state["tls"] = pki[f"user:{ADMIN_USER}"]    # what the CLI presents
        self._save()
        etcd = EtcdServer(data_dir=str(self.dir / "etcd"), name=f"gaia-{self.name}",
                          log_path=str(self.logs / "etcd.log"))
        try:
            etcd.start()
        except (OSError, RuntimeError) as e:  # no etcd binary, or it did not come up
            raise CliError(f"etcd: {e}") from None
        finally:
            if etcd.proc is not None:
                self._record("etcd", etcd.proc.pid, etcd.log_path)
                self.children.append(etcd.proc)
        self.state["etcd"] = etcd.endpoint
        self._save()
        self._register_client_config()
        for i in range(1, masters + 1):
            settings = {"cluster": self.name, "etcd": [self.endpoint], "listen": "127.0.0.1:0",
                        "id": master_id(i)}
            if pki:
                settings.update(tls=pki[f"master:{master_id(i)}"], ca_key=pki["ca_key"])
            if lease_ttl:
                settings["lease_ttl"] = lease_ttl
            self._write_config(f"master-{i}", settings)
            self._spawn("master", f"master-{i}", settings["id"])
        self.wait_ready(timeout)
        span = (PORT_RANGE[1] - PORT_RANGE[0] + 1) // max(nodes, 1)
        for i in range(1, nodes + 1):
            low = PORT_RANGE[0] + (i - 1) * span
            settings = {"cluster": self.name, "etcd": [self.endpoint], "listen": "127.0.0.1:0",
                        "id": node_id(i), "state_dir": str(self.dir / "nodes" / node_id(i)),
                        "cgroup_parent": self.cgroup_parent, "port_range": [low, low + span - 1]}
            if pki:
                settings["tls"] = pki[f"node:{node_id(i)}"]
            self._write_config(f"node-{i}", settings)
            self._spawn("node", f"node-{i}", node_id(i))

    def _fresh_dirs(self):
        """A dev cluster starts empty: last run's etcd data and node state would describe ghosts."""
        for old in (self.dir / "etcd", self.dir / "nodes", self.logs, self.dir / "tls"):
            shutil.rmtree(old, ignore_errors=True)
        self.logs.mkdir(parents=True, exist_ok=True)

    def _write_config(self, label: str, settings: dict):
        (self.dir / f"{label}.yaml").write_text(yaml.safe_dump(settings, sort_keys=True))

    def _spawn(self, role: str, label: str, daemon_id: str):
        """`gaia <role> run --config <label>.yaml` in a session of its own, logging to logs/<label>.log."""
        config_path = self.dir / f"{label}.yaml"
        log_path = self.logs / f"{label}.log"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_REPO_ROOT, os.environ.get("PYTHONPATH")])))
        env.pop("GAIA_CLUSTER", None)  # the config file names the cluster
        # Inherited by what the daemons start (the nodes' shims), so `down` finds those too.
        env[TOKEN_ENV] = self.state["token"]
        with open(log_path, "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "gaia_cli", role, "run", "--config", str(config_path)],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    cwd=self.dir, env=env, start_new_session=True)
        self.children.append(proc)
        self._record(role, proc.pid, str(log_path), label=label, id=daemon_id)
        return proc

    def master_pid(self, master_id: str) -> int:
        """The pid of the running master whose id (MasterInfo.id) is `master_id`."""
        for record in self.state.get("processes", []):
            if record["role"] == "master" and record.get("id") == master_id and \
                    procs.find(record["pid"], record["started"]):
                return record["pid"]
        raise CliError(f"no running master {master_id!r} in dev cluster {self.name!r}")

    def restart_master(self, master_id: str):
        """Start master `master_id` again (after it died) with its config, replacing its record."""
        records = self.state["processes"]
        old = next((r for r in records if r["role"] == "master" and r.get("id") == master_id), None)
        if old is None:
            raise CliError(f"no master {master_id!r} in dev cluster {self.name!r}")
        proc = procs.find(old["pid"], old["started"])
        if proc is not None and procs.wait_gone([proc], 5.0):  # a kill just sent takes a moment
            raise CliError(f"master {master_id!r} (pid {old['pid']}) is still running")
        records.remove(old)
        self._spawn("master", old["label"], master_id)

    def _entry(self) -> dict:
        entry = {"etcd": [self.endpoint]}
        if self.state.get("tls"):
            entry["tls"] = dict(self.state["tls"])
        return entry

    def client(self, **kwargs) -> MasterClient:
        """A client of this cluster as the CLI makes it (the admin's certificate when TLS is on)."""
        return MasterClient(self.name, etcd_endpoints=[self.endpoint], tls=self.state.get("tls"), **kwargs)

    def _register_client_config(self):
        doc = config.load_client_config()
        doc["clusters"][self.name] = self._entry()
        if not doc["current"]:
            doc["current"] = self.name
        config.save_client_config(doc)

    def wait_ready(self, timeout: float = 60.0):
        """Until every master campaigns, one leads, and it lists every node started so far alive."""
        want_nodes = {r["id"] for r in self.state["processes"] if r["role"] == "node"}
        client = self.client(retry_for=0.5, deadline=2.0)
        deadline = time.monotonic() + timeout
        waiting_for = "the masters"
        try:
            while True:
                self._check_alive()
                try:
                    found = client.masters()
                    if len(found) < self.state["masters"]:
                        waiting_for = f"the masters ({len(found)} of {self.state['masters']} campaigning)"
                    else:
                        listed = client.call("ListNodes", master_pb2.ListNodesRequest())
                        up = {n.info.node_id for n in listed.nodes if n.alive}
                        if want_nodes <= up:
                            return
                        waiting_for = f"the nodes ({len(up & want_nodes)} of {len(want_nodes)} registered)"
                except (GaiaError, *TRANSIENT) as e:
                    waiting_for = f"a leader ({getattr(e, 'message', e)})"
                if time.monotonic() > deadline:
                    raise CliError(f"dev cluster {self.name!r} not ready after {timeout:g}s: waiting for "
                                   f"{waiting_for}; logs in {self.logs}")
                time.sleep(0.2)
        finally:
            client.close()

    def _check_alive(self):
        for p in self.state["processes"]:
            if procs.find(p["pid"], p["started"]) is None:
                raise CliError(f"{p.get('label', p['role'])} (pid {p['pid']}) exited; "
                               f"the end of {p['log']}:\n{procs.log_tail(p['log'])}")

    def exited(self) -> list:
        """The recorded processes that are gone (for the foreground watch)."""
        return [p for p in self.state.get("processes", []) if procs.find(p["pid"], p["started"]) is None]

    # ---- down ----

    def stop(self, grace: float = 5.0) -> list:
        """Stop every recorded process, what they started, and whatever is in the cluster's cgroups.

        Nodes, their containers and the masters first, etcd last, so the daemons can still
        reach it while they shut down. Returns what survived SIGKILL (normally nothing).
        """
        records = self.state.get("processes", [])
        daemons = [p for p in records if p["role"] != "etcd"]
        survivors = procs.stop(self._with_families(daemons) + self._started_by_daemons(), grace)
        survivors += procs.stop(self._with_families([p for p in records if p["role"] == "etcd"]), grace)
        # Whatever was started while the nodes were going down: nothing can restart it now.
        survivors += procs.stop(self._started_by_daemons(), 1.0)
        procs.remove_cgroups(self.cgroup_parent)
        for child in self.children:
            child.poll()  # reap what this process started
        return survivors

    def _started_by_daemons(self) -> list:
        """Containers and shims: in the cluster's cgroups, or marked with its token (and their children)."""
        found = {p.pid: p for p in procs.cgroup_processes(self.cgroup_parent)}
        if self.state.get("token"):
            for marked in procs.with_env(TOKEN_ENV, self.state["token"]):
                found.update({p.pid: p for p in procs.family(marked)})
        return list(found.values())

    def _with_families(self, records) -> list:
        found = {}
        for record in records:
            leader = procs.find(record["pid"], record["started"])
            if leader is not None:
                found.update({p.pid: p for p in procs.family(leader)})
        return list(found.values())

    def forget(self):
        """Remove state.json and the client config's entry for this cluster (if still ours)."""
        doc = config.load_client_config()
        if self.endpoint and doc["clusters"].get(self.name) == self._entry():
            del doc["clusters"][self.name]
            if doc["current"] == self.name:
                doc["current"] = ""
            config.save_client_config(doc)
        self.state_path.unlink(missing_ok=True)
        self.state = {}
