"""Builds the vCUDA test rig once per process: the fake CUDA driver (every tests/vcuda/fake_cuda*.c
compiled into ONE libcuda.so.1, since a real driver is one library), the fake NVML (fake_nvml.c),
libvcuda.so itself (through gaia_node.vcuda.build, the same gcc invocation a node uses), and every
C test program under tests/vcuda/progs/ linked against the fake driver.

    from tests.vcuda.build import built, run_env
    rig = built()                      # a Rig; raises BuildError (gcc's output) when gcc fails
    env = run_env(rig, config_path)    # LD_PRELOAD=libvcuda.so, the fake driver on the search path

Also used by gaia_node.vcuda.bench for the figures of `gaia bench vcuda`, so it must not import pytest.
"""
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROGS = HERE / "progs"
CFLAGS = ["-O2", "-std=gnu11", "-Wall", "-pthread"]


class BuildError(Exception):
    """The rig could not be built; the message carries the compiler's output."""


@dataclass
class Rig:
    dir: Path                              # everything below lives here
    libcuda: Path                          # the fake driver, libcuda.so.1 (+ libcuda.so link)
    libvcuda: Path
    libnvml: Path = None                   # the fake NVML, libnvidia-ml.so.1, when fake_nvml.c exists
    progs: dict = field(default_factory=dict)   # program name -> executable

    def prog(self, name: str) -> Path:
        try:
            return self.progs[name]
        except KeyError:
            raise BuildError(f"no test program {name!r} under {PROGS} (have: {sorted(self.progs)})") from None


_lock = threading.Lock()
_rig = None


def _cc(cmd):
    cc = os.environ.get("CC") or "gcc"
    if shutil.which(cc) is None:
        raise BuildError(f"no C compiler {cc!r} on PATH")
    proc = subprocess.run([cc, *cmd], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise BuildError(f"{cc} {' '.join(map(str, cmd))}\nexited {proc.returncode}:\n{proc.stderr.strip()}")


def build_rig(out_dir) -> Rig:
    """Compiles everything into out_dir and returns the Rig."""
    # gaia_node.vcuda.build the module (gaia_node.vcuda's own `build` attribute is the function)
    from gaia_node.vcuda.build import SRC_DIR, BuildError as VBuildError, build as vbuild

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fake_srcs = sorted(HERE.glob("fake_cuda*.c"))
    libcuda = out / "libcuda.so.1"
    # -Bsymbolic: the fake's calls to its own entry points (cuGraphLaunch_ptsz -> cuGraphLaunch) stay
    # inside it, as a real driver's do, instead of landing in libvcuda's preloaded hooks a second time.
    # -I SRC_DIR: fake_cuda.c and the probes take the driver ABI types from libvcuda's cuda_types.h.
    _cc(["-shared", "-fPIC", *CFLAGS, f"-I{SRC_DIR}", "-Wl,-Bsymbolic", "-Wl,-soname,libcuda.so.1", "-o", str(libcuda),
         *map(str, fake_srcs), "-ldl"])
    link = out / "libcuda.so"
    if not link.exists():
        link.symlink_to("libcuda.so.1")
    libnvml = None
    if (HERE / "fake_nvml.c").exists():
        libnvml = out / "libnvidia-ml.so.1"
        _cc(["-shared", "-fPIC", *CFLAGS, "-Wl,-soname,libnvidia-ml.so.1", "-o", str(libnvml),
             str(HERE / "fake_nvml.c"), "-ldl"])
        if not (out / "libnvidia-ml.so").exists():
            (out / "libnvidia-ml.so").symlink_to("libnvidia-ml.so.1")
    try:
        libvcuda = vbuild(out)
    except VBuildError as e:
        raise BuildError(str(e)) from None
    progs = {}
    for src in sorted(PROGS.glob("*.c")):
        exe = out / src.stem
        # --as-needed: a program that only dlopen()s the driver (vcuda_probe) is not linked with it
        _cc([*CFLAGS, f"-I{SRC_DIR}", "-o", str(exe), str(src), f"-L{out}", "-Wl,--as-needed", "-lcuda",
             f"-Wl,-rpath,{out}", "-ldl"])
        progs[src.stem] = exe
    return Rig(dir=out, libcuda=libcuda, libvcuda=libvcuda, libnvml=libnvml, progs=progs)


def built() -> Rig:
    """The rig for this process, built on first use into a temporary directory."""
    global _rig
    with _lock:
        if _rig is None:
            _rig = build_rig(tempfile.mkdtemp(prefix="gaia-vcuda-rig-"))
        return _rig


def run_env(rig: Rig, config=None, preload=True, **extra) -> dict:
    """An environment for running a test program: the fake driver first on the library path,
    libvcuda preloaded (unless preload=False) with GAIA_VCUDA_CONFIG=config, plus `extra`
    (e.g. FAKE_CUDA_TIMELINE, FAKE_CUDA_TAG)."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "GAIA_VCUDA_CONFIG")}
    env["LD_LIBRARY_PATH"] = str(rig.dir) + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    if preload:
        env["LD_PRELOAD"] = str(rig.libvcuda)
    if config is not None:
        env["GAIA_VCUDA_CONFIG"] = str(config)
    else:
        # no config file: the library passes everything through
        env["GAIA_VCUDA_CONFIG"] = str(rig.dir / "no-such-vcuda.conf")
    env.update({k: str(v) for k, v in extra.items()})
    return env
