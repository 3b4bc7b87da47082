"""What every long-running Gaia process does the same way: logging and waiting for SIGTERM."""
import logging
import os
import signal
import time


def setup_logging(name: str):
    logging.basicConfig(level=os.environ.get("GAIA_LOG_LEVEL", "INFO"),
                        format=f"%(asctime)s %(levelname)s {name}[%(process)d] %(name)s: %(message)s")


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
