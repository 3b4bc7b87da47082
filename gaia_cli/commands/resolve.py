"""gaia resolve APP[/PORT]: host:port of every running instance, from the service registry."""
import click

from gaia_common.pb import master_pb2
from gaia_cli import output
from gaia_cli.context import pass_context


def render_endpoints(response: master_pb2.ResolveResponse, port: str) -> str:
    rows = [[e.instance_id, e.node_id or "-", output.endpoint_address(e.host, e.ports, port)]
            for e in sorted(response.endpoints, key=lambda e: (len(e.instance_id), e.instance_id))]
    return output.render_table(["INSTANCE", "NODE", "ADDRESS"], rows)


@click.command()
@click.argument("target", metavar="APP[/PORT]")
@output.output_option
@pass_context
def resolve(ctx, target, fmt):
    """Where APP's running instances listen. With /PORT, only that port."""
    app, _, port = target.partition("/")
    if not app:
        raise click.BadParameter("expected APP or APP/PORT", param_hint="APP[/PORT]")
    response = ctx.call("Resolve", master_pb2.ResolveRequest(app=app, port=port))
    output.emit(fmt, response, lambda r: render_endpoints(r, port))
