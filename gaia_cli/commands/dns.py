"""gaia dns run: a cluster's DNS server (gaia_dns/), imported only when run."""
import importlib

import click

from gaia_common import config
from gaia_common.config import ConfigError
from gaia_cli.commands.daemons import entry_point, load_config
from gaia_cli.errors import EXIT_BAD_REQUEST, CliError
from gaia_cli.context import pass_context


@click.command("run")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="YAML settings file (examples/dns.yaml).")
@click.option("--cluster", help="Cluster name (overrides gaia --cluster and the file).")
@click.option("--etcd", metavar="URL[,URL]", help="etcd endpoints.")
@click.option("--listen", metavar="HOST:PORT", help="UDP and TCP address (default 127.0.0.1:5353).")
@click.option("--zone", metavar="SUFFIX", help="Zone suffix: names are APP.CLUSTER.SUFFIX (default gaia).")
@click.option("--ttl", type=click.IntRange(min=0), metavar="SECONDS", help="TTL of every record (default 5).")
@click.option("--check-config", "check_only", is_flag=True,
              help="Check the settings, print `config OK`, start nothing.")
@pass_context
def dns_run(ctx, config_path, cluster, etcd, listen, zone, ttl, check_only):
    """Serve the cluster's service registry as DNS until SIGTERM: A/AAAA for APP.CLUSTER.gaia and
    INSTANCE.APP.CLUSTER.gaia, SRV for _PORT._tcp.APP.CLUSTER.gaia."""
    cfg = load_config(config.DnsConfig, config_path, {
        "cluster": cluster or ctx.cluster_option, "etcd": etcd, "listen": listen, "zone": zone, "ttl": ttl})
    if check_only:
        try:
            importlib.import_module("gaia_dns.main").check(cfg)   # the zone and sockets' settings
        except ConfigError as e:
            raise CliError(f"{config_path}: {e}" if config_path else str(e), EXIT_BAD_REQUEST) from None
        click.echo("config OK")
        return
    entry_point("gaia_dns.main")(cfg)
