"""Fault-injection points for tests: GAIA_FAULTS="name:action[@n],..." in a daemon's environment.

Actions: `sigstop` (the process stops itself, as if paused by the OS), `exit` (dies at once).
`@n` fires only at the n-th time the point is reached (1-based); without it, every time.
Points cost one dict lookup when no fault is armed.
"""
import os
import signal
import threading

_lock = threading.Lock()
_counts = {}


def _armed() -> dict:
    out = {}
    for item in filter(None, os.environ.get("GAIA_FAULTS", "").split(",")):
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
    if action == "sigstop":
        os.kill(os.getpid(), signal.SIGSTOP)
    elif action == "exit":
        os._exit(99)
