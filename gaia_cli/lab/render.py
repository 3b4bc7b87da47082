"""A lab host's configs, rendered by the Vagrant lab's own provisioning step
(vagrant/provision/configure.sh over vagrant/templates): one source for both labs.

The settings are the ones the Vagrantfile passes a machine (GAIA_*), with the lab's paths
in place of the VM's (/var/lib/..., /opt/gaia/venv).
"""
import os
import pathlib
import shlex
import subprocess
import sys

from gaia_cli.errors import CliError
from gaia_cli.lab.plan import JOIN_PORT, MASTER_PORT, NODE_PORT, Host, LabPlan

VAGRANT = pathlib.Path(__file__).resolve().parents[2] / "vagrant"
CONFIGURE = VAGRANT / "provision" / "configure.sh"


def settings(plan: LabPlan, host: Host, host_dir: pathlib.Path) -> dict:
    """The GAIA_* values the Vagrantfile would hand this machine, with lab paths."""
    env = {"GAIA_CLUSTER": plan.name, "GAIA_ETCD_ENDPOINTS": ",".join(plan.etcd_endpoints),
           "GAIA_PYTHON": sys.executable, "GAIA_LAB": "netns", "GAIA_ID": host.id, "GAIA_IP": host.ip}
    if host.role == "master":
        env.update(GAIA_PORT=str(MASTER_PORT), GAIA_ETCD_INITIAL_CLUSTER=plan.etcd_initial_cluster,
                   GAIA_ETCD_DATA_DIR=str(host_dir / "etcd"), GAIA_JOIN_PORT=str(JOIN_PORT),
                   GAIA_TLS_DIR=str(tls_dir(host_dir)), GAIA_SECRETS_DIR=str(secrets_dir(host_dir)))
    else:
        env.update(GAIA_PORT=str(NODE_PORT), GAIA_STATE_DIR=str(host_dir / "state"),
                   GAIA_CGROUP_PARENT=cgroup_parent(plan, host))
    return env


def tls_dir(host_dir: pathlib.Path) -> pathlib.Path:
    """A master's certificates: ca.crt, ca.key, master.crt/.key, etcd.crt/.key (the VM's /etc/gaia/tls)."""
    return host_dir / "tls"


def secrets_dir(host_dir: pathlib.Path) -> pathlib.Path:
    """A master's etcd password files (the VM's /etc/gaia/etcd)."""
    return host_dir / "secrets"


def cgroup_parent(plan: LabPlan, host: Host) -> str:
    """Cgroups are not namespaced: each lab node gets a parent of its own."""
    return f"gaialab-{plan.name}-{host.id}"


def configure(plan: LabPlan, host: Host, host_dir: pathlib.Path):
    """Run configure.sh for `host` into `host_dir` (etcd.env and master.yaml, or node.yaml)."""
    if not CONFIGURE.exists():
        raise CliError(f"{CONFIGURE} is missing: gaia lab runs from a checkout of the repository "
                       f"(an editable install), whose vagrant/ it shares")
    host_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, **settings(plan, host, host_dir))
    env.pop("TEMPLATES", None)  # the templates beside the script, never a caller's
    out = subprocess.run(["bash", str(CONFIGURE), host.role, str(host_dir)], env=env,
                         capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise CliError(f"{CONFIGURE.name} {host.role} for {host.id} failed: {out.stderr.strip()}")


def etcd_environment(path: pathlib.Path) -> dict:
    """The ETCD_* settings of a rendered etcd.env (KEY="value" lines, as /etc/default/etcd):
    the lab's etcd reads them from its environment, as Debian's unit does from that file."""
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        env[key.strip()] = " ".join(shlex.split(value))
    return env
