"""Entry points: `run` for `gaia node run`, `start` for tests that want a node in-process."""
import signal
import threading

from gaia_node.agent import NodeManager


def start(cfg) -> NodeManager:
    """A started node manager: `.address`, `.node_id`, `.stop()`."""
    return NodeManager(cfg).start()


def run(cfg) -> None:
    """Serve until SIGTERM or SIGINT, then stop serving; containers are left running."""
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    manager = start(cfg)
    try:
        while not stopping.wait(1.0):  # a timed wait lets the main thread run signal handlers
            pass
    finally:
        manager.stop()
