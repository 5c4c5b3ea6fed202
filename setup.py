"""Builds spirtd's Redis module (C) as part of `pip install`.

The module is a plain shared object that redis-server loads with --loadmodule;
setuptools' Extension machinery is only used to compile and place it inside the
package, Python never imports it.
"""

from pathlib import Path

from setuptools import Extension, setup

NATIVE = Path("spirtd") / "_native"
SOURCES = sorted(str(p) for p in NATIVE.glob("*.c"))

spirt_redis = Extension(
    "spirtd._native.spirt_redis",
    sources=SOURCES,
    include_dirs=[str(NATIVE)],
    extra_compile_args=[
        "-std=gnu11",
        "-O3",
        "-pthread",
        "-fvisibility=hidden",
        "-fno-strict-aliasing",
        "-Wall",
        "-Wextra",
        "-Wno-unused-parameter",
        "-Wno-missing-field-initializers",
        "-fno-math-errno",
    ],
    extra_link_args=["-pthread", "-lm"],
)

setup(ext_modules=[spirt_redis])
