"""A container's environment, and `$VAR` expansion in its command (the process driver runs no shell)."""
import os
import string

# Inherited from the node so that commands like `python3` resolve; nothing else leaks in.
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def port_variable(port_name: str) -> str:
    return "GAIA_PORT_" + port_name.upper().replace("-", "_")


def build_env(spec, *, cluster: str, node_id: str, host_ip: str, host_ports: dict, base=None) -> dict:
    """The inherited basics, then the spec's env, then Gaia's own variables (which win)."""
    base = os.environ if base is None else base
    env = {name: base[name] for name in INHERITED if name in base}
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(spec.env)
    env.update({
        "GAIA_CLUSTER": spec.cluster or cluster,
        "GAIA_APP": spec.app_name,
        "GAIA_APP_ID": spec.app_id,
        "GAIA_INSTANCE": spec.instance_id,
        "GAIA_CONTAINER_ID": spec.container_id,
        "GAIA_HOST_IP": host_ip,
        "GAIA_NODE_ID": node_id,
    })
    env.update({port_variable(name): str(port) for name, port in host_ports.items()})
    return env


def expand_args(args, env: dict) -> list:
    """`$VAR` and `${VAR}` from `env`; unknown names stay as written and `$$` is a literal `$`."""
    return [string.Template(arg).safe_substitute(env) for arg in args]
