"""How programs reach libvcuda's hooks, against the fake driver: cuGetProcAddress (CUDA 12+ _v2 and the
11.3 lookup), dlsym on the driver, direct linking; version-aware variants (_v2, pre-3.2, _ptsz); a
driver whose lookup returns unexported addresses; dlsym(RTLD_NEXT) keeping its meaning for the
libraries loaded after libvcuda; NVML reached first (pynvml) initialising the library."""
import ctypes  # noqa: F401  (used in the subprocess scripts' text)
import subprocess
import sys

import pytest

from tests.vcuda import probe
from tests.vcuda.build import built, run_env
from tests.vcuda.probe import MiB

pytestmark = pytest.mark.timeout(120)

OOM = 2

RESOLVE = [
    # mode, options, name asked for, symbol of libvcuda expected (None: the driver's own)
    ("gpa", [], "cuMemAlloc_v2", "cuMemAlloc_v2"),
    ("gpa", [], "cuMemAlloc", "cuMemAlloc"),                  # asked with cudaVersion 3010: the old ABI
    ("gpa1", [], "cuMemAlloc_v2", "cuMemAlloc_v2"),
    ("gpa", ["--version", "10000"], "cuIpcOpenMemHandle_v2", "cuIpcOpenMemHandle"),
    ("gpa", [], "cuIpcOpenMemHandle_v2", "cuIpcOpenMemHandle_v2"),
    ("gpa", [], "cuMemGetInfo_v2", "cuMemGetInfo_v2"),
    ("gpa", [], "cuDeviceTotalMem_v2", "cuDeviceTotalMem_v2"),
    ("gpa", [], "cuMemAllocAsync", "cuMemAllocAsync"),
    ("gpa", ["--ptds"], "cuMemAllocAsync", "cuMemAllocAsync_ptsz"),
    ("gpa", ["--ptds"], "cuMemFreeAsync", "cuMemFreeAsync_ptsz"),
    ("gpa1", ["--ptds"], "cuMemAllocFromPoolAsync", "cuMemAllocFromPoolAsync_ptsz"),
    ("gpa", [], "cuLaunchKernel", "cuLaunchKernel"),
    ("gpa", ["--ptds"], "cuLaunchKernel", "cuLaunchKernel_ptsz"),
    ("gpa", ["--ptds"], "cuLaunchKernelEx", "cuLaunchKernelEx_ptsz"),
    ("gpa1", [], "cuLaunchCooperativeKernel", "cuLaunchCooperativeKernel"),
    ("gpa", ["--ptds"], "cuGraphLaunch", "cuGraphLaunch_ptsz"),
    ("gpa", [], "cuMemCreate", "cuMemCreate"),
    ("gpa", [], "cuMipmappedArrayCreate", "cuMipmappedArrayCreate"),
    ("gpa", [], "cuArray3DCreate_v2", "cuArray3DCreate_v2"),
    ("gpa", [], "cuGetProcAddress", "cuGetProcAddress_v2"),   # the lookup hands out the hooked lookup
    ("gpa1", [], "cuGetProcAddress_v2", "cuGetProcAddress_v2"),
    ("gpa", ["--version", "11040"], "cuGetProcAddress", "cuGetProcAddress"),
    ("dlsym", [], "cuMemAlloc_v2", "cuMemAlloc_v2"),
    ("dlsym", [], "cuMemAllocPitch", "cuMemAllocPitch"),
    ("dlsym", ["--ptds"], "cuMemAllocAsync", "cuMemAllocAsync_ptsz"),
    ("dlsym", [], "cuGetProcAddress_v2", "cuGetProcAddress_v2"),
    ("dlsym", [], "cuLaunchKernelEx", "cuLaunchKernelEx"),
    # not interposed: the driver's own, untouched
    ("gpa", [], "cuCtxCreate_v2", None),
    ("gpa", [], "cuStreamCreate", None),
    ("dlsym", [], "cuMemcpyHtoD_v2", None),
]


@pytest.mark.parametrize("aliases", [False, True], ids=["exported", "unexported-addresses"])
@pytest.mark.parametrize("mode,options,name,symbol", RESOLVE)
def test_entry_points_resolve_to_the_hooks(tmp_path, mode, options, name, symbol, aliases):
    """aliases: the fake's lookup returns internal functions (FAKE_CUDA_GPA_ALIASES), which libvcuda
    cannot recognise by address: it must pick the variant from the version and flags."""
    if aliases and mode == "dlsym":
        pytest.skip("dlsym answers with exported symbols only")
    extra = {"FAKE_CUDA_GPA_ALIASES": 1} if aliases else {}
    out = probe.run("resolve", name, mode=mode, options=options, conf=probe.config(tmp_path, limit=MiB), **extra)
    assert out[-1]["found"]
    if symbol is None:
        assert out[-1]["lib"] == "libcuda.so.1"
    else:
        assert (out[-1]["lib"], out[-1]["symbol"]) == ("libvcuda.so", symbol)


@pytest.mark.parametrize("mode,options,cmd", [
    ("gpa", [], "mem"), ("gpa1", [], "mem"), ("gpa", [], "mem1"), ("gpa", ["--ptds"], "async"),
])
def test_lookups_returning_unexported_addresses_are_still_enforced(tmp_path, mode, options, cmd):
    conf = probe.config(tmp_path, limit=8 * MiB)
    out = probe.run(cmd, 6 * MiB, cmd, 6 * MiB, "free", 0, cmd, 6 * MiB, "info", mode=mode, options=options,
                    conf=conf, FAKE_CUDA_GPA_ALIASES=1)
    assert [x["rc"] for x in out if x["cmd"] == cmd] == [0, OOM, 0]
    assert probe.used(out[-1]) == 6 * MiB


def test_python_ctypes_reaches_the_hooks_and_nvml_first_initialises(tmp_path):
    """A process that touches NVML before (or without) CUDA: pynvml's memory info already reports the
    container's limit; ctypes' dlsym on libcuda gets the hooks; dlsym for a hooked name on a library
    that does not define it still finds nothing."""
    conf = probe.config(tmp_path, limit=96 * MiB)
    rig = built()
    script = f"""
import ctypes, pynvml
pynvml.nvmlInit()
h = pynvml.nvmlDeviceGetHandleByIndex(0)
m1 = pynvml.nvmlDeviceGetMemoryInfo(h)
m2 = pynvml.nvmlDeviceGetMemoryInfo(h, version=pynvml.nvmlMemory_v2)
vcuda = ctypes.CDLL({str(rig.libvcuda)!r})
cuda = ctypes.CDLL("libcuda.so.1")
addr = lambda f: ctypes.cast(f, ctypes.c_void_p).value
print(m1.total, m1.used, m1.free, m2.total, m2.used, m2.free,
      addr(cuda.cuMemAlloc_v2) == addr(vcuda.cuMemAlloc_v2),
      addr(cuda.cuCtxCreate_v2) != addr(getattr(vcuda, "cuCtxCreate_v2", None) or 0),
      hasattr(ctypes.CDLL("libnvidia-ml.so.1"), "cuMemAlloc_v2"))
"""
    proc = subprocess.run([sys.executable, "-c", script], env=run_env(rig, conf), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    limit = 96 * MiB
    assert proc.stdout.split() == [str(limit), "0", str(limit)] * 2 + ["True", "True", "False"]


def test_dlsym_rtld_next_keeps_its_meaning_for_later_libraries(tmp_path):
    """A library loaded after libvcuda that wraps puts() with dlsym(RTLD_NEXT, "puts") must get libc's
    puts, not its own (which would recurse until the stack overflows)."""
    (tmp_path / "wrap.c").write_text(
        '#define _GNU_SOURCE\n#include <dlfcn.h>\n#include <stdio.h>\n'
        'int puts(const char *s) {\n'
        '    int (*next)(const char *) = (int (*)(const char *))dlsym(RTLD_NEXT, "puts");\n'
        '    if (next == (void *)puts) return -1;\n'
        '    fputs("wrapped: ", stdout);\n'
        '    return next(s);\n}\n')
    (tmp_path / "main.c").write_text('#include <stdio.h>\nint main(void) { return puts("hello") < 0; }\n')
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", tmp_path / "libwrap.so", tmp_path / "wrap.c", "-ldl"], check=True)
    subprocess.run(["gcc", "-o", tmp_path / "main", tmp_path / "main.c", f"-L{tmp_path}", "-lwrap",
                    f"-Wl,-rpath,{tmp_path}"], check=True)
    env = run_env(built(), probe.config(tmp_path, limit=MiB))
    proc = subprocess.run([tmp_path / "main"], env=env, capture_output=True, text=True, timeout=30)
    assert (proc.returncode, proc.stdout) == (0, "wrapped: hello\n"), proc.stderr


def test_a_program_without_cuda_is_untouched(tmp_path):
    """The library is preloaded into every process of a GPU container (ld.so.preload): one that never
    calls the driver must run as usual and leave no trace in the region."""
    env = run_env(built(), probe.config(tmp_path, limit=MiB))
    proc = subprocess.run(["sh", "-c", "echo ok; ls / >/dev/null"], env=env, capture_output=True, text=True,
                          timeout=30)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "ok\n", "")
    assert not (tmp_path / "region").exists()
