"""Native extensions only; all metadata lives in pyproject.toml.

Two private extension modules are built inside the package:

* ``aim_edge._native.ring_buffer`` -- Cython binding of ``native/include/aim_edge/ring_buffer.h``
* ``aim_edge._native.fbank``       -- pybind11 binding of ``native/include/aim_edge/fbank.h``

``AIM_EDGE_BUILD_ONLY=ring_buffer`` (comma separated) rebuilds a subset during development.
``AIM_EDGE_SANITIZE=1`` builds with ``-fsanitize=address,undefined`` (for local debugging; the
sanitizer run in CI uses the standalone native tests, see ``Makefile``).
"""

import os

import numpy
from Cython.Build import cythonize
from pybind11.setup_helpers import Pybind11Extension
from setuptools import Extension, setup

NATIVE = "native"
INCLUDE = os.path.join(NATIVE, "include")

# Boundary checks stay on in release builds: no -DNDEBUG games, checks are explicit throws.
cxx_flags = ["-std=c++17", "-O3", "-fvisibility=hidden", "-Wall", "-Wextra"]
link_flags: list[str] = []
if os.environ.get("AIM_EDGE_SANITIZE") == "1":
    cxx_flags += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"]
    link_flags += ["-fsanitize=address,undefined"]

ring_buffer = Extension(
    "aim_edge._native.ring_buffer",
    sources=[os.path.join(NATIVE, "bindings", "ring_buffer.pyx")],
    include_dirs=[INCLUDE, numpy.get_include()],
    language="c++",
    extra_compile_args=cxx_flags,
    extra_link_args=link_flags + ["-pthread"],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
)

fbank = Pybind11Extension(
    "aim_edge._native.fbank",
    sources=[
        os.path.join(NATIVE, "bindings", "fbank.cc"),
        os.path.join(NATIVE, "src", "fbank.cc"),
        os.path.join(NATIVE, "src", "rfft.cc"),
    ],
    include_dirs=[INCLUDE],
    cxx_std=17,
    extra_compile_args=cxx_flags,
    extra_link_args=link_flags,
)

extensions = cythonize(
    [ring_buffer],
    compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False},
) + [fbank]

only = os.environ.get("AIM_EDGE_BUILD_ONLY")
if only:
    wanted = {name.strip() for name in only.split(",")}
    extensions = [ext for ext in extensions if ext.name.rsplit(".", 1)[-1] in wanted]

setup(ext_modules=extensions)
