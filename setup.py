"""The compiled part of the package: the scoring kernel (plain C, CPython API only).

Everything else about the package is declared in pyproject.toml; setuptools reads
``ext_modules`` from here. ``-ffp-contract=off`` keeps the compiler from fusing a
multiply and an add into one FMA, which would round differently from scikit-learn.

The extension is optional: without a C compiler the install still succeeds (with a
warning), the ``numpy`` and ``sklearn`` backends work, and the ``fast`` backend refuses
to start with a message that says how to build the kernel.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "anomaly_api.detection.fast._kernel",
            sources=["src/anomaly_api/detection/fast/_kernel.c"],
            extra_compile_args=["-O3", "-ffp-contract=off", "-fno-fast-math", "-pthread"],
            extra_link_args=["-pthread"],
            optional=True,
        )
    ]
)
