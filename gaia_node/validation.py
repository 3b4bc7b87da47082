"""Checks of a ContainerSpec that hold whatever the driver: its ids become etcd keys,
directory and cgroup names, its port names become GAIA_PORT_* variables."""
import os
import stat

from gaia_common.spec import (ENV_NAME, PORT_NAME, SpecError, check_host_paths, host_path_allowed, host_paths,
                              validate_host_access, validate_requirements)
from gaia_node.state import valid_container_id


def validate_container_spec(spec, drivers: dict) -> None:
    if not valid_container_id(spec.container_id):
        raise SpecError("spec.container_id", f"{spec.container_id!r} must be letters, digits, '.', '_' or '-' "
                                             "(expected <app_id>.<instance_id>.<attempt>)")
    for field in ("app_id", "app_name", "instance_id"):
        value = getattr(spec, field)
        if not value or "/" in value:
            raise SpecError(f"spec.{field}", f"{value!r} must be set and contain no '/'")
    if spec.driver not in drivers:
        raise SpecError("spec.driver", f"{spec.driver!r} is not enabled on this node "
                                       f"(enabled: {', '.join(sorted(drivers)) or 'none'})")
    if ".." in spec.workdir.split("/"):
        raise SpecError("spec.workdir", "must not contain '..'")
    for name in spec.env:
        if not ENV_NAME.match(name):
            raise SpecError(f"spec.env.{name}", "not a valid variable name")
    _validate_ports(spec.ports)
    if spec.health_check.kind:
        _validate_health_check(spec.health_check, {p.name for p in spec.ports})
    validate_requirements(spec.resources)  # the same rules the master applied; a node trusts no caller
    validate_host_access(spec, prefix="spec.")
    drivers[spec.driver].validate(spec)


def _validate_ports(ports) -> None:
    seen = set()
    for i, port in enumerate(ports):
        if not PORT_NAME.match(port.name) or port.name in seen:
            raise SpecError(f"spec.ports[{i}].name", f"{port.name!r} is not a valid, distinct port name")
        if not 0 <= port.container_port <= 65535:
            raise SpecError(f"spec.ports[{i}].container_port", f"{port.container_port} is not a port number")
        if port.protocol not in ("", "tcp", "udp"):
            raise SpecError(f"spec.ports[{i}].protocol", f"{port.protocol!r} must be tcp or udp")
        seen.add(port.name)


def _validate_health_check(check, port_names: set) -> None:
    """What the node needs to probe at all; the master checked the rest of the spec."""
    field = "spec.health_check"
    if check.kind not in ("tcp", "http", "exec"):
        raise SpecError(f"{field}.kind", f"{check.kind!r} must be tcp, http or exec")
    if check.kind in ("tcp", "http") and check.port not in port_names:
        raise SpecError(f"{field}.port", f"{check.port!r} is not one of the container's ports "
                                         f"({', '.join(sorted(port_names)) or 'none'})")
    if check.kind == "exec" and not check.command:
        raise SpecError(f"{field}.command", "required for an exec check")
    for name in ("interval_seconds", "timeout_seconds", "initial_delay_seconds", "failure_threshold"):
        if getattr(check, name) < 0:
            raise SpecError(f"{field}.{name}", f"{getattr(check, name)} must not be negative")


def check_host_access(spec, allow) -> None:
    """The node's own word on the host paths a spec asks for, whatever the master allowed:
    each lies under this node's host_path_allow, also once symlinks are resolved, and exists
    (volumes' sources and devices: a runtime would otherwise create or guess them)."""
    check_host_paths(spec, allow, prefix="spec.", whose="this node's")
    for field, path in host_paths(spec):
        real = os.path.realpath(path)
        if real != path and not host_path_allowed(real, allow):
            raise SpecError(f"spec.{field}", f"{path!r} resolves to {real!r}, outside this node's allowed host paths")
        if field == "workdir":
            continue   # made by the process driver if missing
        try:
            mode = os.stat(real).st_mode
        except OSError as e:
            raise SpecError(f"spec.{field}", f"{path!r} does not exist on this node ({e.strerror})") from None
        if field.startswith("devices") and not (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)):
            raise SpecError(f"spec.{field}", f"{path!r} is not a device on this node")
