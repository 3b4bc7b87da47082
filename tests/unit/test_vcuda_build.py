"""Building libvcuda.so: no CUDA or NVML headers, the exported entry points, the stamp that tells a stale
build, the optional build (setup.py's step warns, library_path() builds lazily), and a machine with no
C compiler, where GPU sharing is unavailable and nothing else breaks."""
import configparser
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import gaia_node.vcuda as vcuda
from gaia_node.vcuda.build import CFLAGS, SRC_DIR, BuildError, build, build_optional, is_current, source_digest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)

# the contract with programs: every interposed driver entry point, dlsym, and the NVML memory info
EXPORTED = {
    "dlsym", "nvmlDeviceGetMemoryInfo", "nvmlDeviceGetMemoryInfo_v2",
    "cuInit", "cuGetProcAddress", "cuGetProcAddress_v2",
    "cuMemAlloc", "cuMemAlloc_v2", "cuMemAllocPitch", "cuMemAllocPitch_v2", "cuMemAllocManaged",
    "cuMemFree", "cuMemFree_v2", "cuArrayCreate", "cuArrayCreate_v2", "cuArray3DCreate", "cuArray3DCreate_v2",
    "cuArrayDestroy", "cuMipmappedArrayCreate", "cuMipmappedArrayDestroy",
    "cuMemCreate", "cuMemRelease", "cuMemMap", "cuMemUnmap",
    "cuMemAllocAsync", "cuMemAllocAsync_ptsz", "cuMemAllocFromPoolAsync", "cuMemAllocFromPoolAsync_ptsz",
    "cuMemFreeAsync", "cuMemFreeAsync_ptsz", "cuMemPoolCreate", "cuMemPoolDestroy",
    "cuIpcGetMemHandle", "cuIpcOpenMemHandle", "cuIpcOpenMemHandle_v2", "cuIpcCloseMemHandle",
    "cuMemGetInfo", "cuMemGetInfo_v2", "cuDeviceTotalMem", "cuDeviceTotalMem_v2",
    "cuLaunchKernel", "cuLaunchKernel_ptsz", "cuLaunchKernelEx", "cuLaunchKernelEx_ptsz",
    "cuLaunchCooperativeKernel", "cuLaunchCooperativeKernel_ptsz", "cuGraphLaunch", "cuGraphLaunch_ptsz",
}


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return build(tmp_path_factory.mktemp("vcuda-lib"))


def test_sources_include_no_cuda_or_nvml_header():
    for src in sorted(SRC_DIR.glob("*.[ch]")):
        for line in src.read_text().splitlines():
            m = re.match(r"\s*#\s*include\s*[<\"]([^>\"]+)[>\"]", line)
            if m:
                assert not re.search(r"(^|/)(cuda|cudaTypedefs|cuda_runtime\w*|nvml)\.h$", m.group(1)), f"{src.name}: {line}"


def test_compiles_against_no_cuda_header_even_when_one_is_on_the_path(tmp_path):
    """With an include directory whose cuda.h and nvml.h refuse to compile on the command line and in
    CPATH, every source still compiles, and gcc -H lists no header from there or from a CUDA install."""
    poisoned = tmp_path / "include"
    poisoned.mkdir()
    for name in ("cuda.h", "nvml.h", "cudaTypedefs.h"):
        (poisoned / name).write_text(f'#error "{name} must not be included"\n')
    cflags = [f for f in CFLAGS if not f.startswith(("-shared", "-Wl,"))]
    for src in sorted(SRC_DIR.glob("*.c")):
        proc = subprocess.run(["gcc", *cflags, "-H", "-fsyntax-only", f"-I{poisoned}", f"-I{SRC_DIR}", str(src)],
                              capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "CPATH": str(poisoned)})
        assert proc.returncode == 0, proc.stderr
        headers = [line.lstrip(". ") for line in proc.stderr.splitlines() if line.startswith(".")]
        assert headers, "gcc -H listed nothing"
        bad = [h for h in headers if str(poisoned) in h or "/cuda" in h.replace(str(SRC_DIR / "cuda_types.h"), "")]
        assert not bad, f"{src.name} reached {bad}"


def test_exports_exactly_the_interposed_entry_points(lib):
    proc = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True, check=True)
    exported = {line.split()[-1] for line in proc.stdout.splitlines() if line.split()[1] in ("T", "W")}
    assert exported == EXPORTED


def test_the_stamp_tells_a_build_from_other_sources(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(SRC_DIR, src)
    lib = build(tmp_path / "out", src_dir=src)
    assert is_current(lib, src)
    assert (tmp_path / "out" / "libvcuda.so.stamp").read_text().strip() == source_digest(src)
    (src / "config.c").write_text((src / "config.c").read_text() + "\n/* changed */\n")
    assert not is_current(lib, src)


def test_a_compile_error_is_reported_with_gccs_output(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(SRC_DIR, src)
    (src / "broken.c").write_text("int f(void) { return undeclared_name; }\n")
    with pytest.raises(BuildError, match="undeclared_name"):
        build(tmp_path / "out", src_dir=src)
    assert not list((tmp_path / "out").glob("*.so"))  # no half-written library left behind


@pytest.fixture
def fresh_lookup(monkeypatch, tmp_path):
    """gaia_node.vcuda looking for the library in empty directories of this test's own."""
    monkeypatch.delenv("GAIA_VCUDA_LIB", raising=False)
    monkeypatch.setattr(vcuda, "PACKAGE_DIR", tmp_path / "package")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    vcuda._reset()
    yield tmp_path
    vcuda._reset()


def test_no_compiler_means_no_gpu_sharing_and_nothing_else_breaks(fresh_lookup, monkeypatch, caplog):
    monkeypatch.setenv("CC", "/nonexistent/gcc")
    with caplog.at_level(logging.WARNING, logger="gaia.node.vcuda"):
        assert vcuda.library_path() is None
        assert vcuda.available() is False
    assert "no C compiler: '/nonexistent/gcc'" in vcuda.last_error()
    assert "GPU sharing unavailable" in caplog.text
    with pytest.raises(BuildError, match="no C compiler"):
        vcuda.build(fresh_lookup / "out")
    warnings = []
    assert build_optional(fresh_lookup / "out", warn=warnings.append) is None
    assert "GPU sharing will be unavailable" in warnings[0]
    # the rest of the node still imports and reports no GPU sharing rather than failing
    proc = subprocess.run([sys.executable, "-m", "gaia_node.vcuda.build", "--out", str(fresh_lookup / "out")],
                          capture_output=True, text=True, env={"PATH": "/nonexistent", "CC": "gcc"}, cwd=ROOT)
    assert proc.returncode == 1 and "libvcuda not built: no C compiler" in proc.stderr


def test_the_library_is_built_lazily_where_the_package_is_read_only(fresh_lookup, monkeypatch):
    blocker = fresh_lookup / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setattr(vcuda, "PACKAGE_DIR", blocker / "vcuda")  # cannot be created
    lib = vcuda.library_path()
    assert lib == fresh_lookup / "cache" / "gaia" / "vcuda" / "libvcuda.so"
    assert is_current(lib) and vcuda.available()
    assert vcuda.library_path() == lib  # found again, not rebuilt
    mtime = lib.stat().st_mtime_ns
    vcuda._reset()
    assert vcuda.library_path() == lib and lib.stat().st_mtime_ns == mtime


def test_python_m_build_writes_the_library(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "gaia_node.vcuda.build", "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(tmp_path / "libvcuda.so") and is_current(tmp_path / "libvcuda.so")


def test_the_package_ships_the_sources_and_builds_them_in_its_build_step(tmp_path):
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert [p.strip() for p in cfg["options.package_data"]["gaia_node.vcuda"].split(",")] == ["src/*.c", "src/*.h"]
    # setup.py's build_py puts libvcuda.so into the build tree, and only warns without a compiler
    for cc, built in (("gcc", True), ("/nonexistent/gcc", False)):
        out = tmp_path / Path(cc).name.replace("/", "_") / str(built)
        proc = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(out)], cwd=ROOT,
                              capture_output=True, text=True, timeout=120,
                              env={"PATH": "/usr/bin:/bin", "CC": cc, "HOME": str(tmp_path)})
        assert proc.returncode == 0, proc.stderr
        lib = out / "gaia_node" / "vcuda" / "libvcuda.so"
        assert lib.exists() is built, proc.stderr
        assert (out / "gaia_node" / "vcuda" / "src" / "hooks.c").exists()
        if not built:
            assert "libvcuda.so not built" in proc.stderr
