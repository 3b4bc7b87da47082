"""gaia events APP: what the AM and the master did to the app (restarts, moves, failures)."""
import click

from gaia_common.pb import master_pb2
from gaia_cli import output
from gaia_cli.context import pass_context

HEADERS = ["TIME", "KIND", "INSTANCE", "CAUSE", "CHARGED", "MESSAGE"]


def event_row(e) -> list:
    # CHARGED: whether it counts against retry_times (a platform cause never does)
    charged = "yes" if e.kind == "restart" and not e.platform else "-"
    return [output.timestamp(e.at), e.kind, e.instance_id or "-", e.cause or "-", charged, e.message or "-"]


def render_events(events) -> str:
    """Oldest first, as the master lists them."""
    return output.render_table(HEADERS, [event_row(e) for e in events])


@click.command()
@click.argument("app")
@click.option("--instance", "instance_id", default="", metavar="ID", help="Only this instance's events.")
@click.option("-n", "--limit", type=click.IntRange(1, 1000), default=100, show_default=True,
              help="The newest N events.")
@output.output_option
@pass_context
def events(ctx, app, instance_id, limit, fmt):
    """List APP's events, oldest first: restarts (with their cause, and whether they were charged
    to retry_times), moves, scaling, failures, AM restarts. The master keeps the newest 1000."""
    response = ctx.call("ListEvents", master_pb2.ListEventsRequest(name=app, limit=limit, instance_id=instance_id))
    output.emit(fmt, response, lambda r: render_events(r.events) if r.events else "no events")
