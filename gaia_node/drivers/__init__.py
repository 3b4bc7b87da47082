"""The drivers a node can enable (NodeConfig.drivers), by name.

Adding a runtime is one module with a class that follows drivers.base.Driver, and one entry
in FACTORIES.
"""
from gaia_common.config import ConfigError
from gaia_node.drivers.process import ProcessDriver

# name -> factory(dirs: state.ContainerDirs, cgroups: cgroups.Cgroups | None) -> Driver
FACTORIES = {
    "process": ProcessDriver,
}


def load(names, dirs, cgroups) -> dict:
    """Name -> started driver for each name enabled in the node's config."""
    unknown = [n for n in names if n not in FACTORIES]
    if unknown:
        raise ConfigError(f"drivers: unknown driver {unknown[0]!r} (known: {', '.join(sorted(FACTORIES))})")
    if not names:
        raise ConfigError("drivers: enable at least one driver")
    return {name: FACTORIES[name](dirs, cgroups) for name in names}
