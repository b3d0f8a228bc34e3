"""setup.py: `pip install ./bindings/python`: builds libsegbus and the SWIG module _segbus_ext
with the project's CMake (static libsegbus inside the module, so the wheel is self-contained) and
installs the pure-Python package segbus/ around it. See docs/python.md."""
import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


class CMakeBuild(build_ext):
    """Build _segbus_ext through CMake (SWIG, msgpack-c, libsegbus), then copy it in place."""

    def build_extension(self, ext):
        build = os.path.join(os.path.abspath(self.build_temp), "cmake")
        subprocess.check_call([
            "cmake", "-S", ROOT, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
            "-DSEGBUS_BUILD_TESTS=OFF", "-DSEGBUS_BINDINGS_RUBY=OFF",
            "-DPython3_EXECUTABLE=" + sys.executable])
        subprocess.check_call(["cmake", "--build", build, "--target", "segbus_python",
                               "-j", str(os.cpu_count() or 2)])
        built = os.path.join(build, "bindings", "python", "segbus")
        target = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(os.path.join(built, os.path.basename(target)), target)
        shutil.copyfile(os.path.join(built, "segbus_ext.py"),
                        os.path.join(os.path.dirname(target), "segbus_ext.py"))


setup(
    name="segbus",
    version="0.1.0",
    description="Segment-style analytics over a shared-memory ring; drop-in for analytics-python",
    packages=["segbus"],
    python_requires=">=3.8",
    ext_modules=[Extension("segbus._segbus_ext", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
)
