"""gaia list / scale / kill: the application table."""
import click

from gaia_common.pb import master_pb2
from gaia_cli import output
from gaia_cli.commands.status import running_count
from gaia_cli.context import pass_context


def render_apps(response: master_pb2.ListAppsResponse) -> str:
    rows = [[s.app.spec.name, s.app.app_id, output.app_state(s.app.state),
             f"{running_count(s)}/{s.app.spec.instances}", s.app.spec.pool,
             output.age(s.app.created_unix_ms / 1000)]
            for s in sorted(response.apps, key=lambda s: s.app.spec.name)]
    return output.render_table(["NAME", "ID", "STATE", "RUNNING", "POOL", "AGE"], rows)


def _summary(status: master_pb2.AppStatus) -> str:
    return (f"{status.app.spec.name}: {output.app_state(status.app.state)}, "
            f"{running_count(status)}/{status.app.spec.instances} running")


@click.command("list")
@output.output_option
@pass_context
def list_apps(ctx, fmt):
    """List the cluster's applications."""
    output.emit(fmt, ctx.call("ListApps", master_pb2.ListAppsRequest()), render_apps)


@click.command()
@click.argument("app")
@click.argument("instances", type=click.IntRange(min=0))
@click.option("--instances", "instance_ids", metavar="ID[,ID...]", default="",
              help="Scale down by removing these instances (as many as the app shrinks by); "
                   "default: the newest.")
@output.output_option
@pass_context
def scale(ctx, app, instances, instance_ids, fmt):
    """Set the number of instances APP should run."""
    request = master_pb2.ScaleAppRequest(name=app, instances=instances, instance_ids=id_list(instance_ids))
    output.emit(fmt, ctx.call("ScaleApp", request), _summary)


def id_list(text: str) -> list:
    """"3,7" -> ["3", "7"]: instance ids as `gaia status` shows them."""
    return [i.strip() for i in text.split(",") if i.strip()]


@click.command()
@click.argument("app")
@output.output_option
@pass_context
def kill(ctx, app, fmt):
    """Stop every instance of APP and its AM."""
    output.emit(fmt, ctx.call("KillApp", master_pb2.KillAppRequest(name=app)), _summary)
