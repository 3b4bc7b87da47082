"""gaia master run / gaia node run / gaia am: the daemons, started from the one `gaia` command.

Their packages are imported only here, when asked for, so every other command starts fast
and keeps working when a daemon's package is missing or broken.

Settings come from --config (YAML, see gaia_common.config), then the flags given here; the
cluster from `run --cluster`, else `gaia --cluster`, else the file.
"""
import importlib
import os

import click

from gaia_common import config
from gaia_common.keys import valid_cluster_name
from gaia_cli.context import CLUSTER_ENV, pass_context
from gaia_cli.errors import EXIT_BAD_REQUEST, CliError


def entry_point(module: str):
    """`module.run`, or a CliError saying why it cannot be had."""
    try:
        mod = importlib.import_module(module)
    except Exception as e:  # a missing package or a broken one: say which, not a traceback
        raise CliError(f"cannot load {module}: {type(e).__name__}: {e}") from None
    run = getattr(mod, "run", None)
    if not callable(run):
        raise CliError(f"{module} has no run()")
    return run


def load_config(cls, path, overrides: dict):
    cfg = config.load_daemon_config(cls, path, overrides)
    if not valid_cluster_name(cfg.cluster):
        raise CliError(f"cluster name {cfg.cluster!r}: use lowercase letters, digits and '-'", EXIT_BAD_REQUEST)
    from gaia_cli import config_check   # here: it loads prometheus_client, which other commands never need
    try:
        config_check.check(cfg)         # every setting, before anything starts
    except config.ConfigError as e:
        raise CliError(f"{path}: {e}" if path else str(e), EXIT_BAD_REQUEST) from None
    return cfg


def checked(check_only: bool) -> bool:
    """--check-config: the settings passed load_config; say so and start nothing."""
    if check_only:
        click.echo("config OK")
    return check_only


def _labels(pairs) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--label {pair!r}: expected KEY=VALUE", EXIT_BAD_REQUEST)
        out[key] = value
    return out


def daemon_options(command):
    """The flags both daemons share; each overrides the same setting of --config."""
    for option in reversed([
        click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
                     help="YAML settings file."),
        click.option("--cluster", help="Cluster name (overrides gaia --cluster and the file)."),
        click.option("--etcd", metavar="URL[,URL]", help="etcd endpoints."),
        click.option("--listen", metavar="HOST:PORT", help="gRPC listen address (port 0: any free)."),
        click.option("--advertise", metavar="HOST:PORT", help="Address others dial (default: the bound one)."),
        click.option("--id", "daemon_id", help="This replica's / node's id."),
        click.option("--check-config", "check_only", is_flag=True,
                     help="Check the settings (file and flags), print 'config OK' and exit; start nothing."),
    ]):
        command = option(command)
    return command


@click.command("run")
@daemon_options
@pass_context
def master_run(ctx, config_path, cluster, etcd, listen, advertise, daemon_id, check_only):
    """Run a master replica until SIGTERM."""
    cfg = load_config(config.MasterConfig, config_path, {
        "cluster": cluster or ctx.cluster_option, "etcd": etcd, "listen": listen,
        "advertise": advertise, "id": daemon_id})
    if checked(check_only):
        return
    entry_point("gaia_master.main")(cfg)


@click.command("run")
@daemon_options
@click.option("--host-ip", help="Address instances are reachable at.")
@click.option("--state-dir", type=click.Path(file_okay=False), help="Where the node keeps its state.")
@click.option("--cgroup-parent", help="cgroup under which containers are placed.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE",
              help="Node label (repeatable; added to the file's). With --hollow, {i}, {i%N} and {i/N} "
                   "in a value become the hollow node's index, e.g. rack=r{i/40}.")
@click.option("--hollow", type=click.IntRange(min=1), metavar="N",
              help="Run N simulated nodes in this process instead (ids <id>-hollow-<i>): they register, "
                   "heartbeat and report containers running without starting anything.")
@pass_context
def node_run(ctx, config_path, cluster, etcd, listen, advertise, daemon_id, check_only, host_ip, state_dir,
             cgroup_parent, labels, hollow):
    """Run a node manager (or N hollow ones) until SIGTERM."""
    cfg = load_config(config.NodeConfig, config_path, {
        "cluster": cluster or ctx.cluster_option, "etcd": etcd, "listen": listen,
        "advertise": advertise, "id": daemon_id, "host_ip": host_ip, "state_dir": state_dir,
        "cgroup_parent": cgroup_parent})
    cfg.labels.update(_labels(labels))
    if checked(check_only):
        return
    if hollow:
        run = entry_point("gaia_node.hollow")
        return run(cfg, hollow)
    entry_point("gaia_node.main")(cfg)


@click.command()
@click.option("--app-id", required=True, help="The application this AM manages.")
@click.option("--attempt", required=True, type=click.IntRange(min=0), help="This AM's attempt number.")
@pass_context
def am(ctx, app_id, attempt):
    """Run an application's ApplicationMaster. A node starts it; not for use by hand."""
    cluster = ctx.cluster_option or os.environ.get(CLUSTER_ENV)
    if not cluster:
        raise CliError(f"no cluster: the AM needs ${CLUSTER_ENV} (or gaia --cluster)", EXIT_BAD_REQUEST)
    entry_point("gaia_am.main")(app_id, attempt, cluster)
