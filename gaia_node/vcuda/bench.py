"""Figures for `gaia bench vcuda`, measured on the fake CUDA driver (tests/vcuda: test code, present in a
source checkout; rig() says so when it is not there).

alloc_overhead_ns(): what libvcuda adds to cuMemAlloc_v2 / cuMemFree_v2, timed by a C program making the
calls directly (tests/vcuda/progs/vcuda_probe_direct.c `bench N SIZE`) three ways: without the library,
with it preloaded but no config (pass-through), and with a memory limit (every call reserved in the
container's shared region and recorded in the process's table).
"""
import importlib.util
import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RIG_BUILD = ROOT / "tests" / "vcuda" / "build.py"


class Unavailable(Exception):
    """The fake driver cannot be built here (no source checkout, no gcc); the message says which."""


def rig():
    """The built test rig (fake libcuda, libvcuda, test programs): tests/vcuda/build.py's built()."""
    if not RIG_BUILD.is_file():
        raise Unavailable(f"the fake CUDA driver is test code ({RIG_BUILD} is not here: run from a source checkout)")
    spec = importlib.util.spec_from_file_location("gaia_vcuda_rig_build", RIG_BUILD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        return module, module.built()
    except module.BuildError as e:
        raise Unavailable(f"the fake CUDA driver did not build: {e}") from None


def _bench_once(module, r, config, preload, n, size) -> dict:
    # glibc trims and re-grows the heap under a malloc/free loop, which costs more (and varies more)
    # than the hooks; a fixed top pad keeps the fake driver's own cost small and steady
    env = module.run_env(r, config, preload=preload, MALLOC_TRIM_THRESHOLD_=1 << 34, MALLOC_TOP_PAD_=1 << 28)
    out = subprocess.run([str(r.prog("vcuda_probe_direct")), "bench", str(n), str(size)], env=env,
                         capture_output=True, text=True, timeout=120)
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    result = next((x for x in lines if x.get("cmd") == "bench"), None)
    if out.returncode != 0 or result is None or result["failed"]:
        raise RuntimeError(f"vcuda_probe_direct bench exited {out.returncode}: {out.stdout[-500:]} {out.stderr[-500:]}")
    return result


def alloc_overhead_ns(calls: int = 200_000, size: int = 256, rounds: int = 5) -> dict:
    """ns per cuMemAlloc_v2 and per cuMemFree_v2 without libvcuda ("native"), through it with no config
    ("passthrough") and with a memory limit ("accounted"); medians over `rounds` interleaved runs of
    `calls` calls each, and "overhead_*_ns" = accounted - native. Raises Unavailable."""
    module, r = rig()
    with tempfile.TemporaryDirectory(prefix="gaia-vcuda-bench-") as tmp:
        conf = Path(tmp) / "vcuda.conf"
        conf.write_text(f"memory_limit={1 << 40}\nregion={Path(tmp) / 'region'}\n")
        runs = {"native": [], "passthrough": [], "accounted": []}
        for _ in range(rounds):
            runs["native"].append(_bench_once(module, r, None, False, calls, size))
            runs["passthrough"].append(_bench_once(module, r, None, True, calls, size))
            runs["accounted"].append(_bench_once(module, r, conf, True, calls, size))
    out = {"calls": calls, "size": size, "rounds": rounds}
    for name, results in runs.items():
        out[name] = {"alloc_ns": round(statistics.median(x["alloc_ns"] for x in results), 1),
                     "free_ns": round(statistics.median(x["free_ns"] for x in results), 1)}
    out["overhead_alloc_ns"] = round(out["accounted"]["alloc_ns"] - out["native"]["alloc_ns"], 1)
    out["overhead_free_ns"] = round(out["accounted"]["free_ns"] - out["native"]["free_ns"], 1)
    out["cpus"] = os.cpu_count()
    return out


# ---- compute share (V2): launch overhead and share accuracy ----

def _load_rig_module(name: str):
    """tests/vcuda/<name>.py loaded by path (tests/ need not be importable where gaia is installed)."""
    path = RIG_BUILD.with_name(name + ".py")
    spec = importlib.util.spec_from_file_location("gaia_vcuda_rig_" + name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _launch_once(module, r, config, preload, launches) -> float:
    env = module.run_env(r, config, preload=preload)
    out = subprocess.run([str(r.prog("launch_bench")), str(launches), "3"], env=env,
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0 or not out.stdout.strip():
        raise RuntimeError(f"launch_bench exited {out.returncode}: {out.stdout[-500:]} {out.stderr[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["ns_per_launch"]


def launch_overhead_ns(launches: int = 100_000, rounds: int = 5) -> dict:
    """ns per cuLaunchKernel (a 0 ns fake kernel, best of 3 loops of `launches`, median over `rounds`
    interleaved runs): without libvcuda ("native"), through it with no config ("passthrough"), at
    share 100 (a whole GPU: hooks only, no throttle, "whole_gpu") and at share 50 ("throttled": an
    event recorded after each launch and polled before the next, charged on the GPU's shared ring;
    the kernels take no time, so it never sleeps and this is the pure cost of measuring). Raises
    Unavailable."""
    module, r = rig()
    with tempfile.TemporaryDirectory(prefix="gaia-vcuda-bench-") as tmp:
        whole = Path(tmp) / "whole.conf"
        whole.write_text(f"share=100\nregion={Path(tmp) / 'whole'}\n")
        half = Path(tmp) / "half.conf"
        half.write_text(f"share=50\nmode=hard\nregion={Path(tmp) / 'half'}\ngpu_dir={tmp}\n")
        runs = {"native": [], "passthrough": [], "whole_gpu": [], "throttled": []}
        for _ in range(rounds):
            runs["native"].append(_launch_once(module, r, None, False, launches))
            runs["passthrough"].append(_launch_once(module, r, None, True, launches))
            runs["whole_gpu"].append(_launch_once(module, r, whole, True, launches))
            runs["throttled"].append(_launch_once(module, r, half, True, launches))
    out = {"launches": launches, "rounds": rounds, "cpus": os.cpu_count()}
    for name, values in runs.items():
        out[name + "_ns"] = round(statistics.median(values), 1)
    out["overhead_whole_gpu_ns"] = round(out["whole_gpu_ns"] - out["native_ns"], 1)
    out["overhead_throttled_ns"] = round(out["throttled_ns"] - out["native_ns"], 1)
    return out


def _share_case(module, r, timeline, tmp: Path, boxes, seconds: float) -> dict:
    """Runs saturating share_loop containers on one fake device timeline; {name: % of device time}
    over the run minus its first 0.3 s and last 0.2 s."""
    tmp.mkdir(parents=True)
    (tmp / "gpu").mkdir()
    procs = []
    for name, share, mode, ceiling, kernel in boxes:
        conf = tmp / f"{name}.conf"
        conf.write_text(f"share={share}\nmode={mode}\nceiling={ceiling}\nregion={tmp / name}\n"
                        f"gpu_dir={tmp / 'gpu'}\n")
        env = module.run_env(r, conf, FAKE_CUDA_TIMELINE=tmp / "timeline", FAKE_CUDA_TAG=name)
        procs.append(subprocess.Popen([str(r.prog("share_loop")), kernel, str(seconds)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        out, err = p.communicate(timeout=seconds + 60)
        if p.returncode != 0:
            raise RuntimeError(f"share_loop exited {p.returncode}: {err.strip()[-500:]}")
    tl = timeline.read(tmp / "timeline")
    starts, ends = zip(*(tl.active_window(name) for name, *_ in boxes))
    lo, hi = max(starts) + 0.3, min(ends) - 0.2
    return {name: tl.share(name, lo, hi) for name, *_ in boxes}


def share_accuracy(targets=(10, 30, 50, 70), modes=("hard", "elastic"), kernels=("k_50us", "k_5ms"),
                   seconds: float = 2.5, parallel: int = 4) -> list:
    """Measured share of device time per (mode, target, kernel) on the fake driver's one shared
    timeline, every container saturating (always a kernel to launch). hard: the container alone
    (idle time left unused). elastic: beside an elastic partner with share 100 - target, both with
    ceiling 100 (each must get its own share, not what its queueing would give it). Rows:
    {"mode", "target_pct", "kernel", "measured_pct", "error_pts", "partner_pct" (elastic)}.
    Raises Unavailable."""
    from concurrent.futures import ThreadPoolExecutor

    module, r = rig()
    timeline = _load_rig_module("timeline")
    cases = [(mode, t, k) for mode in modes for t in targets for k in kernels]
    with tempfile.TemporaryDirectory(prefix="gaia-vcuda-share-") as tmp:
        def one(i_case):
            i, (mode, target, kernel) = i_case
            if mode == "hard":
                boxes = [("a", target, "hard", target, kernel)]
            elif mode == "elastic":
                boxes = [("a", target, "elastic", 100, kernel), ("b", 100 - target, "elastic", 100, kernel)]
            else:
                raise ValueError(f"modes: {mode!r} is not hard or elastic")
            got = _share_case(module, r, timeline, Path(tmp) / str(i), boxes, seconds)
            row = {"mode": mode, "target_pct": target, "kernel": kernel, "measured_pct": round(got["a"], 2),
                   "error_pts": round(got["a"] - target, 2)}
            if "b" in got:
                row["partner_pct"] = round(got["b"], 2)
            return row
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            return list(pool.map(one, enumerate(cases)))
