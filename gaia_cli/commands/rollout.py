"""gaia update / rollback: roll an application to a new spec version, or back to the last one."""
import click

from gaia_common.pb import master_pb2
from gaia_cli import output
from gaia_cli.commands.status import rollout_line
from gaia_cli.commands.submit import read_spec
from gaia_cli.context import pass_context


def _summary(status: master_pb2.AppStatus) -> str:
    app = status.app
    return f"{app.spec.name}: version {app.version or 1}; rollout {rollout_line(app)}"


def _ids(text: str) -> list:
    """"3,7" -> ["3", "7"]: instance ids as `gaia status` shows them."""
    return [i.strip() for i in text.split(",") if i.strip()]


@click.command()
@click.argument("app")
@click.argument("spec_file", metavar="FILE")
@click.option("--instances", "instance_ids", metavar="ID[,ID...]", default="",
              help="Only these instances (a canary): the app's current version stays what new instances run.")
@output.output_option
@pass_context
def update(ctx, app, spec_file, instance_ids, fmt):
    """Roll APP to the spec in FILE (YAML; '-' reads stdin): the AM restarts its instances on the
    new version a batch at a time (the spec's `update` says how many, and how long each batch
    must stay healthy), and rolls them back by itself when a batch fails. Name, pool, gang, kind
    and the resource request may not change; the instance count stays (see `gaia scale`)."""
    spec = read_spec(spec_file)
    request = master_pb2.UpdateAppRequest(name=app, spec=spec, instance_ids=_ids(instance_ids))
    output.emit(fmt, ctx.call("UpdateApp", request), _summary)


@click.command()
@click.argument("app")
@output.output_option
@pass_context
def rollback(ctx, app, fmt):
    """Make APP's previous version current again and roll every instance back to it."""
    output.emit(fmt, ctx.call("RollbackApp", master_pb2.RollbackAppRequest(name=app)), _summary)
