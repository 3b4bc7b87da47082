"""gaia lab up / down / status / partition: the Vagrant lab's topology in network namespaces."""
import signal

import click

from gaia_cli import procs
from gaia_cli.errors import EXIT_NOT_FOUND, CliError
from gaia_cli.lab.plan import DEFAULT_NAME
from gaia_cli.output import emit, output_option, render_table

NAME = click.option("--name", default=DEFAULT_NAME, show_default=True, help="Lab (and cluster) name.")


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _lab(name: str):
    """Imported here: the lab uses the node's network code, which other commands never load."""
    from gaia_cli.lab.lab import Lab
    return Lab(name)


def _recorded(name: str):
    lab = _lab(name)
    if not lab.load():
        raise CliError(f"no lab {name!r} is recorded in {lab.dir}", EXIT_NOT_FOUND)
    return lab


def _tear_down(lab, grace: float = 5.0):
    with procs.sigint_ignored():
        survivors = lab.down(grace)
    if survivors:
        raise CliError(f"could not stop pids {', '.join(str(p.pid) for p in survivors)}; "
                       f"namespaces and state kept in {lab.state_path}")


def _banner(lab) -> str:
    s, n = lab.state, lab.name
    return (f"lab {n!r} is up: {s['masters']} etcd member(s) and master(s), {s['nodes']} node(s) "
            f"on {s['subnet']}\n"
            f"  cluster: {n}   etcd: {','.join(lab.plan.etcd_endpoints)}\n"
            f"  TLS on: the CLI is user admin ({lab.security.pki}/admin.crt); nodes enrolled with tokens\n"
            f"  files:   {lab.dir} (hosts/, logs/, state.json)\n"
            f"try:\n"
            f"  gaia --cluster {n} nodes\n"
            f"  gaia lab status --name {n}\n"
            f"  gaia lab partition gaia-node-1 --name {n}      (--undo to heal)\n"
            f"stop:\n"
            f"  gaia lab down --name {n}")


@click.command()
@NAME
@click.option("--nodes", type=click.IntRange(0, 150), default=3, show_default=True, help="Node managers.")
@click.option("--masters", type=click.IntRange(1, 9), default=3, show_default=True,
              help="Hosts with an etcd member and a master replica (use an odd number).")
@click.option("--subnet", metavar="CIDR", help="The lab's network (default: an unused /24 of 10.250.0.0/16).")
@click.option("--timeout", type=float, default=90.0, show_default=True, metavar="SECONDS",
              help="How long to wait for etcd, a leader and every node.")
def up(name, nodes, masters, subnet, timeout):
    """Bring a lab up: etcd members, masters and node managers, each host a network namespace.

    Needs root. Returns once a leader lists every node alive; the cluster is added to the
    client config under NAME. See README "A lab in network namespaces".
    """
    lab = _lab(name)
    lab.ensure_not_running()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        lab.up(nodes=nodes, masters=masters, subnet=subnet, timeout=timeout)
        click.echo(_banner(lab))
    except BaseException as e:  # failed to come up, or Ctrl-C / SIGTERM: leave nothing behind
        if lab.state:
            click.echo(f"lab {name!r} did not come up; removing what was made", err=True)
            _tear_down(lab)
        if not isinstance(e, KeyboardInterrupt):
            raise
    finally:
        signal.signal(signal.SIGTERM, previous)


@click.command()
@NAME
@click.option("--grace", type=float, default=5.0, show_default=True, metavar="SECONDS",
              help="Time between SIGTERM and SIGKILL.")
def down(name, grace):
    """Remove a lab: every process, namespace and link it made, and its client config entry."""
    lab = _recorded(name)
    _tear_down(lab, grace)
    click.echo(f"lab {name!r} is down")


def _status_table(doc: dict) -> str:
    rows = [(h["host"], h["address"], "yes" if h["connected"] else "NO (partitioned)",
             " ".join(f"{role}:{'up' if ok else 'EXITED'}" for role, ok in sorted(h["processes"].items())))
            for h in doc["hosts"]]
    head = (f"lab {doc['name']}: {doc['subnet']}, this host {doc['host_address']} on {doc['host_link']}; "
            f"files in {doc['dir']}")
    return head + "\n" + render_table(["HOST", "ADDRESS", "CONNECTED", "PROCESSES"], rows)


@click.command()
@NAME
@output_option
def status(name, fmt):
    """A lab's hosts: address, whether plugged into the bridge, and their processes."""
    emit(fmt, _recorded(name).status(), _status_table)


@click.command()
@click.argument("host")
@NAME
@click.option("--undo", is_flag=True, help="Plug the host back in.")
def partition(host, name, undo):
    """Cut HOST (gaia-node-1, gaia-master-2, ...) off the lab's network, or plug it back in.

    Its link's end on the bridge goes down: nothing it sends arrives anywhere, and its
    processes run on, as on a machine whose cable was pulled."""
    _recorded(name).partition(host, undo=undo)
    click.echo(f"{host} is {'connected' if undo else 'partitioned'}")
