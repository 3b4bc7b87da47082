"""gaia masters: the master replicas, which one leads, its epoch and address.

Read from etcd (the masters' keys only), so it works while no leader answers gRPC.
JSON: {"cluster": NAME, "masters": [MasterInfo, ...]}, leader first.
"""
import click

from gaia_cli import output
from gaia_cli.context import pass_context


def render_masters(cluster: str, masters) -> str:
    if not masters:
        return f"no master replica is registered for cluster {cluster!r}"
    rows = [[m.id, m.address, m.epoch, "yes" if m.leader else "no", output.age(m.started_at)]
            for m in masters]
    return output.render_table(["ID", "ADDRESS", "EPOCH", "LEADER", "UP"], rows)


@click.command()
@output.output_option
@pass_context
def masters(ctx, fmt):
    """List the master replicas and which one leads.

    Read from etcd, leader first; the epoch is the leader's fencing token.
    """
    cluster, found = ctx.cluster_name(), ctx.client().masters()
    doc = {"cluster": cluster, "masters": [output.to_dict(m) for m in found]}
    output.emit(fmt, doc, lambda _: render_masters(cluster, found))
