"""The driver interface: one runtime (process, docker...) behind a declared capability record.

Modelled on Nomad's driver plugins: recovering a task after an agent restart is part of the
interface, so a node-manager restart never restarts a container.
"""
import dataclasses
from typing import Optional, Protocol

from gaia_common.pb import types_pb2


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What a driver can honour; the node refuses specs that ask for more."""
    host_network: bool            # tasks can share the host's network
    network_namespaces: bool      # tasks can get a network of their own
    images: bool                  # runs `spec.image` (the process driver runs host commands)
    cgroups: str                  # "v1" | "v2" | "" when limits cannot be enforced
    memory_limits: bool
    cpu_limits: bool
    namespaces: tuple = ()        # extra namespaces a task may ask for (ContainerSpec.namespaces)


@dataclasses.dataclass
class TaskStatus:
    running: bool
    pid: int = 0
    started_at: float = 0.0       # the process's own start time (unix seconds)
    exit_code: int = 0
    signal: int = 0
    finished_at: float = 0.0
    message: str = ""
    lost: bool = False            # ended, but how is unknown (its monitor vanished)


class StartFailed(Exception):
    """The runtime could not start the task at all (not: the task started and then failed)."""


class Driver(Protocol):
    name: str

    def capabilities(self) -> Capabilities: ...

    def validate(self, spec: types_pb2.ContainerSpec) -> None:
        """Raise gaia_common.spec.SpecError naming the field this driver cannot honour."""

    def start(self, spec: types_pb2.ContainerSpec, env: dict, host_ports: dict, netns: str = "") -> object:
        """Start the task; return its handle. `$VAR` in the command expands from `env`.
        `netns`: the path of a network namespace the task must run in ("" = the driver's default)."""

    def stop(self, handle, grace: float) -> TaskStatus:
        """SIGTERM, then SIGKILL after `grace` seconds; return once the task is gone."""

    def status(self, handle) -> TaskStatus: ...

    def release(self, handle) -> None:
        """Free what the finished task held (cgroups, stray processes); its files stay."""

    def handle_state(self, handle) -> dict:
        """JSON-able state the node persists and later passes to `recover`."""

    def recover(self, state: dict) -> Optional[object]:
        """Re-adopt a task after a node-manager restart: a handle (running or finished), or
        None when nothing is known of it. `state` is what handle_state returned, or only
        {"container_id": id} when the node stopped before `start` returned."""
