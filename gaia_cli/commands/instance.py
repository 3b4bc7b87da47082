"""gaia instance stop|start|restart|delete APP ID[,ID...]: control chosen instances of an app.

The master records what the user wants; the app's AM carries it out (stopped instances stay
stopped, restarts are not charged to retry_times). delete removes the instances for good and
shrinks the app by as many.
"""
import click

from gaia_common.pb import master_pb2
from gaia_cli import output
from gaia_cli.commands.apps import id_list
from gaia_cli.commands.status import render_app
from gaia_cli.context import pass_context
from gaia_cli.errors import EXIT_BAD_REQUEST, CliError


def _command(action: int, verb: str, doc: str):
    @click.command(help=doc)
    @click.argument("app")
    @click.argument("ids", metavar="ID[,ID...]")
    @output.output_option
    @pass_context
    def command(ctx, app, ids, fmt):
        instance_ids = id_list(ids)
        if not instance_ids:
            raise CliError(f"name the instances to {verb}, e.g. 0,2", EXIT_BAD_REQUEST)
        request = master_pb2.InstanceControlRequest(name=app, action=action, instance_ids=instance_ids)
        output.emit(fmt, ctx.call("ControlInstances", request), render_app)
    return command


stop = _command(master_pb2.INSTANCE_ACTION_STOP, "stop",
                "Stop instances of APP and keep them stopped (until `gaia instance start`).")
start = _command(master_pb2.INSTANCE_ACTION_START, "start", "Start stopped instances of APP again.")
restart = _command(master_pb2.INSTANCE_ACTION_RESTART, "restart",
                   "Restart instances of APP (not charged to retry_times).")
delete = _command(master_pb2.INSTANCE_ACTION_DELETE, "delete",
                  "Remove instances of APP for good; the app shrinks by as many.")
