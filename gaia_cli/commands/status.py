"""gaia status APP: the application, its AM and every instance: node, state, address."""
import click

from gaia_common.pb import master_pb2, types_pb2
from gaia_cli import output
from gaia_cli.commands.events import render_events
from gaia_cli.context import pass_context


def running_count(status: master_pb2.AppStatus) -> int:
    return sum(1 for v in status.instances if v.status.state == types_pb2.CONTAINER_STATE_RUNNING)


def instance_row(view: master_pb2.InstanceView):
    alloc, st = view.allocation, view.status
    has_status = view.HasField("status")
    return [alloc.instance_id or st.instance_id or "-",
            alloc.node_id or st.node_id or "-",
            instance_state(view),
            output.endpoint_address(st.host_ip, st.host_ports) if has_status and st.host_ip else "-",
            instance_version(view),
            st.message or "-"]


def instance_version(view: master_pb2.InstanceView) -> str:
    """The version it must run; "1->2" while its container still runs another (0 means 1)."""
    if view.allocation.is_am or view.allocation.instance_id == "am":
        return "-"
    want = view.allocation.version or 1
    runs = (view.status.version or 1) if view.HasField("status") else want
    return str(want) if runs == want else f"{runs}->{want}"


def rollout_line(app) -> str:
    r = app.rollout
    if not r.state:
        return "-"
    which = f" (instances {','.join(r.instance_ids)})" if r.instance_ids else ""
    return f"{r.state.replace('_', ' ')}: version {r.from_version} -> {r.to_version}{which}" + \
        (f": {r.message}" if r.message else "")


def instance_state(view: master_pb2.InstanceView) -> str:
    """The container's state; a user-stopped instance reads stopped (stopping until it is)."""
    st = view.status
    if view.allocation.stopped:
        return "stopping" if st.state in (types_pb2.CONTAINER_STATE_STARTING, types_pb2.CONTAINER_STATE_RUNNING) \
            else "stopped"
    return output.container_state(st.state) if view.HasField("status") else "pending"


def stopped_note(status: master_pb2.AppStatus) -> str:
    stopped = sum(1 for v in status.instances if v.allocation.stopped)
    return f" ({stopped} stopped by the user)" if stopped else ""


def render_app(status: master_pb2.AppStatus) -> str:
    app, spec = status.app, status.app.spec
    details = output.render_fields([
        ("Name", spec.name),
        ("ID", app.app_id),
        ("State", output.app_state(app.state)),
        ("Kind", output.enum_name(types_pb2.AppKind, spec.kind)),
        ("Pool", spec.pool),
        ("Priority", spec.priority),
        ("Instances", f"{running_count(status)} running / {spec.instances} wanted" + stopped_note(status)),
        ("Request", output.resources_brief(spec.resources.request)),
        ("AM attempt", app.am_attempt),
        ("Version", f"{app.version or 1}" + (f" (previous {app.previous_version})" if app.previous_version else "")),
        ("Rollout", rollout_line(app)),
        ("Message", app.message or "-"),
    ])
    views = ([status.am] if status.HasField("am") else []) + list(status.instances)
    table = output.render_table(["INSTANCE", "NODE", "STATE", "ADDRESS", "VERSION", "MESSAGE"],
                                [instance_row(v) for v in views])
    if status.events:   # the latest few; `gaia events APP` lists more
        table += "\n\nEvents (latest; `gaia events " + spec.name + "` for more):\n" + render_events(status.events)
    return f"{details}\n\n{table}"


@click.command()
@click.argument("app")
@output.output_option
@pass_context
def status(ctx, app, fmt):
    """Show APP and its instances. For each: node, state, address."""
    output.emit(fmt, ctx.call("GetApp", master_pb2.GetAppRequest(name=app)), render_app)
