"""Build and install sertk: the host, the built-in plugins and the compiled ν-SVM core.

The C core in ``csrc/`` is compiled into ``sertk.svm._nusvm`` together with its thin Cython wrapper. BLAS comes
from SciPy at run time (``scipy.linalg.cython_blas``), so no system BLAS is needed to build.
"""

import os
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

# -ffp-contract=off: the core's dot products and solver steps are libsvm's separate multiply-then-add (the tests
# compare them bit for bit); no compiler may fuse them into FMAs, even with -march=native or clang's default.  GCC
# 12's objects are the same with and without it, default and -march=native alike (checked on Zen 4).
compile_args = ["-O3", "-fno-math-errno", "-ffp-contract=off", "-Wall", "-Wno-unused-function"]
if os.environ.get("SERTK_NATIVE", "0") == "1":  # opt-in: binaries tuned for the build machine
    compile_args.append("-march=native")

extensions = [
    Extension(
        "sertk.svm._nusvm",
        sources=["sertk/svm/_nusvm.pyx", *sorted(str(p) for p in Path("csrc").glob("*.c"))],
        include_dirs=["csrc", numpy.get_include()],
        extra_compile_args=compile_args,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
]

setup(
    name="sertk",
    version="0.1.0",
    description="Speech emotion recognition toolkit: plugin host, ImageBind audio embeddings, fast ν-SVM",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["sertk", "sertk.*", "sertk_plugins", "sertk_plugins.*"]),
    package_data={
        "sertk": ["py.typed", "data/demo/*.flac", "data/demo/*.wav", "data/demo/*.csv", "data/demo/*.md", "svm/*.pyi"],
    },
    ext_modules=cythonize(extensions, language_level=3, compiler_directives={"boundscheck": False,
                                                                              "wraparound": False,
                                                                              "cdivision": True}),
    install_requires=[
        "numpy>=1.25",
        "scipy>=1.11",
        "torch>=2.1",
        "click>=8.1",
        "pluggy>=1.3",
        "tqdm>=4.60",
        "soundfile>=0.12",
        "matplotlib>=3.7",
        "scikit-learn>=1.3",
        "skops>=0.12",
        "safetensors>=0.4",
        "tomli-w>=1.0",
    ],
    extras_require={
        "dev": [
            "pytest>=7.4",
            "pytest-benchmark>=4.0",
            "kaldi-native-fbank>=1.19",
            "ruff>=0.5",
            "mypy>=1.10",
            # the optional extras below, so CI tests every featurizer and executor
            "opensmile>=2.5",
            "transformers>=4.40",
            "ray>=2.54",
        ],
        # openSMILE feature sets (featurizer `opensmile`); the wheel carries the SMILExtract binary
        "opensmile": ["opensmile>=2.5"],
        # Hugging Face speech encoders (featurizer `hf`); transformers pulls no torch of its own
        "hf": ["transformers>=4.40"],
        # the Ray executor (`--executor ray`) and Ray sweeps; 2.54 fixes the dashboard's CVE-2026-27482
        "ray": ["ray>=2.54"],
    },
    entry_points={"console_scripts": ["sertk = sertk.cli:main"]},
    zip_safe=False,
)
