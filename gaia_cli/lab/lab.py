"""A lab's life: up, status, faults (partition, kill), down.

Its files live in $GAIA_LAB_HOME/<name>/ (default ~/.gaia/lab/<name>/): hosts/<host id>/ (the
rendered configs, etcd data, a node's state dir), pki/ and secrets/ (gaia_cli/lab/secure.py),
logs/, and state.json. As in the Vagrant lab, TLS is on everywhere (gRPC, etcd clients), etcd
checks logins (RBAC), and nodes enrol with one-time tokens (`gaia node join`). state.json holds the
plan (name, subnet, sizes: every namespace and link name derives from it) before anything is
made, and each process (pid and start time) as it starts, so `down` removes exactly what `up`
made, even after `up` crashed half way.
"""
import ipaddress
import os
import pathlib
import shutil
import subprocess
import sys
import time
import uuid

from gaia_common import config
from gaia_common.client import GaiaError, MasterClient
from gaia_common.etcd import TRANSIENT, find_etcd_binary
from gaia_common.keys import valid_cluster_name
from gaia_common.pb import master_pb2
from gaia_node.network import links
from gaia_cli import procs
from gaia_cli.errors import EXIT_BAD_REQUEST, EXIT_NOT_FOUND, CliError
from gaia_cli.lab import net, render
from gaia_cli.lab.plan import DEFAULT_NAME, LabPlan, collision, pick_subnet
from gaia_cli.lab.secure import LabSecurity

TOKEN_ENV = "GAIA_LAB_TOKEN"          # marks every process a lab starts (and theirs), for `down`
JOIN_TIMEOUT = 60.0                   # seconds one node's `gaia node join` may take
JOINS_AT_ONCE = 16
_REPO_ROOT = str(pathlib.Path(__file__).resolve().parents[2])


def lab_home() -> pathlib.Path:
    return pathlib.Path(os.environ.get("GAIA_LAB_HOME") or pathlib.Path.home() / ".gaia" / "lab")


class Lab:
    def __init__(self, name: str = DEFAULT_NAME, home: pathlib.Path = None):
        if not valid_cluster_name(name):
            raise CliError(f"lab name {name!r}: use lowercase letters, digits and '-'", EXIT_BAD_REQUEST)
        self.name = name
        self.dir = (home or lab_home()) / name
        self.logs = self.dir / "logs"
        self.state_path = self.dir / "state.json"
        self.state = {}
        self.children = []              # Popen objects this process started, reaped on down
        self.security = LabSecurity(self.dir, name)

    # ---- state.json ----

    def load(self) -> dict:
        self.state = procs.read_state(self.state_path)
        return self.state

    def _save(self):
        procs.write_state(self.state_path, self.state)

    @property
    def plan(self) -> LabPlan:
        s = self.state
        return LabPlan(s["name"], ipaddress.IPv4Network(s["subnet"]), s["masters"], s["nodes"])

    def host_dir(self, host) -> pathlib.Path:
        return self.dir / "hosts" / host.id

    def records(self, role: str = None) -> list:
        return [r for r in self.state.get("processes", []) if role is None or r["role"] == role]

    def process(self, role: str, host_id: str):
        """The running process (psutil) of `role` on host `host_id`, or None."""
        for r in self.records(role):
            if r["host"] == host_id:
                return procs.find(r["pid"], r["started"])
        return None

    # ---- up ----

    def ensure_not_running(self):
        if self.load() and (self._running() or net.netns_exists(self.plan.switch_netns)):
            raise CliError(f"lab {self.name!r} is already up ({self.state_path}); "
                           f"remove it with `gaia lab down --name {self.name}`", EXIT_BAD_REQUEST)

    def _running(self) -> list:
        found = (procs.find(r["pid"], r["started"]) for r in self.records())
        return [p for p in found if p is not None]

    def up(self, nodes: int = 3, masters: int = 3, subnet: str = None, timeout: float = 90.0):
        """Make the network, render every host's config, start etcd, the masters, the nodes;
        return once a leader lists every node alive. Call ensure_not_running first."""
        if os.geteuid() != 0:
            raise CliError("gaia lab needs root: it makes network namespaces and links")
        if self.state and self.down():  # a stale record (a crash): remove what it names first
            raise CliError(f"lab {self.name!r}: processes of an earlier run survive SIGKILL; see {self.state_path}")
        self._plan_and_record(nodes, masters, subnet)
        net.make_switch(self.plan)
        self.security.make()
        for host in self.plan.hosts():
            net.make_host(self.plan, host)
            render.configure(self.plan, host, self.host_dir(host))
            if host.role == "master":
                self.security.give_master(host, self.host_dir(host))
        deadline = time.monotonic() + timeout
        self._start_etcd(deadline)
        self.security.setup_etcd(self.plan.etcd_endpoints)
        self._register_client_config()
        for host in self._hosts("master"):
            self._spawn(host, "master", self._daemon_argv("master", host))
        self._wait(deadline, self._masters_ready, "the masters")
        self._enrol_nodes(deadline)
        for host in self._hosts("node"):
            self._spawn(host, "node", self._daemon_argv("node", host))
        self._wait(deadline, self._nodes_ready, "the nodes")

    def _plan_and_record(self, nodes: int, masters: int, subnet: str):
        taken = net.taken_networks()
        try:
            chosen = ipaddress.IPv4Network(subnet, strict=False) if subnet else pick_subnet(taken)
            LabPlan(self.name, chosen, masters, nodes)   # checks the sizes
        except ValueError as e:
            raise CliError(f"subnet: {e}", EXIT_BAD_REQUEST) from None
        clash = collision(chosen, taken)
        if clash is not None:
            raise CliError(f"subnet {chosen} overlaps {clash}, which this host already routes", EXIT_BAD_REQUEST)
        shutil.rmtree(self.dir, ignore_errors=True)   # last run's etcd data and node state
        self.logs.mkdir(parents=True)
        self.state = {"name": self.name, "subnet": str(chosen), "masters": masters, "nodes": nodes,
                      "token": uuid.uuid4().hex, "processes": []}
        self._save()

    def _hosts(self, role: str) -> list:
        return [h for h in self.plan.hosts() if h.role == role]

    def _daemon_argv(self, role: str, host) -> list:
        return [sys.executable, "-m", "gaia_cli", role, "run", "--config", str(self.config_path(role, host))]

    def config_path(self, role: str, host) -> pathlib.Path:
        """A master's rendered master.yaml; a node's node.yaml as `gaia node join` wrote it."""
        if role == "node":
            return self.host_dir(host) / "state" / "node.yaml"
        return self.host_dir(host) / f"{role}.yaml"

    # ---- enrolment ----

    def _enrol_nodes(self, deadline: float):
        """A one-time token per node (bound to its id), then `gaia node join` inside the node's
        own namespace, as on a new machine: its key is made there and never leaves it. At most
        JOINS_AT_ONCE joins run together (each is a Python process)."""
        hosts = self._hosts("node")
        client = self._client()
        try:
            tokens = {h.id: client.call("CreateJoinToken", master_pb2.JoinTokenRequest(node_id=h.id, ttl_seconds=600))
                      for h in hosts}
        finally:
            client.close()
        for i in range(0, len(hosts), JOINS_AT_ONCE):
            batch = [(host, self._join(host, tokens[host.id].token)) for host in hosts[i:i + JOINS_AT_ONCE]]
            for host, proc in batch:
                self._joined(host, proc, deadline)

    def _joined(self, host, proc: subprocess.Popen, deadline: float):
        try:
            code = proc.wait(max(1.0, min(JOIN_TIMEOUT, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            proc.kill()
            code = "timeout"
        if code != 0:
            log = self.logs / f"{host.id}-join.log"
            raise CliError(f"{host.id}: gaia node join failed ({code}); the end of {log}:\n{procs.log_tail(str(log))}")

    def _join(self, host, token: str) -> subprocess.Popen:
        argv = [sys.executable, "-m", "gaia_cli", "node", "join", "--cluster", self.name,
                "--ca", self.security.admin_tls["ca"], "--state-dir", str(self.host_dir(host) / "state"),
                "--id", host.id, "--config", str(self.host_dir(host) / "node.yaml"), "--retry-for", "20"]
        for address in self.plan.join_addresses:
            argv += ["--master", address]
        command = [sys.executable, "-m", "gaia_cli.lab.enter", links.netns_path(host.netns), *argv]
        env = dict(os.environ, GAIA_JOIN_TOKEN=token,     # not on the command line, where ps shows it
                   PYTHONPATH=os.pathsep.join(filter(None, [_REPO_ROOT, os.environ.get("PYTHONPATH")])))
        with open(self.logs / f"{host.id}-join.log", "ab") as log:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    cwd=self.host_dir(host), env=env, start_new_session=True)
        self.children.append(proc)
        return proc

    def _spawn(self, host, role: str, argv: list, env_extra: dict = None):
        """`argv` inside `host`'s namespaces (gaia_cli/lab/enter.py), in a session of its own,
        logging to logs/<host>-<role>.log; recorded at once."""
        log_path = self.logs / f"{host.id}-{role}.log"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_REPO_ROOT, os.environ.get("PYTHONPATH")])))
        env.pop("GAIA_CLUSTER", None)   # the configs name the cluster
        env[TOKEN_ENV] = self.state["token"]
        env.update(env_extra or {})
        if role == "etcd":
            del env[TOKEN_ENV]   # found through its record and its namespace: it must stop last
        command = [sys.executable, "-m", "gaia_cli.lab.enter", links.netns_path(host.netns), *argv]
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    cwd=self.host_dir(host), env=env, start_new_session=True)
        self.children.append(proc)
        self.state["processes"].append(dict(role=role, host=host.id, pid=proc.pid,
                                            started=procs.start_time(proc.pid), log=str(log_path)))
        self._save()
        return proc

    def _start_etcd(self, deadline: float):
        """Every member at once: each waits for a quorum of the others to bootstrap."""
        binary = find_etcd_binary()
        for host in self._hosts("master"):
            env = render.etcd_environment(self.host_dir(host) / "etcd.env")
            env["ETCD_UNSUPPORTED_ARCH"] = os.environ.get("ETCD_UNSUPPORTED_ARCH", "")
            self._spawn(host, "etcd", [binary], env)
        self._wait(deadline, self._etcd_ready, "the etcd cluster")

    def _etcd_ready(self):
        """Every member answers and names the same leader."""
        leaders = set()
        for endpoint in self.plan.etcd_endpoints:
            client = self.security.etcd([endpoint], timeout=1)
            try:
                leader = client.status().leader
                leaders.add(leader.name if leader else "")
            finally:
                client.close()
        return len(leaders) == 1 and "" not in leaders, f"members' leaders: {sorted(leaders)}"

    def _client(self) -> MasterClient:
        return self.client(retry_for=0.5, deadline=2.0)

    def client(self, **kwargs) -> MasterClient:
        """A client of the lab's cluster as its CLI is: user admin, the client's etcd login."""
        return self.security.client(self.plan.etcd_endpoints, **kwargs)

    def _masters_ready(self):
        client = self._client()
        try:
            found = len(client.masters())
            client.call("ListNodes", master_pb2.ListNodesRequest())   # a leader answers
        finally:
            client.close()
        return found == self.state["masters"], f"{found} of {self.state['masters']} masters campaigning"

    def _nodes_ready(self):
        client = self._client()
        try:
            listed = client.call("ListNodes", master_pb2.ListNodesRequest())
        finally:
            client.close()
        alive = {n.info.node_id for n in listed.nodes if n.alive}
        want = {h.id for h in self._hosts("node")}
        return want <= alive, f"{len(alive & want)} of {len(want)} nodes alive"

    def _wait(self, deadline: float, check, what: str):
        """Until check() returns (True, _); fails at `deadline` or when a process exits."""
        seen = ""
        while True:
            self._check_alive()
            try:
                done, seen = check()
                if done:
                    return
            except (GaiaError, *TRANSIENT) as e:
                seen = getattr(e, "message", None) or str(e) or type(e).__name__
            if time.monotonic() > deadline:
                raise CliError(f"lab {self.name!r} not ready: waiting for {what} ({seen}); logs in {self.logs}")
            time.sleep(0.3)

    def _check_alive(self):
        for r in self.records():
            if procs.find(r["pid"], r["started"]) is None:
                raise CliError(f"{r['role']} on {r['host']} (pid {r['pid']}) exited; "
                               f"the end of {r['log']}:\n{procs.log_tail(r['log'])}")

    def _register_client_config(self):
        doc = config.load_client_config()
        doc["clusters"][self.name] = self.security.client_entry(self.plan.etcd_endpoints)
        if not doc["current"]:
            doc["current"] = self.name
        config.save_client_config(doc)

    # ---- faults ----

    def partition(self, host_id: str, undo: bool = False):
        """Unplug `host_id` from the lab's bridge (or plug it back): nothing it sends arrives,
        nothing reaches it; its processes run on."""
        host = self._host(host_id)
        try:
            net.set_port(self.plan, host.port, up=undo)
        except (OSError, LookupError) as e:   # the lab's network is gone (a crash, or down)
            raise CliError(f"lab {self.name!r}: cannot reach {host.id}'s port on the bridge: {e}") from None

    def _host(self, host_id: str):
        try:
            return self.plan.host(host_id)
        except KeyError:
            known = ", ".join(h.id for h in self.plan.hosts())
            raise CliError(f"lab {self.name!r} has no host {host_id!r} (hosts: {known})", EXIT_NOT_FOUND) from None

    # ---- status ----

    def status(self) -> dict:
        plan = self.plan
        hosts = []
        for host in plan.hosts():
            running = {r["role"]: procs.find(r["pid"], r["started"]) is not None
                       for r in self.records() if r["host"] == host.id}
            hosts.append({"host": host.id, "address": host.ip, "netns": host.netns,
                          "connected": net.port_up(plan, host.port), "processes": running})
        return {"name": self.name, "subnet": str(plan.subnet), "host_link": plan.host_link,
                "host_address": plan.gateway, "switch_netns": plan.switch_netns,
                "etcd": plan.etcd_endpoints, "dir": str(self.dir), "hosts": hosts}

    # ---- down ----

    def down(self, grace: float = 5.0) -> list:
        """Stop every process the lab started (nodes and their containers first, etcd last, so
        the daemons reach etcd while they stop), then remove its namespaces and links.
        Returns what survived SIGKILL (normally nothing); the network stays then."""
        survivors = procs.stop(self._families("node") + self._started_by_daemons(), grace)
        survivors += procs.stop(self._families("master"), grace)
        # etcd's data goes with the lab: no need to wait out a leader's hand-over to members
        # that are stopping too (seconds, then SIGKILL anyway).
        survivors += procs.stop(self._families("etcd"), min(grace, 1.0))
        # Whatever runs in a lab namespace, recorded or not (started while `up` crashed).
        survivors += procs.stop(self._started_by_daemons() + self._in_namespaces(), 1.0)
        for child in self.children:
            child.poll()
        if survivors:
            return survivors
        self._remove_network()
        self._forget()
        return []

    def _families(self, role: str) -> list:
        found = {}
        for r in self.records(role):
            leader = procs.find(r["pid"], r["started"])
            if leader is not None:
                found.update({p.pid: p for p in procs.family(leader)})
        return list(found.values())

    def _started_by_daemons(self) -> list:
        """Containers, shims and AMs: in a lab node's cgroups, or carrying the lab's token
        (the masters carry it too, but stop after the nodes: they are left out here)."""
        found = {}
        for host in self._hosts("node"):
            found.update({p.pid: p for p in procs.cgroup_processes(render.cgroup_parent(self.plan, host))})
        if self.state.get("token"):
            for marked in procs.with_env(TOKEN_ENV, self.state["token"]):
                found.update({p.pid: p for p in procs.family(marked)})
        masters = {p.pid for p in self._families("master")}
        return [p for pid, p in found.items() if pid not in masters]

    def _in_namespaces(self) -> list:
        names = [self.plan.switch_netns] + [h.netns for h in self.plan.hosts()]
        return net.processes_in([net.netns_id(n) for n in names])

    def _remove_network(self):
        plan = self.plan
        for host in plan.hosts():
            if host.role == "node":
                self._sweep_containers(host)
                procs.remove_cgroups(render.cgroup_parent(plan, host))
            net.remove_netns(host.netns)
        net.remove_netns(plan.switch_netns)
        net.delete_host_link(plan.host_link)

    def _sweep_containers(self, host):
        """What a node made for its containers outside its own namespace: their named network
        namespaces (/run/netns) and address records (/run/gaia/ipam)."""
        path = self.host_dir(host) / "node.yaml"
        if not path.exists():
            return
        from gaia_node.network import hook
        cfg = config.load_daemon_config(config.NodeConfig, str(path))
        if net.netns_exists(host.netns):   # its veths, classes and nft rules live in there
            links.in_netns(links.netns_path(host.netns), lambda: hook.sweep(cfg))
        else:
            net.forget_containers(cfg)

    def _forget(self):
        """Remove state.json and the client config's entry for this lab (if still ours)."""
        doc = config.load_client_config()
        if self.state and doc["clusters"].get(self.name) == self.security.client_entry(self.plan.etcd_endpoints):
            del doc["clusters"][self.name]
            if doc["current"] == self.name:
                doc["current"] = ""
            config.save_client_config(doc)
        self.state_path.unlink(missing_ok=True)
        self.state = {}
