"""Process identity that survives node-manager restarts: (boot id, pid, start time in ticks).

A pid alone may be reused; psutil's create_time is derived from the wall clock's idea of the
boot time, which moves when NTP steps the clock. The kernel's start time in clock ticks since
boot (/proc/<pid>/stat field 22) never changes for a process, and the boot id tells reboots
apart. Only the standard library: the shim records identities with it.
"""
from __future__ import annotations  # annotations unevaluated: no typing import on the shim's path

import os

_BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


def boot_id() -> str:
    try:
        with open(_BOOT_ID_PATH) as f:
            return f.read().strip()
    except OSError:
        return ""


def _stat_fields(pid: int) -> list | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # comm may hold spaces and ')': cut after the last one


def start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def start_time(pid: int) -> float | None:
    """The process's start as unix seconds (what psutil's create_time gives, without psutil)."""
    ticks = start_ticks(pid)
    if ticks is None:
        return None
    with open("/proc/stat") as f:
        boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def identity(pid: int) -> dict:
    return {"pid": pid, "start_ticks": start_ticks(pid), "boot_id": boot_id()}


def alive(ident: dict | None) -> bool:
    """True when the process `ident` names still runs (a zombie has finished)."""
    if not ident or not ident.get("pid"):
        return False
    if ident.get("boot_id") and ident["boot_id"] != boot_id():
        return False
    fields = _stat_fields(ident["pid"])
    return bool(fields) and fields[0] not in ("Z", "X") and int(fields[19]) == ident.get("start_ticks")
