"""Fault-injection points for tests: GAIA_FAULTS="name:action[@n],..." in a daemon's environment.

Actions: `sigstop` (the process stops itself, as if paused by the OS), `exit` (dies at once).
`@n` fires only at the n-th time the point is reached (1-based); without it, every time.
Points cost one dict lookup when no fault is armed. A master passes GAIA_AM_FAULTS from its
own environment to the ApplicationMasters it starts, as their GAIA_FAULTS.
"""
import logging
import os
import signal
import threading

ENV = "GAIA_FAULTS"
AM_FAULTS_ENV = "GAIA_AM_FAULTS"
_lock = threading.Lock()
_counts = {}


def _armed() -> dict:
    out = {}
    for item in filter(None, os.environ.get(ENV, "").split(",")):
        name, _, action = item.partition(":")
        action, _, nth = action.partition("@")
        out[name] = (action, int(nth) if nth else 0)
    return out


ARMED = _armed()


def point(name: str):
    if not ARMED or name not in ARMED:
        return
    action, nth = ARMED[name]
    with _lock:
        _counts[name] = _counts.get(name, 0) + 1
        count = _counts[name]
    if nth and count != nth:
        return
    logging.getLogger(__name__).warning("fault %s fired: %s (#%d)", name, action, count)
    if action == "sigstop":
        # Aimed at this thread, so that it is the one that stops on its way out of the call:
        # a process-wide SIGSTOP may let this thread run on into the write before it lands.
        signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)
        logging.getLogger(__name__).warning("fault %s: resumed", name)
    elif action == "exit":
        os._exit(99)
