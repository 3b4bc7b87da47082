"""The scheduler's interface and the values it works on."""
import dataclasses
from typing import Protocol

from gaia_common.pb import types_pb2


@dataclasses.dataclass
class NodeSnapshot:
    node_id: str
    address: str
    free: types_pb2.Resources       # capacity minus what is already granted
    labels: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Placement:
    node_ids: list                  # one per placed request, in request order
    reason: str = ""                # why some (or, for a gang, all) could not be placed

    @property
    def complete(self) -> bool:
        return not self.reason


class Scheduler(Protocol):
    def place(self, requests: list, nodes: list, gang: bool = False) -> Placement:
        """Choose a node for each request (Resources); for a gang, all or none."""
