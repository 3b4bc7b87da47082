"""Entry points: `run` for `gaia node run`, `start` for tests that want a node in-process."""
from gaia_common.config import default_id
from gaia_common.daemon import setup_logging, wait_for_termination
from gaia_node.agent import NodeManager


def start(cfg) -> NodeManager:
    """A started node manager: `.address`, `.node_id`, `.stop()`."""
    return NodeManager(cfg).start()


def run(cfg) -> None:
    """Serve until SIGTERM or SIGINT, then stop serving; containers are left running."""
    setup_logging("node", cfg.log_format, cluster=cfg.cluster, node=cfg.id or default_id())
    manager = start(cfg)
    try:
        wait_for_termination()
    finally:
        manager.stop()
