"""Build hooks: bundle the already built libconverge into the package.

The library is never compiled here (that would rebuild RocksDB): it is
copied from, in order, $CONVERGE_LIB (the library file or its directory),
$CARGO_TARGET_DIR/debug, or ../../target/debug (the repository's default
cargo target directory), into converge/_lib/. Build it first with
`make lib` (``make test-python`` and ``make wheel`` do).
The wheel is tagged py3-none-<platform>: it holds no Python extension, only
a native library that ctypes loads, so any CPython 3 on that platform can
use it.
"""

import os
import shutil
import sys

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1
    from wheel.bdist_wheel import bdist_wheel

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
LIB_NAME = {"darwin": "libconverge.dylib", "win32": "converge.dll"}.get(sys.platform, "libconverge.so")


def find_library():
    """The path of the built libconverge, or SystemExit with directions."""
    env = os.environ.get("CONVERGE_LIB")
    if env:
        path = os.path.join(env, LIB_NAME) if os.path.isdir(env) else env
        if not os.path.isfile(path):
            raise SystemExit(f"converge: CONVERGE_LIB={env} names no built {LIB_NAME}")
        return os.path.abspath(path)
    candidates = []
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        candidates.append(os.path.join(target, "debug", LIB_NAME))
    candidates.append(os.path.join(HERE, "..", "..", "target", "debug", LIB_NAME))
    for path in candidates:
        if os.path.isfile(path):
            return os.path.abspath(path)
    tried = "\n  ".join(os.path.abspath(p) for p in candidates)
    raise SystemExit(
        f"converge: {LIB_NAME} is not built. Looked at:\n  {tried}\n"
        "Build it with `make lib` (from the repository root), or set "
        "CONVERGE_LIB to the library file."
    )


class BuildPyWithLibrary(build_py):
    """build_py that first copies libconverge into converge/_lib/."""

    def run(self):
        src = find_library()
        dest_dir = os.path.join(HERE, "converge", "_lib")
        os.makedirs(dest_dir, exist_ok=True)
        shutil.copy2(src, os.path.join(dest_dir, LIB_NAME))
        print(f"converge: bundling {src}")
        super().run()


class BinaryDistribution(Distribution):
    """Carries a native library: install to platlib, build a platform wheel."""

    def has_ext_modules(self):
        return True


class PlatformWheel(bdist_wheel):
    """A wheel tagged for this platform (it carries a native library)."""

    def finalize_options(self):
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self):
        _, _, plat = super().get_tag()
        return "py3", "none", plat


setup(
    distclass=BinaryDistribution,
    cmdclass={"build_py": BuildPyWithLibrary, "bdist_wheel": PlatformWheel},
)
