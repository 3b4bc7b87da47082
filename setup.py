"""All metadata lives in setup.cfg; this file adds the optional build of libvcuda.so (gaia_node/vcuda)
to the package build, and lets older pips build the package."""
import importlib.util
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def _vcuda_build():
    # by path: importing gaia_node would need the install's dependencies at build time
    spec = importlib.util.spec_from_file_location("_gaia_vcuda_build", HERE / "gaia_node" / "vcuda" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class build_py_with_vcuda(build_py):
    """build_py, then libvcuda.so with gcc next to gaia_node/vcuda's Python files: in the build tree,
    or in the source tree for an editable install (which imports from there). Without gcc it warns and
    the install goes on."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            out = HERE / "gaia_node" / "vcuda"
        else:
            out = Path(self.build_lib) / "gaia_node" / "vcuda"
        lib = _vcuda_build().build_optional(out, warn=self.warn)
        if lib is not None:
            self.announce(f"built {lib}", level=2)


class NativeDistribution(Distribution):
    """The wheel carries a native library (when it built): tag it for this platform, not 'any'."""

    def has_ext_modules(self):
        return True


cmdclass = {"build_py": build_py_with_vcuda}
try:  # setuptools >= 70.1 has its own; older ones use the wheel package's
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:
    try:
        from wheel.bdist_wheel import bdist_wheel
    except ImportError:
        bdist_wheel = None

if bdist_wheel is not None:
    class bdist_wheel_any_python(bdist_wheel):
        """py3-none-<platform>: the native part is a preloaded C library, not a Python extension."""

        def get_tag(self):
            return ("py3", "none", super().get_tag()[2])

    cmdclass["bdist_wheel"] = bdist_wheel_any_python

setup(cmdclass=cmdclass, distclass=NativeDistribution)
