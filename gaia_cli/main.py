"""The `gaia` command: every subcommand is registered here, and only here.

Each command lives in a module of its own under gaia_cli/commands/; COMMANDS maps the words a
user types to it. A two-word path ("node show") puts the command in the group named by the
first word, made here unless a module defines that group itself (`gaia dev` is a command and
a group).
"""
import click

from gaia_common import __version__
from gaia_cli.commands import (apps, bench, cluster, daemons, dev, logs, masters, nodes, pool, resolve,
                               status, submit)
from gaia_cli.commands import instance
from gaia_cli.commands import rollout
from gaia_cli.commands import events
from gaia_cli.commands import lab
from gaia_cli.commands import dns
from gaia_cli.commands import ca, enrol
from gaia_cli.commands import node_gpus
from gaia_cli.commands import tenant
from gaia_cli.context import Context
from gaia_cli.errors import translate

COMMANDS = [
    # applications
    ("submit", submit.submit),
    ("status", status.status),
    ("list", apps.list_apps),
    ("scale", apps.scale),
    ("kill", apps.kill),
    ("resolve", resolve.resolve),
    ("logs", logs.logs),
    ("events", events.events),
    ("update", rollout.update),
    ("rollback", rollout.rollback),
    ("instance stop", instance.stop),
    ("instance start", instance.start),
    ("instance restart", instance.restart),
    ("instance delete", instance.delete),
    # the cluster's machinery
    ("nodes", nodes.list_nodes),
    ("node show", nodes.show),
    ("node drain", nodes.drain),
    ("node token create", enrol.token_create),
    ("node join", enrol.join),
    ("etcd setup", enrol.etcd_setup),
    ("ca init", ca.init),
    ("ca issue", ca.issue),
    ("node gpus", node_gpus.gpus),
    ("masters", masters.masters),
    ("pool create", pool.create),
    ("pool update", pool.update),
    ("pool delete", pool.delete),
    ("pool list", pool.list_pools),
    # who may do what: tenants, users, ACL policies
    ("tenant create", tenant.tenant_create),
    ("tenant delete", tenant.tenant_delete),
    ("tenant list", tenant.tenant_list),
    ("user create", tenant.user_create),
    ("user delete", tenant.user_delete),
    ("user list", tenant.user_list),
    ("acl set", tenant.acl_set),
    ("acl delete", tenant.acl_delete),
    ("acl list", tenant.acl_list),
    ("whoami", tenant.whoami),
    # client config: cluster names
    ("cluster add", cluster.add),
    ("cluster list", cluster.list_clusters),
    ("cluster use", cluster.use),
    ("cluster remove", cluster.remove),
    # a local cluster
    ("dev", dev.dev),
    ("dev down", dev.down),
    # a lab of network namespaces
    ("lab up", lab.up),
    ("lab down", lab.down),
    ("lab status", lab.status),
    ("lab partition", lab.partition),
    # daemons
    ("master run", daemons.master_run),
    ("node run", daemons.node_run),
    ("am", daemons.am),
    ("dns run", dns.dns_run),
    # benchmarks
    ("bench failover", bench.failover),
    ("bench node", bench.node),
    ("bench scheduler", bench.scheduler),
    ("bench recovery", bench.recovery),
    ("bench dns", bench.dns),
    ("bench vcuda", bench.vcuda),
    ("bench tls", bench.tls),
]

GROUP_HELP = {
    "node": "One node: show it, its GPUs, drain it, or run a node manager.",
    "master": "Run a master replica.",
    "instance": "Control chosen instances of an application: stop, start, restart, delete.",
    "pool": "Resource pools: a tree by path (ads/ranking/online) with weights and quotas.",
    "tenant": "Tenants: the owners of pool subtrees (cluster admins manage them).",
    "user": "Users of a tenant, by certificate name or bearer token.",
    "acl": "ACL policies: capabilities of a user or tenant on a pool and its subtree.",
    "cluster": "Cluster names in the client config. The file is ~/.gaia/config.yaml, or $GAIA_CONFIG.",
    "bench": "Benchmarks. Each runs on a private local cluster and prints its figures.",
    "dns": "A cluster's DNS server: its service registry as A, AAAA and SRV records.",
    "token": "One-time bootstrap tokens for `gaia node join`.",
    "etcd": "The cluster's etcd: roles, users and authentication (RBAC).",
    "ca": "The cluster's certificate authority: make it, issue certificates from it.",
    "lab": "The Vagrant lab's topology on this machine: every host a network namespace (root).",
}


class GaiaGroup(click.Group):
    """The top group: turns the errors the CLI expects into `error: ...` and an exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as e:
            err = translate(e)
            if err is None:
                raise
            raise err from None


@click.group(cls=GaiaGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--cluster", metavar="NAME",
              help="Cluster to talk to (default: $GAIA_CLUSTER, then the client config's current).")
@click.option("--retry-for", type=float, default=30.0, show_default=True, metavar="SECONDS",
              help="How long to keep retrying while no master leads.")
@click.version_option(version=__version__, prog_name="gaia")
@click.pass_context
def cli(ctx, cluster, retry_for):
    """Gaia: submit applications to a cluster by its name, and run the cluster itself."""
    ctx.obj = Context(cluster, retry_for)
    ctx.call_on_close(ctx.obj.close)


def _register(root: click.Group, commands):
    for path, command in commands:
        *parents, name = path.split()
        group = root
        for word in parents:
            sub = group.commands.get(word)
            if sub is None:
                sub = click.Group(word, help=GROUP_HELP.get(word))
                group.add_command(sub)
            group = sub
        group.add_command(command, name)


_register(cli, COMMANDS)
