"""gaia dev: a whole cluster on this machine in one command; gaia dev down stops it."""
import signal
import time

import click

from gaia_cli.commands.submit import read_spec, submit_spec
from gaia_cli.devcluster import DEFAULT_NAME, DevCluster
from gaia_cli import procs
from gaia_cli.errors import EXIT_NOT_FOUND, CliError


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _banner(cluster: DevCluster, detach: bool) -> str:
    n = cluster.name
    stop = f"gaia dev down --name {n}" + ("" if detach else "   (or Ctrl-C here)")
    return (f"dev cluster {n!r} is up: {cluster.state['masters']} master(s), "
            f"{cluster.state['nodes']} node(s)\n"
            f"  cluster: {n}\n"
            f"  etcd:    {cluster.endpoint}\n"
            f"  tls:     {_tls_line(cluster)}\n"
            f"  files:   {cluster.dir} (logs/, state.json)\n"
            f"try:\n"
            f"  gaia --cluster {n} nodes\n"
            f"  gaia --cluster {n} submit examples/hello.yaml\n"
            f"  gaia --cluster {n} status hello\n"
            f"stop:\n"
            f"  {stop}")


def _tls_line(cluster: DevCluster) -> str:
    files = cluster.state.get("tls")
    if not files:
        return "off (plaintext; every caller is the cluster admin)"
    return f"mutual TLS, CA {files['ca']}; you are user admin ({files['cert']})"


def _submit(cluster: DevCluster, spec) -> str:
    client = cluster.client()
    try:
        return submit_spec(client, spec).app_id
    finally:
        client.close()


def _tear_down(cluster: DevCluster, grace: float = 5.0):
    with procs.sigint_ignored():
        survivors = cluster.stop(grace)
    if survivors:
        raise CliError(f"could not stop pids {', '.join(str(p.pid) for p in survivors)}; "
                       f"state kept in {cluster.state_path}")
    cluster.forget()


def _watch(cluster: DevCluster):
    """Until Ctrl-C (or SIGTERM, or `gaia dev down` from elsewhere); reports daemons that exit."""
    reported = set()
    while cluster.state_path.exists():
        for p in cluster.exited():
            if p["pid"] not in reported:
                reported.add(p["pid"])
                click.echo(f"warning: {p.get('label', p['role'])} (pid {p['pid']}) exited; see {p['log']}", err=True)
        time.sleep(1.0)
    click.echo(f"dev cluster {cluster.name!r} was stopped elsewhere", err=True)


@click.group(invoke_without_command=True)
@click.option("--name", default=DEFAULT_NAME, show_default=True, help="Cluster name.")
@click.option("--masters", type=click.IntRange(1, 9), default=3, show_default=True, help="Master replicas.")
@click.option("--nodes", type=click.IntRange(0, 100), default=2, show_default=True, help="Node managers.")
@click.option("--detach", is_flag=True, help="Return once the cluster answers; stop it with `gaia dev down`.")
@click.option("--example", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="Submit this app spec once the cluster is up.")
@click.option("--timeout", type=float, default=60.0, show_default=True, metavar="SECONDS",
              help="How long to wait for a leader and every node.")
@click.option("--no-tls", "no_tls", is_flag=True,
              help="Plaintext gRPC, no certificates (every caller is the cluster admin).")
@click.pass_context
def dev(click_ctx, name, masters, nodes, detach, example, timeout, no_tls):
    """Run a whole cluster on this machine.

    etcd, the masters and the nodes run as processes; their files are in
    $GAIA_DEV_HOME/NAME (default ~/.gaia/dev/NAME). See docs/cli.md.
    """
    if click_ctx.invoked_subcommand:
        return
    spec = read_spec(example) if example else None  # a bad spec fails before anything starts
    cluster = DevCluster(name)
    cluster.ensure_not_running()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        cluster.start(masters, nodes, timeout=timeout, tls=not no_tls)
        cluster.wait_ready(timeout)
        if spec is not None:
            click.echo(f"submitted {spec.name}: {_submit(cluster, spec)}")
        click.echo(_banner(cluster, detach))
        if detach:
            return
        _watch(cluster)
    except BaseException as e:  # failed to come up, or Ctrl-C / SIGTERM: leave nothing running
        if isinstance(e, KeyboardInterrupt):
            click.echo(f"\nstopping dev cluster {name!r}...", err=True)
        if cluster.state_path.exists():
            _tear_down(cluster)
        if not isinstance(e, KeyboardInterrupt):
            raise
    finally:
        signal.signal(signal.SIGTERM, previous)


@click.command()
@click.option("--name", help=f"Cluster name (default: gaia dev --name, else {DEFAULT_NAME}).")
@click.option("--grace", type=float, default=5.0, show_default=True, metavar="SECONDS",
              help="Time between SIGTERM and SIGKILL.")
@click.pass_context
def down(click_ctx, name, grace):
    """Stop a local cluster: its daemons, their containers, its etcd."""
    cluster = DevCluster(name or click_ctx.parent.params.get("name") or DEFAULT_NAME)
    if not cluster.load():
        raise CliError(f"no dev cluster {cluster.name!r} is recorded in {cluster.dir}", EXIT_NOT_FOUND)
    _tear_down(cluster, grace)
    click.echo(f"dev cluster {cluster.name!r} is down")
