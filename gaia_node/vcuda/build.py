"""Compiles libvcuda.so from gaia_node/vcuda/src/*.c with gcc: no CUDA or NVML headers (src/cuda_types.h
declares what the library needs), no CUDA library at link time (the real driver is dlopen'ed at run time).

Used by setup.py's optional build step, by the lazy build in gaia_node.vcuda.library_path(), and by the
tests (into a temporary directory). `python -m gaia_node.vcuda.build [--out DIR]` builds by hand.
Each build writes LIB_NAME.stamp next to the library: a digest of the sources and flags, so a library
built from other sources is never taken for the current one.
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SRC_DIR = Path(__file__).resolve().parent / "src"
LIB_NAME = "libvcuda.so"
# -fvisibility=hidden: only the hooks (VCUDA_EXPORT) are exported; -Bsymbolic: the library's calls to
# its own functions never resolve to another object's definition of the same name.
CFLAGS = ["-shared", "-fPIC", "-O2", "-pthread", "-std=gnu11", "-Wall", "-fvisibility=hidden",
          "-Wl,-Bsymbolic", "-Wl,-soname," + LIB_NAME]
LIBS = ["-ldl"]
# include search paths a caller's environment may add: a CUDA install there must not leak in
_INCLUDE_ENV = ("CPATH", "C_INCLUDE_PATH", "CPLUS_INCLUDE_PATH", "OBJC_INCLUDE_PATH")


class BuildError(Exception):
    """libvcuda.so could not be built; the message says why (gcc's own output included)."""


def sources(src_dir: Path = SRC_DIR) -> list:
    return sorted(src_dir.glob("*.c"))


def source_digest(src_dir: Path = SRC_DIR) -> str:
    """sha256 over the flags and every source and header, by name and content."""
    h = hashlib.sha256(" ".join(CFLAGS + LIBS).encode())
    for path in sorted(list(src_dir.glob("*.c")) + list(src_dir.glob("*.h"))):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def stamp_path(lib: Path) -> Path:
    return lib.with_name(lib.name + ".stamp")


def is_current(lib: Path, src_dir: Path = SRC_DIR) -> bool:
    """lib exists and was built from these sources (or the sources are not here to compare)."""
    if not lib.is_file():
        return False
    if not sources(src_dir):
        return True
    try:
        return stamp_path(lib).read_text().strip() == source_digest(src_dir)
    except OSError:
        return False


def compiler() -> str:
    """The C compiler's path ($CC, else gcc); BuildError when there is none."""
    cc = os.environ.get("CC") or "gcc"
    found = shutil.which(cc)
    if found is None:
        raise BuildError(f"no C compiler: {cc!r} is not on PATH (set CC or install gcc)")
    return found


def build(out_dir=None, src_dir: Path = SRC_DIR) -> Path:
    """Compiles the library into out_dir (default: next to the sources' package) and returns its path."""
    out_dir = Path(out_dir) if out_dir is not None else SRC_DIR.parent
    srcs = sources(src_dir)
    if not srcs:
        raise BuildError(f"no C sources in {src_dir}")
    cc = compiler()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".libvcuda-", suffix=".so", dir=out_dir)
        os.close(fd)
    except OSError as e:
        raise BuildError(f"cannot write {out_dir}: {e}") from None
    env = {k: v for k, v in os.environ.items() if k not in _INCLUDE_ENV}
    cmd = [cc, *CFLAGS, "-I", str(src_dir), "-o", tmp, *map(str, srcs), *LIBS]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        os.unlink(tmp)
        raise BuildError(f"{cc}: {e}") from None
    if proc.returncode != 0:
        os.unlink(tmp)
        raise BuildError(f"{' '.join(cmd)}\nexited {proc.returncode}:\n{proc.stderr.strip()}")
    lib = out_dir / LIB_NAME
    os.chmod(tmp, 0o755)
    os.replace(tmp, lib)  # atomic: a concurrent build or a process loading it sees one whole file
    stamp = stamp_path(lib)
    tmp_stamp = stamp.with_name(stamp.name + f".{os.getpid()}")
    tmp_stamp.write_text(source_digest(src_dir) + "\n")
    os.replace(tmp_stamp, stamp)
    return lib


def build_optional(out_dir, warn=None):
    """The package build's step (setup.py): build into out_dir, or report why not through
    warn(message) and return None. Never raises: Gaia installs and runs without the library (the
    node then reports GPU sharing unavailable, and library_path() retries lazily where gcc exists)."""
    try:
        return build(out_dir)
    except BuildError as e:
        (warn or (lambda m: print(m, file=sys.stderr)))(
            f"libvcuda.so not built, GPU sharing will be unavailable until it is: {e}")
        return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gaia_node.vcuda.build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="directory to write libvcuda.so into (default: the package directory)")
    args = parser.parse_args(argv)
    try:
        print(build(args.out))
    except BuildError as e:
        print(f"libvcuda not built: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
