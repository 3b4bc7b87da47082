"""gaia resolve APP[/PORT]: host:port of every running instance, from the service registry;
with --watch, a line for every change as it happens (gaia_common/discovery.py)."""
import json
import os
import sys

import click

from gaia_common.discovery import Resolver
from gaia_common.pb import master_pb2
from gaia_cli import output
from gaia_cli.context import pass_context


def render_endpoints(response: master_pb2.ResolveResponse, port: str) -> str:
    rows = [[e.instance_id, e.node_id or "-", output.endpoint_address(e.host, e.ports, port)]
            for e in sorted(response.endpoints, key=lambda e: (len(e.instance_id), e.instance_id))]
    return output.render_table(["INSTANCE", "NODE", "ADDRESS"], rows)


def change_lines(change, port: str) -> list:
    """`REVISION + INSTANCE NODE ADDRESS` for an added (or changed) endpoint, `REVISION - INSTANCE`
    for one gone."""
    lines = [f"{change.revision} + {e.instance_id} {e.node_id or '-'} {output.endpoint_address(e.host, e.ports, port)}"
             for e in change.added]
    return lines + [f"{change.revision} - {instance_id}" for instance_id in change.removed]


def change_json(change) -> str:
    return json.dumps({"revision": change.revision, "endpoints": [output.to_dict(e) for e in change.endpoints],
                       "added": [output.to_dict(e) for e in change.added], "removed": change.removed})


@click.command()
@click.argument("target", metavar="APP[/PORT]")
@click.option("-w", "--watch", is_flag=True, help="Then print every change as it happens (until Ctrl-C).")
@output.output_option
@pass_context
def resolve(ctx, target, watch, fmt):
    """Where APP's running instances listen. With /PORT, only that port."""
    app, _, port = target.partition("/")
    if not app:
        raise click.BadParameter("expected APP or APP/PORT", param_hint="APP[/PORT]")
    if watch:
        return follow(ctx, app, port, fmt)
    response = ctx.call("Resolve", master_pb2.ResolveRequest(app=app, port=port))
    output.emit(fmt, response, lambda r: render_endpoints(r, port))


def follow(ctx, app: str, port: str, fmt: str):
    resolver = Resolver(ctx.cluster_name(), client=ctx.client())
    try:
        for change in resolver.watch(app, port or None):
            for line in [change_json(change)] if fmt == "json" else change_lines(change, port):
                click.echo(line)    # flushed: a reader of the pipe sees each change at once
    except KeyboardInterrupt:      # the usual way to end a watch
        pass
    except BrokenPipeError:        # `gaia resolve app --watch | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        resolver.close()
