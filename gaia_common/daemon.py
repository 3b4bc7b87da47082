"""What every long-running Gaia process does the same way: logging and waiting for SIGTERM."""
import logging
import os
import signal
import time

from gaia_common import logctx

LOG_FORMAT_ENV = "GAIA_LOG_FORMAT"     # how a daemon's children (AMs) learn its log_format


def setup_logging(name: str, fmt: str = "", **fields):
    """Log to stderr as `fmt` (text or json; default $GAIA_LOG_FORMAT, else text), every line
    carrying `fields` (cluster, node or master, app...): see gaia_common/logctx.py."""
    handler = logging.StreamHandler()
    handler.setFormatter(logctx.formatter(name, fmt or os.environ.get(LOG_FORMAT_ENV) or "text"))
    logging.basicConfig(level=os.environ.get("GAIA_LOG_LEVEL", "INFO"), handlers=[handler])
    logctx.set_process_fields(**fields)


def wait_for_termination(poll: float = 0.1) -> int:
    """Block until SIGTERM or SIGINT; returns the signal.

    The handler only appends to a list: taking a lock in a signal handler (Event.set) can
    deadlock when a second signal lands while the main thread holds that lock. We do not
    block the signals with a mask instead, because children (shims, containers) would
    inherit the mask and ignore SIGTERM.
    """
    received = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: received.append(signum))
    while not received:
        time.sleep(poll)
    return received[0]
