"""`gaia bench vcuda`: what the vCUDA interposer costs and how well it keeps shares.

Three parts:
  overhead        ns per kernel launch and per allocation through libvcuda, against the same
                  calls straight to the driver, on the fake driver of tests/vcuda
                  (gaia_node/vcuda/bench.py: launch_overhead_ns, alloc_overhead_ns)
  share accuracy  measured against target compute shares 10/30/50/70, hard and elastic, on the
                  fake driver's one shared device timeline (gaia_node/vcuda/bench.py: share_accuracy)
  real GPU        with PyTorch on a real GPU (gaia_cli/bench/vcuda_torch.py, one process per
                  run): a training step's overhead at share 100 (target under 1%), two
                  processes at 30/70 and at 10/90 (throughput ratio within 10% of 3:7 and
                  1:9), and an allocation beyond the memory limit failing cleanly. Without a
                  GPU, torch or the library these rows say "unmeasured (...)": never estimated.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from gaia_node import gpu_share

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vcuda_torch.py")
UNMEASURED = "unmeasured"
SPLITS = ((30, 70), (10, 90))
RATIO_TOLERANCE = 0.10          # throughput ratio within 10% of the target
STEP_OVERHEAD_TARGET = 0.01     # under 1% at share 100
OVERFLOW_LIMIT = 1 << 30        # the memory limit the overflow run is given
READY_TIMEOUT = 300.0          # a worker's CUDA start-up and warm-up


def run(seconds: float = 20.0, repeats: int = 3, python: str = "", gpu: int = 0, fake: bool = True) -> dict:
    figures = {}
    if fake:
        figures.update(fake_driver_figures())
    figures["real_gpu"] = real_gpu_figures(seconds=seconds, repeats=repeats, python=python or sys.executable, gpu=gpu)
    return figures


# ---- the fake driver (V1 and V2's measurements) ----

def fake_driver_figures() -> dict:
    try:
        from gaia_node.vcuda import bench
    except Exception as e:   # the library's package or its bench is missing: say so
        why = f"{UNMEASURED} ({type(e).__name__}: {e})"
        return {"overhead": {"error": why}, "share_accuracy": {"error": why}}
    out = {}
    for key, call in (("overhead", lambda: {"launch_ns": bench.launch_overhead_ns(),
                                            "alloc_ns": bench.alloc_overhead_ns()}),
                      ("share_accuracy", bench.share_accuracy)):
        try:
            out[key] = call()
        except Exception as e:   # one part failing leaves the others standing
            out[key] = {"error": f"{type(e).__name__}: {e}"}
    return out


# ---- a real GPU ----

def real_gpu_figures(seconds: float, repeats: int, python: str, gpu: int) -> dict:
    from gaia_node.gpu_discovery import discover
    found = discover()
    probe = _worker(python, ["probe"], env=_plain_env(gpu), timeout=300) if found else {}
    library = _library()
    why = ""
    if not found:
        why = f"{UNMEASURED} (no GPU)"
    elif gpu not in {g.index for g in found.gpus}:
        why = f"{UNMEASURED} (no GPU {gpu}: this machine has {len(found.gpus)})"
    elif probe.get("error"):
        why = f"{UNMEASURED} (torch probe failed: {probe['error']})"
    elif not probe.get("cuda"):
        why = f"{UNMEASURED} ({probe.get('why', 'torch found no GPU')})"
    elif not library:
        why = f"{UNMEASURED} (libvcuda not available on this machine)"
    rows = [("step_overhead_share_100", f"under {STEP_OVERHEAD_TARGET:.0%}"),
            ("split_30_70", "ratio within 10% of 3:7"),
            ("split_10_90", "ratio within 10% of 1:9"),
            ("alloc_beyond_limit", "fails with out of memory; the process goes on")]
    if why:
        return {"device": probe.get("device", "none"), "library": library or "none",
                "rows": [{"figure": name, "measured": why, "target": target, "met": "-"} for name, target in rows]}
    with tempfile.TemporaryDirectory(prefix="gaia-bench-vcuda-") as tmp:
        bench = _RealGpu(python, library, gpu, tmp, seconds, repeats)
        measured = {"step_overhead_share_100": bench.step_overhead,
                    "split_30_70": lambda: bench.split(30, 70), "split_10_90": lambda: bench.split(10, 90),
                    "alloc_beyond_limit": bench.overflow}
        out = []
        for name, target in rows:
            try:
                value, met, detail = measured[name]()
            except Exception as e:   # a failed run is reported as such, never replaced by a guess
                value, met, detail = f"failed ({type(e).__name__}: {e})", False, {}
            out.append({"figure": name, "measured": value, "target": target, "met": met, **detail})
    return {"device": probe.get("device", ""), "torch": probe.get("torch", ""), "library": library,
            "seconds_per_run": seconds, "repeats": repeats, "rows": out}


class _RealGpu:
    def __init__(self, python, library, gpu, tmp, seconds, repeats):
        self.python, self.library, self.gpu = python, library, gpu
        self.tmp, self.seconds, self.repeats = tmp, seconds, repeats
        self.gpu_dir = os.path.join(tmp, "gpu")
        os.makedirs(self.gpu_dir, exist_ok=True)
        self.runs = 0

    def env(self, share: int, memory_limit: int = 0) -> dict:
        """A fresh container's worth: its own region and config; every run shares the GPU dir."""
        self.runs += 1
        here = os.path.join(self.tmp, f"c{self.runs}")
        os.makedirs(here)
        config = os.path.join(here, "vcuda.conf")
        with open(config, "w") as f:
            f.write(gpu_share.config_text(memory_limit=memory_limit, share=share, ceiling=share, mode="hard",
                                          region=os.path.join(here, "region"), gpu_dir=self.gpu_dir,
                                          devices=[self.gpu], about="gaia bench vcuda"))
        env = _plain_env(self.gpu)
        env.update({"LD_PRELOAD": self.library, gpu_share.CONFIG_ENV: config})
        return env

    def train(self, envs: list) -> list:
        """Train in one process per env at once, over the same wall-clock window: each warms up
        and says it is ready, then all are told the same start time."""
        procs = [_spawn(self.python, ["train", str(self.seconds)], env) for env in envs]
        watchdog = threading.Timer(READY_TIMEOUT + self.seconds + 120, lambda: [p.kill() for p in procs])
        watchdog.start()
        try:
            for proc in procs:
                line = proc.stdout.readline()
                if '"ready"' not in line:
                    raise RuntimeError(f"a torch worker did not get ready: {line.strip() or _stderr(proc)}")
            start_at = time.time() + 0.5
            for proc in procs:
                proc.stdin.write(f"{start_at:.6f}\n")
                proc.stdin.flush()
            return [_collect(p, timeout=self.seconds + 120) for p in procs]
        finally:
            watchdog.cancel()
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()

    def step_overhead(self):
        """Alternating runs without and with the library at share 100; medians compared."""
        plain, preloaded = [], []
        for _ in range(self.repeats):
            plain.append(self.train([_plain_env(self.gpu)])[0]["step_ms"])
            preloaded.append(self.train([self.env(100)])[0]["step_ms"])
        base, with_lib = statistics.median(plain), statistics.median(preloaded)
        overhead = (with_lib - base) / base
        return (f"{overhead:+.2%} ({with_lib:.2f} vs {base:.2f} ms/step)", overhead < STEP_OVERHEAD_TARGET,
                {"ms_per_step_without": plain, "ms_per_step_with": preloaded})

    def split(self, low: int, high: int):
        ratios = []
        for _ in range(self.repeats):
            a, b = self.train([self.env(low), self.env(high)])
            ratios.append(a["steps"] / max(b["steps"], 1))
        ratio = statistics.median(ratios)
        target = low / high
        error = ratio / target - 1
        return (f"{ratio:.3f} (target {target:.3f}, {error:+.1%})", abs(error) <= RATIO_TOLERANCE,
                {"ratios": ratios})

    def overflow(self):
        result = _collect(_spawn(self.python, ["overflow", str(OVERFLOW_LIMIT)], self.env(100, OVERFLOW_LIMIT)),
                          timeout=300)
        ok = bool(result.get("refused")) and bool(result.get("after_ok"))
        what = (f"2 GiB past a 1 GiB limit: {'refused' if result.get('refused') else 'NOT refused'}; "
                f"{'a smaller one then worked' if result.get('after_ok') else 'the process could not go on'}")
        return what, ok, {"error": result.get("error", "")}


def _plain_env(gpu: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", gpu_share.CONFIG_ENV)}
    env.update({"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": str(gpu)})
    return env


def _library() -> str:
    try:
        from gaia_node import vcuda
        path = vcuda.library_path()
    except Exception:   # not built and not buildable here
        return ""
    return str(path) if path else ""


def _spawn(python: str, args: list, env: dict) -> subprocess.Popen:
    errors = tempfile.TemporaryFile(mode="w+")   # a file: a chatty worker never blocks on a full pipe
    proc = subprocess.Popen([python, WORKER, *args], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=errors, text=True)
    proc.errors = errors
    return proc


def _stderr(proc) -> str:
    proc.errors.seek(0)
    return proc.errors.read()[-400:]


def _collect(proc: subprocess.Popen, timeout: float) -> dict:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"the torch worker ran past {timeout:.0f}s") from None
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the torch worker exited {proc.returncode}: {(_stderr(proc) or out).strip()}")
    return json.loads(lines[-1])


def _worker(python: str, args: list, env: dict, timeout: float) -> dict:
    try:
        return _collect(_spawn(python, args, env), timeout)
    except (OSError, RuntimeError) as e:
        return {"error": str(e)}


# ---- text ----

def render(figures: dict) -> str:
    from gaia_cli.output import render_fields, render_table
    out = []
    if "overhead" in figures:
        out.append("Per-call overhead on the fake driver (ns)")
        out.append(render_fields(_pairs(figures["overhead"])))
    if "share_accuracy" in figures:
        out.append("\nShare accuracy on the fake driver (one shared device timeline)")
        acc = figures["share_accuracy"]
        rows = acc.get("rows", acc) if isinstance(acc, dict) else acc
        if isinstance(rows, list) and rows and isinstance(rows[0], dict):
            keys = list(dict.fromkeys(k for r in rows for k in r))     # every row's columns, in order
            out.append(render_table([k.upper() for k in keys], [[_fmt(r.get(k, "")) for k in keys] for r in rows]))
        else:
            out.append(render_fields(_pairs(acc if isinstance(acc, dict) else {"result": acc})))
    real = figures.get("real_gpu", {})
    out.append(f"\nReal GPU: {real.get('device', 'none')} (library: {real.get('library', 'none')})")
    out.append(render_table(["FIGURE", "MEASURED", "TARGET", "MET"],
                            [[r["figure"], r["measured"], r["target"], _fmt(r["met"])] for r in real.get("rows", [])]))
    return "\n".join(out)


def _pairs(doc, prefix: str = "") -> list:
    if not isinstance(doc, dict):
        return [(prefix.rstrip(".") or "value", _fmt(doc))]
    pairs = []
    for key, value in doc.items():
        pairs += _pairs(value, f"{prefix}{key}.") if isinstance(value, dict) else [(f"{prefix}{key}", _fmt(value))]
    return pairs


def _fmt(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
