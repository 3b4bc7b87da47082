"""libvcuda's GPU memory limit, against the fake driver (tests/vcuda): every allocation path fails with
CUDA_ERROR_OUT_OF_MEMORY past the container's limit and gives memory back when freed; the sizes charged;
processes of one container share one budget with no overcommit under a race; a process SIGKILLed while
holding the region lock does not stall the others; exits give back; memory info agrees across
cuMemGetInfo, cuDeviceTotalMem and NVML."""
import signal
import subprocess
import sys
import time

import pytest

from gaia_node.vcuda import region as region_reader
from tests.vcuda import probe
from tests.vcuda.probe import MiB

OOM = 2  # CUDA_ERROR_OUT_OF_MEMORY

pytestmark = pytest.mark.timeout(120)


def allocs(out):
    """rc of each allocating command, in order."""
    return [x["rc"] for x in out if x["cmd"] not in ("info", "free", "freeall", "release", "unmap", "map", "export")]


def infos(out):
    return [probe.used(x) for x in out if x["cmd"] == "info"]


# (path name, allocation command that takes SIZE, free command, modes it is reached by, options)
PATHS = [
    ("cuMemAlloc_v2", ["mem"], ("direct", "dlsym", "gpa", "gpa1"), ()),
    ("cuMemAlloc (pre-3.2 ABI)", ["mem1"], ("direct", "dlsym", "gpa"), ()),
    ("cuMemAllocManaged", ["managed"], ("dlsym", "gpa"), ()),
    ("cuMemAllocAsync", ["async"], ("direct", "gpa"), ()),
    ("cuMemAllocAsync_ptsz", ["async"], ("dlsym", "gpa"), ("--ptds",)),
    ("cuMemAllocFromPoolAsync", ["pool"], ("dlsym", "gpa"), ()),
    ("cuMemAllocFromPoolAsync_ptsz", ["pool"], ("gpa",), ("--ptds",)),
    ("cuMemCreate + cuMemMap", ["vmm"], ("direct", "gpa"), ()),
]
CASES = [pytest.param(cmd, mode, opts, id=f"{name}-{mode}") for name, cmd, modes, opts in PATHS for mode in modes]


@pytest.mark.parametrize("cmd,mode,opts", CASES)
def test_allocation_past_the_limit_fails_and_free_gives_back(tmp_path, cmd, mode, opts):
    conf = probe.config(tmp_path, limit=8 * MiB)
    size = 6 * MiB
    out = probe.run(*cmd, size, "info", *cmd, size, "info", "free", 0, "info", *cmd, size, "info",
                    mode=mode, conf=conf, options=opts)
    assert allocs(out) == [0, OOM, 0]
    assert infos(out) == [size, size, 0, size]
    assert region_reader.read(tmp_path / "region").used() == 0  # the process exited: all given back


ARRAY_CASES = [
    # command and arguments, bytes charged (memory.h: texels x element size, layers/faces in Depth)
    pytest.param(["array", 1024, 512, 0x20, 2], 1024 * 512 * 4 * 2, id="2D float2"),
    pytest.param(["array1", 1024, 512, 0x20, 2], 1024 * 512 * 4 * 2, id="2D float2 pre-3.2"),
    pytest.param(["array", 4096, 0, 0x01, 1], 4096, id="1D uint8 (Height 0)"),
    pytest.param(["array", 1024, 1024, 0x91, 1], 256 * 256 * 8, id="BC1: 8 bytes per 4x4 block"),
    pytest.param(["array", 1000, 1000, 0x9d, 1], 250 * 250 * 16, id="BC7: 16 bytes per 4x4 block"),
    pytest.param(["array", 1920, 1080, 0xb0, 1], 1920 * 1080 * 3 // 2, id="NV12: 1.5 bytes a pixel"),
    pytest.param(["array", 256, 256, 0xc2, 4], 256 * 256 * 4, id="UNORM_INT8X4: channels implied"),
    pytest.param(["array3d", 256, 256, 16, 0x20, 1, 0], 256 * 256 * 16 * 4, id="3D float"),
    pytest.param(["array3d", 256, 256, 16, 0x10, 4, 1], 256 * 256 * 16 * 8, id="layered half4"),
    pytest.param(["array3d", 128, 128, 6, 0x20, 1, 4], 128 * 128 * 6 * 4, id="cubemap"),
    pytest.param(["array3d1", 64, 64, 64, 0x03, 1], 64 ** 3 * 4, id="3D uint32 pre-3.2"),
    pytest.param(["mipmap", 1024, 1024, 0, 0x20, 1, 11, 0], 4 * (4 ** 11 - 1) // 3, id="mipmap 2D, 11 levels"),
    pytest.param(["mipmap", 64, 64, 64, 0x20, 1, 7, 0], 4 * sum(8 ** k for k in range(7)), id="mipmap 3D"),
    pytest.param(["mipmap", 64, 64, 10, 0x20, 1, 3, 1], 4 * 10 * (64 * 64 + 32 * 32 + 16 * 16), id="mipmap layered"),
    pytest.param(["mipmap", 4, 4, 0, 0x20, 1, 6, 0], 4 * (16 + 4 + 1 + 1 + 1 + 1), id="mipmap levels past 1x1"),
    pytest.param(["array3d", 4096, 4096, 1, 0x20, 4, 0x40], 0, id="sparse: memory comes from cuMemCreate"),
    pytest.param(["mipmap", 4096, 4096, 0, 0x20, 4, 4, 0x80], 0, id="deferred mapping"),
]


@pytest.mark.parametrize("cmd,charged", ARRAY_CASES)
def test_arrays_are_charged_their_texel_bytes(tmp_path, cmd, charged):
    conf = probe.config(tmp_path, limit=probe.GiB)
    out = probe.run(*cmd, "info", "free", 0, "info", mode="gpa", conf=conf)
    assert allocs(out) == [0]
    assert infos(out) == [charged, 0]


@pytest.mark.parametrize("kind,cmd", [
    ("cuArrayCreate_v2", ["array", 1024, 512, 0x20, 1]),
    ("cuArrayCreate", ["array1", 1024, 512, 0x20, 1]),
    ("cuArray3DCreate_v2", ["array3d", 1024, 512, 1, 0x20, 1, 0]),
    ("cuArray3DCreate", ["array3d1", 1024, 512, 1, 0x20, 1]),
    ("cuMipmappedArrayCreate", ["mipmap", 1024, 512, 0, 0x20, 1, 1, 0]),
])
@pytest.mark.parametrize("mode", ["direct", "dlsym"])
def test_array_past_the_limit_fails_and_destroy_gives_back(tmp_path, kind, cmd, mode):
    conf = probe.config(tmp_path, limit=3 * MiB)  # each array is 2 MiB
    out = probe.run(*cmd, *cmd, "free", 0, *cmd, "info", mode=mode, conf=conf)
    assert allocs(out) == [0, OOM, 0]
    assert infos(out) == [2 * MiB]


@pytest.mark.parametrize("cmd", ["pitch", "pitch1"])
def test_pitch_is_charged_the_drivers_pitch(tmp_path, cmd):
    """Reserved at the width rounded to 512 x height, settled on the pitch the driver chose."""
    conf = probe.config(tmp_path, limit=1_000_000)
    # fake pitch alignment 256: 1100 -> 1280 bytes a row, less than the 1536 reserved: the rest goes back
    out = probe.run(cmd, 1100, 400, "info", cmd, 1100, 400, "free", 0, "info", conf=conf, mode="gpa")
    assert [x["pitch"] for x in out if x["cmd"] == cmd] == [1280, 0]
    assert allocs(out) == [0, OOM]
    assert infos(out) == [1280 * 400, 0]
    # alignment 1024: 2048 a row, more than reserved: the difference is reserved too ...
    out = probe.run(cmd, 1100, 400, "info", conf=conf, mode="dlsym", FAKE_CUDA_PITCH_ALIGN=1024)
    assert allocs(out) == [0] and infos(out) == [2048 * 400]
    # ... and when it does not fit, the driver's allocation is undone and the call fails
    tight = probe.config(tmp_path, limit=700_000, name="tight.conf", region="tight")
    out = probe.run(cmd, 1100, 400, "info", conf=tight, mode="dlsym", FAKE_CUDA_PITCH_ALIGN=1024)
    assert allocs(out) == [OOM] and infos(out) == [0]


def test_vmm_memory_goes_back_when_released_and_unmapped(tmp_path):
    """cuMemCreate charges; the driver frees the memory only once released AND unmapped, so do we."""
    conf = probe.config(tmp_path, limit=8 * MiB)
    out = probe.run("vmm", 4 * MiB, "vmm", 4 * MiB, "vmm_create", 2 * MiB, "info",
                    "release", 0, "info",       # released but still mapped: still held
                    "unmap", 0, "info",         # last mapping gone: given back
                    "vmm_create", 2 * MiB, "info",
                    "unmap", 1, "info",         # unmapped but not released: still held
                    "release", 1, "info", mode="gpa", conf=conf)
    assert allocs(out) == [0, 0, OOM, 0]
    assert infos(out) == [8 * MiB, 8 * MiB, 4 * MiB, 6 * MiB, 6 * MiB, 2 * MiB]


def _exporter(tmp_path, conf, size):
    """A process holding `size` bytes and exporting them over IPC; (process, handle hex)."""
    p = probe.start("mem", size, "export", 0, "hold", mode="dlsym", conf=conf)
    lines = [probe.parse(p.stdout.readline())[0] for _ in range(3)]
    assert lines[0]["rc"] == 0 and lines[1]["rc"] == 0, lines
    return p, lines[1]["handle"]


def test_ipc_import_from_outside_the_container_is_charged(tmp_path):
    other = probe.config(tmp_path, limit=probe.GiB, name="other.conf", region="other-region")
    exporter, handle = _exporter(tmp_path, other, 6 * MiB)
    try:
        conf = probe.config(tmp_path, limit=8 * MiB)
        out = probe.run("import", handle, "info", "import", handle, "free", 0, "info", "import", handle, "info",
                        mode="gpa", conf=conf)
        assert allocs(out) == [0, OOM, 0]
        assert infos(out) == [6 * MiB, 0, 6 * MiB]
    finally:
        exporter.kill()
        exporter.wait()


def test_ipc_import_within_the_container_is_not_charged_twice(tmp_path):
    conf = probe.config(tmp_path, limit=8 * MiB)
    exporter, handle = _exporter(tmp_path, conf, 6 * MiB)
    try:
        # the exporter holds 6 MiB; importing them costs nothing more, a new 6 MiB does not fit
        out = probe.run("import", handle, "info", "mem", 6 * MiB, "free", 0, "info", mode="gpa", conf=conf)
        assert allocs(out) == [0, OOM]
        assert infos(out) == [6 * MiB, 6 * MiB]
    finally:
        exporter.kill()
        exporter.wait()


def test_exit_gives_back_and_a_killed_process_is_reclaimed(tmp_path):
    conf = probe.config(tmp_path, limit=8 * MiB)
    probe.run("mem", 6 * MiB, "exit", 0, conf=conf)                 # no free: the exit gives back
    assert region_reader.read(tmp_path / "region").used() == 0
    argv, env = probe.command("mem", 6 * MiB, "kill", conf=conf)     # SIGKILL: no exit handler runs
    assert subprocess.run(argv, env=env, capture_output=True).returncode == -signal.SIGKILL
    region = region_reader.read(tmp_path / "region")
    assert region.used() == 6 * MiB and len(region.procs) == 1       # still charged to the dead pid
    out = probe.run("mem", 6 * MiB, "info", conf=conf)                # would not fit: the dead are reclaimed
    assert allocs(out) == [0] and infos(out) == [6 * MiB]
    assert region_reader.read(tmp_path / "region").reclaimed_bytes == 6 * MiB
    # memory info does not wait for an allocation to need it: it never counts the dead
    argv, env = probe.command("mem", 2 * MiB, "kill", conf=conf)
    subprocess.run(argv, env=env, capture_output=True)
    assert region_reader.read(tmp_path / "region").used() == 2 * MiB
    info = probe.run("info", conf=conf)[-1]
    assert probe.used(info) == info["nvml_used"] == 0


@pytest.mark.parametrize("n", [2, 8])
def test_processes_share_one_budget_without_overcommit(tmp_path, n):
    """n processes race to fill the container's budget: together they get exactly the limit."""
    limit, chunk = 64 * MiB, 256 * 1024
    conf = probe.config(tmp_path, limit=limit)
    go = tmp_path / "go"
    procs = [probe.start("wait", go, "fill", chunk, "touch", tmp_path / f"done{i}", "wait", tmp_path / "end",
                         "freeall", "info", mode=("gpa", "dlsym", "direct")[i % 3], conf=conf) for i in range(n)]
    time.sleep(0.3)
    go.touch()
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"done{i}").exists() for i in range(n)):
        assert time.monotonic() < deadline, "fillers did not finish"
        time.sleep(0.02)
    region = region_reader.read(tmp_path / "region")
    assert region.used() == limit                                     # full, and not one byte over
    assert sum(sum(p.used.values()) for p in region.procs) == limit   # the slots add up to the total
    (tmp_path / "end").touch()
    outs = [probe.parse(p.communicate(timeout=60)[0]) for p in procs]
    got = [next(x for x in out if x["cmd"] == "fill")["bytes"] for out in outs]
    assert sum(got) == limit, got
    assert region_reader.read(tmp_path / "region").used() == 0


@pytest.mark.parametrize("at", ["before", "mid"], ids=["before-any-change", "between-slot-and-total"])
def test_a_process_killed_holding_the_lock_does_not_stall_the_others(tmp_path, at):
    """The victim sleeps holding the region lock (test hook) and is SIGKILLed there: either before it
    changed anything, or half way through (its own slot charged, the device total not yet)."""
    conf = probe.config(tmp_path, limit=64 * MiB)
    holder_a = probe.start("mem", 8 * MiB, "hold", conf=conf)       # holds memory, stays alive
    assert probe.parse(holder_a.stdout.readline())[0]["rc"] == 0
    marker = tmp_path / "locked"
    victim = probe.start("mem", 16 * MiB, "hold", conf=conf,
                         GAIA_VCUDA_TEST_HOLD_LOCK_MS=600_000, GAIA_VCUDA_TEST_HOLD_LOCK_FILE=marker,
                         GAIA_VCUDA_TEST_HOLD_LOCK_AT=at)
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert time.monotonic() < deadline and victim.poll() is None, "the victim never took the lock"
            time.sleep(0.01)
        waiter = probe.start("mem", 32 * MiB, "info", conf=conf)      # blocks on the lock the victim holds
        time.sleep(0.5)
        assert waiter.poll() is None, "the waiter did not wait for the lock"
        victim.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        out = probe.parse(waiter.communicate(timeout=30)[0])
        assert time.monotonic() - killed < 5                        # no timeout loop: the kernel hands it over
        assert allocs(out) == [0]
        # the region is whole again: the totals are the slots' sums. The victim's half-made charge
        # (mid) lives in its slot until it is found dead: at once when the repair sees it gone, or a
        # moment later if it is still exiting then (its device memory is not freed before either).
        victim_bytes = 16 * MiB if at == "mid" else 0
        assert infos(out)[0] in (8 * MiB + 32 * MiB, 8 * MiB + 32 * MiB + victim_bytes)
        region = region_reader.read(tmp_path / "region")
        assert region.owner_deaths == 1
        assert region.used() == sum(sum(p.used.values()) for p in region.procs)
        victim.wait()
        # the lock works normally afterwards, and the dead victim's bytes come back when needed (the
        # waiter has exited: only holder_a's 8 MiB remain)
        out = probe.run("mem", 56 * MiB, "mem", MiB, "info", conf=conf)
        assert allocs(out) == [0, OOM] and infos(out) == [64 * MiB]
        assert region_reader.read(tmp_path / "region").reclaimed_bytes == victim_bytes
    finally:
        for p in (holder_a, victim):
            p.kill()
            p.wait()


def test_memory_info_agrees_across_apis_and_processes(tmp_path):
    """cuMemGetInfo(_v2), cuDeviceTotalMem(_v2) and nvmlDeviceGetMemoryInfo(_v2) all say total = the limit
    and used = the container's use, whichever process asks and whichever ordinal it knows the GPU by."""
    limit = 256 * MiB
    conf = probe.config(tmp_path, limit=limit)
    # a holder that sees physical GPU 1 as its device 0 (as CUDA_VISIBLE_DEVICES=1,0 would)
    holder = probe.start("mem", 40 * MiB, "hold", conf=conf, FAKE_CUDA_VISIBLE="1,0")
    try:
        assert probe.parse(holder.stdout.readline())[0]["rc"] == 0
        for mode, options in (("gpa", ["--device", "1"]), ("direct", ["--device", "1"])):
            out = probe.run("mem", 10 * MiB, "info", mode=mode, conf=conf, options=options)
            info = out[-1]
            used = 50 * MiB
            assert (info["total"], info["free"]) == (limit, limit - used)
            assert (info["total_v1"], info["free_v1"]) == (limit, limit - used)
            assert info["device_total"] == info["device_total_v1"] == limit
            assert info["nvml_index"] == 1
            assert (info["nvml_total"], info["nvml_used"], info["nvml_free"]) == (limit, used, limit - used)
            assert (info["nvml_v2_total"], info["nvml_v2_used"], info["nvml_v2_free"]) == (limit, used, limit - used)
            assert info["nvml_v2_reserved"] == 0
        # the other GPU: nothing used there
        info = probe.run("info", conf=conf, options=["--device", "0"])[-1]
        assert (info["total"], info["free"], info["nvml_used"], info["nvml_index"]) == (limit, limit, 0, 0)
    finally:
        holder.kill()
        holder.wait()


def test_without_a_config_everything_passes_through(tmp_path):
    out = probe.run("mem", 10 * probe.GiB, "info", "mem", 10 * probe.GiB, "freeall", conf=None, mode="gpa")
    assert allocs(out) == [0, OOM]  # the fake device's own 16 GiB, not a limit
    info = out[1]
    assert (info["total"], probe.used(info)) == (probe.FAKE_TOTAL, 10 * probe.GiB)
    assert info["nvml_total"] == probe.FAKE_TOTAL and info["nvml_v2_reserved"] == 256 * MiB


def test_a_config_without_a_limit_accounts_but_reports_the_device(tmp_path):
    conf = probe.config(tmp_path, limit=None)
    holder = probe.start("mem", 40 * MiB, "hold", conf=conf)
    try:
        assert probe.parse(holder.stdout.readline())[0]["rc"] == 0
        assert region_reader.read(tmp_path / "region").used() == 40 * MiB
        info = probe.run("info", conf=conf)[-1]
        assert info["total"] == probe.FAKE_TOTAL and info["free"] == probe.FAKE_TOTAL
    finally:
        holder.kill()
        holder.wait()


def test_the_region_reader_names_a_file_that_is_not_a_region(tmp_path):
    (tmp_path / "junk").write_bytes(b"\0" * region_reader.SIZE)
    with pytest.raises(region_reader.RegionError, match="junk: not a version 1 vCUDA region"):
        region_reader.read(tmp_path / "junk")
    with pytest.raises(region_reader.RegionError, match="missing"):
        region_reader.read(tmp_path / "missing")


def test_bad_config_lines_are_named_and_keep_their_defaults(tmp_path):
    conf = tmp_path / "vcuda.conf"
    conf.write_text(f"memory_limit=lots\nshare=300\nmode=soft\ncolour=blue\nno equals sign\nregion={tmp_path / 'r'}\n")
    argv, env = probe.command("mem", 32 * MiB, conf=conf)
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for expected in ("line 1: memory_limit: not a byte count (got 'lots')", "line 2: share: not a percentage",
                     "line 3: mode: not hard or elastic", "line 4: colour: unknown key",
                     "line 5: no equals sign: not a key=value line"):
        assert expected in proc.stderr, proc.stderr
    assert probe.parse(proc.stdout)[0]["rc"] == 0  # no limit: the default


@pytest.mark.parametrize("text,limit", [("8Gi", 8 << 30), ("8G", 8 * 10 ** 9), ("512Mi", 512 << 20), ("1234", 1234)])
def test_memory_limit_units(tmp_path, text, limit):
    conf = tmp_path / "vcuda.conf"
    conf.write_text(f"memory_limit={text}\nregion={tmp_path / 'r'}\n")
    info = probe.run("info", conf=conf)[-1]
    assert info["total"] == limit and info["device_total"] == limit


def test_a_fork_child_does_not_give_back_its_parents_memory(tmp_path):
    """The table is per process: a child that frees nothing and exits leaves the parent's bytes charged."""
    conf = probe.config(tmp_path, limit=64 * MiB)
    script = (
        "import ctypes, os, sys\n"
        "cu = ctypes.CDLL('libcuda.so.1')\n"
        "ctx = ctypes.c_void_p(); p = ctypes.c_ulonglong()\n"
        "assert cu.cuInit(0) == 0 and cu.cuCtxCreate_v2(ctypes.byref(ctx), 0, 0) == 0\n"
        "assert cu.cuMemAlloc_v2(ctypes.byref(p), ctypes.c_size_t(16 << 20)) == 0\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    q = ctypes.c_ulonglong()\n"
        "    cu.cuCtxCreate_v2(ctypes.byref(ctx), 0, 0)\n"
        "    rc = cu.cuMemAlloc_v2(ctypes.byref(q), ctypes.c_size_t(8 << 20))\n"
        "    sys.exit(rc)\n"  # exit (not _exit): the exit handler gives back the child's own 8 MiB only
        "os.waitpid(pid, 0)\n"
        "f = ctypes.c_size_t(); t = ctypes.c_size_t()\n"
        "cu.cuMemGetInfo_v2(ctypes.byref(f), ctypes.byref(t))\n"
        "print(t.value - f.value)\n"
    )
    _, env = probe.command(conf=conf)
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.strip()) == 16 * MiB


def test_threads_of_one_process_share_the_budget_without_overcommit(tmp_path):
    """ctypes drops the GIL around foreign calls: 8 threads race through the hooks at once."""
    conf = probe.config(tmp_path, limit=64 * MiB)
    script = (
        "import ctypes, threading\n"
        "cu = ctypes.CDLL('libcuda.so.1')\n"
        "ctx = ctypes.c_void_p()\n"
        "assert cu.cuInit(0) == 0 and cu.cuCtxCreate_v2(ctypes.byref(ctx), 0, 0) == 0\n"
        "got = [[] for _ in range(8)]\n"
        "def fill(mine):\n"
        "    cu.cuCtxSetCurrent(ctx)\n"
        "    while True:\n"
        "        p = ctypes.c_ulonglong()\n"
        "        if cu.cuMemAlloc_v2(ctypes.byref(p), ctypes.c_size_t(256 << 10)) != 0:\n"
        "            return\n"
        "        mine.append(p.value)\n"
        "threads = [threading.Thread(target=fill, args=(g,)) for g in got]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "total = sum(len(g) for g in got) * (256 << 10)\n"
        "f = ctypes.c_size_t(); t = ctypes.c_size_t()\n"
        "cu.cuMemGetInfo_v2(ctypes.byref(f), ctypes.byref(t)); full = t.value - f.value\n"
        "frees = [threading.Thread(target=lambda g=g: [cu.cuMemFree_v2(ctypes.c_ulonglong(p)) for p in g]) for g in got]\n"
        "[t.start() for t in frees]; [t.join() for t in frees]\n"
        "cu.cuMemGetInfo_v2(ctypes.byref(f), ctypes.byref(t))\n"
        "print(total, full, t.value - f.value)\n"
    )
    _, env = probe.command(conf=conf)
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(64 * MiB), str(64 * MiB), "0"]


@pytest.mark.parametrize("mode", ["direct", "gpa"])
def test_sizes_that_overflow_64_bits_are_refused_not_charged_nothing(tmp_path, mode):
    """Array and pitch sizes are products of caller-given dimensions: one that wraps 64 bits must be
    refused, not charged its wrapped remainder (0 for 2^32 x 2^32 bytes). And a size near 2^63 must
    not overflow `used + size` past the limit check (a negative sum passed it). The fake driver
    makes arrays of any size, as a driver that checked less would."""
    conf = probe.config(tmp_path, limit=8 * MiB)
    huge = 1 << 32
    out = probe.run("mem", 6 * MiB,
                    "array", huge, huge, 0x01, 1,                   # 2^64 bytes: wrapped to 0
                    "array", 1 << 31, 1 << 31, 0x10, 1,             # 2^63 bytes: a negative long long
                    "array3d", huge, huge, huge, 0x01, 1, 0,        # 2^96 bytes
                    "mipmap", 1 << 31, 1 << 31, 0, 0x10, 1, 2, 0,   # its first level alone is 2^63
                    "mem", (1 << 63) - 2 * MiB,                     # 6 MiB + this wraps a long long
                    "mem", 6 * MiB,          # (the wrapped charge and its rollback used to zero the 6 MiB)
                    "info", mode=mode, conf=conf)
    assert allocs(out) == [0, OOM, OOM, OOM, OOM, OOM, OOM]
    assert infos(out) == [6 * MiB]
    # without a limit too: no device holds 2^63 bytes, and the container's total stays sane
    free = probe.config(tmp_path, name="free.conf", region="free")
    out = probe.run("mem", MiB, "array", huge, huge, 0x01, 1, "info", mode=mode, conf=free)
    assert allocs(out) == [0, OOM]
    assert region_reader.read(tmp_path / "free").used() == 0
