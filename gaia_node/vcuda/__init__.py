"""vCUDA: libvcuda.so, the CUDA driver interposer loaded into every process of a GPU-sharing container
(per-container GPU memory limit and compute share; C sources in src/, see src/hooks.c).

The library is optional. It is built by the package's build when gcc is there (setup.py), else lazily
on first use (library_path()): into this package's directory when writable, else into
~/.cache/gaia/vcuda. Where it cannot be built, available() is False, the node reports GPU sharing
unavailable, and everything else runs as before.
"""
import logging
import os
import threading
from pathlib import Path

from gaia_node.vcuda import build as _build
from gaia_node.vcuda.build import LIB_NAME, BuildError

__all__ = ["BuildError", "LIB_NAME", "available", "build", "cache_dir", "library_path"]

log = logging.getLogger("gaia.node.vcuda")

PACKAGE_DIR = Path(__file__).resolve().parent
_lock = threading.Lock()
_resolved = {}  # "path": the library found or built once per process, or None after a failed build
_errors = []


def cache_dir() -> Path:
    """Where a lazy build goes when the package directory is read-only."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gaia" / "vcuda"


def _candidates() -> list:
    return [PACKAGE_DIR / LIB_NAME, cache_dir() / LIB_NAME]


def build(out_dir=None) -> Path:
    """Builds libvcuda.so into out_dir (default: the package directory) and returns its path;
    BuildError (with gcc's output) when it cannot."""
    return _build.build(out_dir)


def library_path(build_missing: bool = True):
    """The built library (Path) that matches the sources, building it once when missing or stale;
    None where it cannot be built (no gcc, nowhere writable), with the reason logged once.

    GAIA_VCUDA_LIB names a prebuilt library to use instead (taken as is)."""
    explicit = os.environ.get("GAIA_VCUDA_LIB")
    if explicit:
        return Path(explicit) if Path(explicit).is_file() else None
    with _lock:
        if "path" in _resolved:
            path = _resolved["path"]
            if path is None or path.is_file():
                return path
        for lib in _candidates():
            if _build.is_current(lib):
                _resolved["path"] = lib
                return lib
        if not build_missing:
            return None
        path = None
        for out_dir in (PACKAGE_DIR, cache_dir()):
            try:
                path = _build.build(out_dir)
                break
            except BuildError as e:
                _errors.append(str(e))
                if "no C compiler" in str(e):
                    break  # the same everywhere
        if path is None:
            log.warning("GPU sharing unavailable: libvcuda could not be built: %s", _errors[-1])
        _resolved["path"] = path
        return path


def available() -> bool:
    """libvcuda.so is built (or buildable now) on this machine."""
    return library_path() is not None


def last_error() -> str:
    """Why the last build failed ('' when none did)."""
    return _errors[-1] if _errors else ""


def _reset() -> None:
    """Forget what library_path() found (tests)."""
    with _lock:
        _resolved.clear()
        _errors.clear()
