"""gaia logs APP[/INSTANCE]: an instance's stdout and stderr, through the master (never a node)."""
import os
import sys

import click

from gaia_common.pb import master_pb2
from gaia_cli.context import pass_context

# The master streams for as long as the container runs; no deadline on a follow.
SNAPSHOT_DEADLINE = 60.0


def split_target(target: str):
    """APP or APP/INSTANCE -> (app, instance_id); '' for the app's first instance."""
    app, _, instance = target.partition("/")
    if not app or "/" in instance:
        raise click.BadParameter(f"{target!r}: expected APP or APP/INSTANCE", param_hint="APP[/INSTANCE]")
    return app, instance


@click.command()
@click.argument("target", metavar="APP[/INSTANCE]")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output until the container ends.")
@click.option("--tail", "tail_bytes", type=click.IntRange(min=0), default=0, metavar="BYTES",
              help="Only the last BYTES of each stream (default: everything kept).")
@pass_context
def logs(ctx, target, follow, tail_bytes):
    """Print an instance's stdout and stderr (its latest container), each to the same stream
    here. INSTANCE defaults to the app's first instance; `am` is its ApplicationMaster."""
    app, instance = split_target(target)
    request = master_pb2.AppLogsRequest(app=app, instance_id=instance, follow=follow, tail_bytes=tail_bytes)
    outputs = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
    try:
        for chunk in ctx.client().stream("Logs", request, timeout=None if follow else SNAPSHOT_DEADLINE):
            out = outputs.get(chunk.stream, sys.stdout.buffer)
            out.write(chunk.data)
            out.flush()
    except KeyboardInterrupt:  # the usual way to end a follow
        pass
    except BrokenPipeError:    # `gaia logs app | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
