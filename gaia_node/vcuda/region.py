"""Reads a container's vCUDA shared region (the file libvcuda maps; layout in src/region.h): the
container's GPU memory use per device and per process. For `gaia node gpus` and the tests.

Read without the region's lock: each figure is one aligned 64-bit word the library stores atomically,
so a read may be a moment old but never torn."""
import struct
from dataclasses import dataclass, field
from pathlib import Path

MAGIC = 0x3155435641494147  # "GAIAVCU1"
VERSION = 1
MAX_DEVICES = 16
MAX_EXPORTS = 256
MAX_PROCS = 1024
_DEVICES_AT, _EXPORTS_AT, _PROCS_AT = 128, 640, 6784
_DEVICE = struct.Struct("<16sIIq")           # uuid, in_use, pad, used
_PROC = struct.Struct("<iiQ" + "q" * MAX_DEVICES)  # pid, pad, start_time, used[16]
SIZE = _PROCS_AT + MAX_PROCS * _PROC.size


class RegionError(Exception):
    """Not a vCUDA region (or another version of it); the message names the file."""


@dataclass
class Device:
    uuid: str        # NVML's text form, "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
    used: int        # bytes the container holds on it


@dataclass
class Proc:
    pid: int
    start_time: int
    used: dict       # device uuid -> bytes


@dataclass
class Region:
    limit: int                                  # bytes per device (0: none)
    owner_deaths: int                           # lock holders that died and were repaired after
    reclaimed_bytes: int                        # bytes taken back from processes that died
    devices: list = field(default_factory=list)
    procs: list = field(default_factory=list)

    def used(self, uuid: str = None) -> int:
        """Bytes in use on one device (by uuid), or on all of them."""
        return sum(d.used for d in self.devices if uuid is None or d.uuid == uuid)


def uuid_text(raw: bytes) -> str:
    h = raw.hex()
    return f"GPU-{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def read(path) -> Region:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RegionError(f"{path}: {e.strerror}") from None
    if len(data) < SIZE:
        raise RegionError(f"{path}: {len(data)} bytes, a region has {SIZE}")
    magic, version, size, limit, _, _, deaths, reclaimed = struct.unpack_from("<QIIqIIQQ", data, 0)
    if magic != MAGIC or version != VERSION or size != SIZE:
        raise RegionError(f"{path}: not a version {VERSION} vCUDA region (magic {magic:#x}, version {version})")
    devices = []
    for i in range(MAX_DEVICES):
        uuid, in_use, _, used = _DEVICE.unpack_from(data, _DEVICES_AT + i * _DEVICE.size)
        devices.append(Device(uuid_text(uuid), used) if in_use else None)
    procs = []
    for i in range(MAX_PROCS):
        pid, _, start, *used = _PROC.unpack_from(data, _PROCS_AT + i * _PROC.size)
        if pid:
            procs.append(Proc(pid, start, {devices[d].uuid: b for d, b in enumerate(used) if b and devices[d]}))
    return Region(limit=limit, owner_deaths=deaths, reclaimed_bytes=reclaimed,
                  devices=[d for d in devices if d is not None], procs=procs)
