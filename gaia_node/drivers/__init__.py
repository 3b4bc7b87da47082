"""The drivers a node can enable (NodeConfig.drivers), by name.

Adding a runtime is one module with a class that follows drivers.base.Driver, and one entry
in FACTORIES.
"""
import logging

from gaia_common.config import ConfigError
from gaia_node.drivers.process import ProcessDriver

log = logging.getLogger("gaia.node.drivers")


def _docker(dirs, cgroups, cfg):
    from gaia_node.drivers.docker import DockerDriver  # the docker SDK only where it is enabled
    return DockerDriver(dirs, cgroups, docker_host=getattr(cfg, "docker_host", ""),
                        cgroup_parent=getattr(cfg, "cgroup_parent", "gaia"),
                        cgroup_root=getattr(cfg, "cgroup_root", "/sys/fs/cgroup"))


# name -> factory(dirs: state.ContainerDirs, cgroups: cgroups.Cgroups | None, cfg: NodeConfig) -> Driver
FACTORIES = {
    "process": lambda dirs, cgroups, cfg: ProcessDriver(dirs, cgroups),
    "docker": _docker,
}


def load(names, dirs, cgroups, cfg=None) -> dict:
    """Name -> started driver for each name enabled in the node's config. A driver whose
    runtime is not there (DriverUnavailable: no Docker engine answers) is left out and logged,
    so the node still runs what it can and does not offer that driver to the scheduler."""
    from gaia_node.drivers.docker import DriverUnavailable
    unknown = [n for n in names if n not in FACTORIES]
    if unknown:
        raise ConfigError(f"drivers: unknown driver {unknown[0]!r} (known: {', '.join(sorted(FACTORIES))})")
    if not names:
        raise ConfigError("drivers: enable at least one driver")
    loaded = {}
    for name in names:
        try:
            loaded[name] = FACTORIES[name](dirs, cgroups, cfg)
        except (DriverUnavailable, ImportError) as e:
            log.error("driver %s unavailable, not offered by this node: %s", name, e)
    if not loaded:
        raise ConfigError(f"drivers: none of {', '.join(names)} can run on this node")
    return loaded
