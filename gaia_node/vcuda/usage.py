"""Reads the compute-share state libvcuda keeps (gaia_node/vcuda/src/throttle.c):

- per container, `<region>.sm`: per device, the GPU time the container's processes were charged
  (measured with events on the device timeline, not NVML samples), launches, time launches spent
  held back, its current rate and its use over the last 100 ms;
- per GPU, `<gpu_dir>/gpu<index>.sm`: every container on that GPU with its share, ceiling, mode,
  heartbeat, claim, use and rate (what elastic containers look at).

The layouts are fixed by _Static_asserts in throttle.c; the magics change when they do.
"""
import struct
import time
from pathlib import Path

SM_MAGIC = 0x31304D5341554356  # "VCUASM01"
GPU_MAGIC = 0x3130555047554356  # "VCUGPU01"
MAX_DEVICES = 16
_SM_DEV_OFFSET = 144
_SM_DEV = struct.Struct("<16q")  # see struct sm_dev
_GPU_SLOTS_OFFSET = 144
_GPU_SLOTS = 32
_GPU_SLOT = struct.Struct("<64sqqiiqqqqq2q")  # see struct gpu_slot
_HEAD = struct.Struct("<Qii")
ACTIVE_S = 0.2  # throttle.c ACTIVE_NS: a container that launched within this is active


def _ppm_pct(v: int) -> float:
    return v / 10000.0


def container_usage(region_path) -> dict:
    """{device ordinal: {...}} for the devices this container launched on; {} when the container has
    no `.sm` file (never launched a kernel under a share, or a whole GPU)."""
    path = Path(str(region_path) + ".sm")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    magic, _version, size = _HEAD.unpack_from(data, 0)
    if magic != SM_MAGIC or len(data) < _SM_DEV_OFFSET + MAX_DEVICES * _SM_DEV.size:
        raise ValueError(f"{path}: not a libvcuda share file of this version (magic {magic:#x})")
    now = time.monotonic_ns()
    out = {}
    for d in range(MAX_DEVICES):
        (tokens, _refill, rate, used, launches, waited, _ws, _wu, usage, last_launch, _since,
         _last_wait, _wb, blocked, inflight, _r) = _SM_DEV.unpack_from(data, _SM_DEV_OFFSET + d * _SM_DEV.size)
        if launches == 0 and used == 0:
            continue
        out[d] = {
            "used_s": used / 1e9,
            "launches": launches,
            "held_back_s": waited / 1e9,
            "rate_pct": _ppm_pct(rate),
            "recent_use_pct": _ppm_pct(usage),
            "queued_behind_others_pct": _ppm_pct(blocked),
            "tokens_ms": tokens / 1e6,
            "inflight_ms": inflight / 1e6,
            "idle_s": (now - last_launch) / 1e9 if last_launch else None,
        }
    return out


def gpu_containers(gpu_dir, index: int) -> list:
    """The containers libvcuda registered on host GPU `index` (file gpu_dir/gpu<index>.sm); [] when
    none has launched there yet."""
    path = Path(gpu_dir) / f"gpu{index}.sm"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    magic, _version, _size = _HEAD.unpack_from(data, 0)
    if magic != GPU_MAGIC or len(data) < _GPU_SLOTS_OFFSET + _GPU_SLOTS * _GPU_SLOT.size:
        raise ValueError(f"{path}: not a libvcuda GPU file of this version (magic {magic:#x})")
    now = time.monotonic_ns()
    out = []
    for i in range(_GPU_SLOTS):
        (key, share, ceiling, elastic, pid, heartbeat, claim, usage, rate, _refund,
         _r0, _r1) = _GPU_SLOT.unpack_from(data, _GPU_SLOTS_OFFSET + i * _GPU_SLOT.size)
        key = key.split(b"\0", 1)[0].decode(errors="replace")
        if not key:
            continue
        age = (now - heartbeat) / 1e9 if heartbeat else None
        out.append({
            "container": key,  # its region path (or a hash of a long one)
            "share_pct": _ppm_pct(share),
            "ceiling_pct": _ppm_pct(ceiling),
            "mode": "elastic" if elastic else "hard",
            "pid": pid,
            "active": age is not None and age <= ACTIVE_S,
            "idle_s": age,
            "claim_pct": _ppm_pct(claim),
            "recent_use_pct": _ppm_pct(usage),
            "rate_pct": _ppm_pct(rate),
        })
    return out
