"""Process identity that survives node-manager restarts: (boot id, pid, start time in ticks).

A pid alone may be reused; psutil's create_time is derived from the wall clock's idea of the
boot time, which moves when NTP steps the clock. The kernel's start time in clock ticks since
boot (/proc/<pid>/stat field 22) never changes for a process, and the boot id tells reboots
apart. Only the standard library: the shim records identities with it.
"""
from typing import Optional

_BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


def boot_id() -> str:
    try:
        with open(_BOOT_ID_PATH) as f:
            return f.read().strip()
    except OSError:
        return ""


def _stat_fields(pid: int) -> Optional[list]:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # comm may hold spaces and ')': cut after the last one


def start_ticks(pid: int) -> Optional[int]:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def identity(pid: int) -> dict:
    return {"pid": pid, "start_ticks": start_ticks(pid), "boot_id": boot_id()}


def alive(ident: Optional[dict]) -> bool:
    """True when the process `ident` names still runs (a zombie has finished)."""
    if not ident or not ident.get("pid"):
        return False
    if ident.get("boot_id") and ident["boot_id"] != boot_id():
        return False
    fields = _stat_fields(ident["pid"])
    return bool(fields) and fields[0] not in ("Z", "X") and int(fields[19]) == ident.get("start_ticks")
