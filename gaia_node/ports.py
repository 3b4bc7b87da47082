"""Host ports for containers: a fixed port as asked, or a free one from the node's range.

"Free" means free twice over: no container of this node holds it, and binding it works now.
"""
import random
import socket
import threading


class PortUnavailable(Exception):
    """The node has no such free port (a fixed port in use, or the range exhausted)."""


def bindable(port: int, protocol: str = "tcp", host: str = "0.0.0.0") -> bool:
    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


class PortAllocator:
    def __init__(self, low: int, high: int, is_free=bindable):
        if not 0 < low <= high <= 65535:
            raise ValueError(f"port_range [{low}, {high}] is not a range of ports")
        self.low, self.high = low, high
        self.is_free = is_free
        self._held = {}            # host port -> container id
        self._lock = threading.Lock()

    def allocate(self, owner: str, ports) -> dict:
        """Port name -> host port for each types_pb2.Port; all or nothing."""
        with self._lock:
            chosen = {}
            for i, port in enumerate(ports):
                if port.container_port:
                    chosen[port.name] = self._fixed(i, port, chosen)
                else:
                    chosen[port.name] = self._pick(port.protocol, chosen)
            for host_port in chosen.values():
                self._held[host_port] = owner
            return chosen

    def _fixed(self, index: int, port, chosen: dict) -> int:
        wanted = port.container_port
        if wanted in self._held or wanted in chosen.values() or not self.is_free(wanted, port.protocol):
            raise PortUnavailable(f"ports[{index}] ({port.name}): host port {wanted} is in use")
        return wanted

    def _pick(self, protocol: str, chosen: dict) -> int:
        size = self.high - self.low + 1
        first = random.randrange(size)  # random start: fewer collisions with ports just released
        for step in range(size):
            candidate = self.low + (first + step) % size
            if candidate in self._held or candidate in chosen.values():
                continue
            if self.is_free(candidate, protocol):
                return candidate
        raise PortUnavailable(f"no free port left in {self.low}-{self.high}")

    def hold(self, owner: str, host_ports: dict) -> None:
        """Mark ports of a re-adopted container as held."""
        with self._lock:
            for host_port in host_ports.values():
                self._held[host_port] = owner

    def release(self, owner: str) -> None:
        with self._lock:
            self._held = {p: o for p, o in self._held.items() if o != owner}

