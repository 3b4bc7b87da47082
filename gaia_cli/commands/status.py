"""gaia status APP: the application, its AM and every instance: node, state, address."""
import click

from gaia_common.pb import master_pb2, types_pb2
from gaia_cli import output
from gaia_cli.context import pass_context


def running_count(status: master_pb2.AppStatus) -> int:
    return sum(1 for v in status.instances if v.status.state == types_pb2.CONTAINER_STATE_RUNNING)


def instance_row(view: master_pb2.InstanceView):
    alloc, st = view.allocation, view.status
    has_status = view.HasField("status")
    return [alloc.instance_id or st.instance_id or "-",
            alloc.node_id or st.node_id or "-",
            output.container_state(st.state) if has_status else "pending",
            output.endpoint_address(st.host_ip, st.host_ports) if has_status and st.host_ip else "-",
            st.message or "-"]


def render_app(status: master_pb2.AppStatus) -> str:
    app, spec = status.app, status.app.spec
    details = output.render_fields([
        ("Name", spec.name),
        ("ID", app.app_id),
        ("State", output.app_state(app.state)),
        ("Kind", output.enum_name(types_pb2.AppKind, spec.kind)),
        ("Pool", spec.pool),
        ("Priority", spec.priority),
        ("Instances", f"{running_count(status)} running / {spec.instances} wanted"),
        ("Request", output.resources_brief(spec.resources.request)),
        ("AM attempt", app.am_attempt),
        ("Message", app.message or "-"),
    ])
    views = ([status.am] if status.HasField("am") else []) + list(status.instances)
    table = output.render_table(["INSTANCE", "NODE", "STATE", "ADDRESS", "MESSAGE"],
                                [instance_row(v) for v in views])
    return f"{details}\n\n{table}"


@click.command()
@click.argument("app")
@output.output_option
@pass_context
def status(ctx, app, fmt):
    """Show APP and its instances. For each: node, state, address."""
    output.emit(fmt, ctx.call("GetApp", master_pb2.GetAppRequest(name=app)), render_app)
