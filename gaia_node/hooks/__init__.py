"""Task lifecycle hooks: one module per concern (network, disk...), run around every container.

Like Nomad's task-runner hooks: the container table calls `prestart` before the driver starts
the task, `poststart` once it runs, `poststop` once it has ended (however it ended), and
`recover` for a task re-adopted after a node-manager restart. Hooks keep what they need to
undo their work in `ctx.state[hook.name]`, which is persisted with the container.
"""
import dataclasses
import logging
from typing import Protocol

from gaia_common.pb import types_pb2

log = logging.getLogger("gaia.node.hooks")


@dataclasses.dataclass
class TaskContext:
    spec: types_pb2.ContainerSpec
    status: types_pb2.ContainerStatus   # hooks may fill container_ip, message
    directory: str                      # the container's own state directory
    host_ports: dict                    # port name -> host port
    env: dict                           # hooks may add variables before the driver starts
    netns: str = ""                     # a network namespace the task must join (path)
    pid: int = 0                        # the task's pid, once it runs
    state: dict = dataclasses.field(default_factory=dict)   # hook name -> JSON-able state


class TaskHook(Protocol):
    name: str

    def prestart(self, ctx: TaskContext) -> None:
        """Prepare; raise drivers.base.StartFailed (or SpecError) to refuse the container."""

    def poststart(self, ctx: TaskContext) -> None: ...

    def poststop(self, ctx: TaskContext) -> None:
        """Undo what prestart/poststart did. Must not raise for things already gone."""

    def recover(self, ctx: TaskContext) -> None:
        """Re-assert this hook's setup for a task still running after a node-manager restart."""


class HookRunner:
    def __init__(self, hooks: list):
        self.hooks = list(hooks)

    def prestart(self, ctx: TaskContext):
        done = []
        try:
            for hook in self.hooks:
                hook.prestart(ctx)
                done.append(hook)
        except Exception:
            self._undo(done, ctx)  # nothing half-started is left behind
            raise

    def poststart(self, ctx: TaskContext):
        for hook in self.hooks:
            hook.poststart(ctx)

    def poststop(self, ctx: TaskContext):
        self._undo(self.hooks, ctx)

    def recover(self, ctx: TaskContext):
        for hook in self.hooks:
            try:
                hook.recover(ctx)
            except Exception:
                log.exception("hook %s could not recover %s", hook.name, ctx.spec.container_id)

    @staticmethod
    def _undo(hooks, ctx):
        for hook in reversed(hooks):
            try:
                hook.poststop(ctx)
            except Exception:
                log.exception("hook %s could not clean up %s", hook.name, ctx.spec.container_id)
