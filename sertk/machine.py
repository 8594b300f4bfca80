"""What machine a number came from: CPU model and vendor, the instruction sets that change speed and rounding
(AMX, AVX512-BF16, AVX-512, AVX2), the BLAS libraries loaded and the kernels they picked, torch's CPU path, GPUs.

Benchmarks write :func:`machine_info` next to every number, ``pytest --tolerances`` prints :func:`describe`, and
the featurizers choose CPU defaults with :func:`bf16_is_native`. Nothing here imports torch unless asked to.
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from typing import Any

__all__ = ["ISA_FLAGS", "bf16_is_native", "blas_info", "cpu_info", "describe", "fp16_is_native", "machine_info",
           "torch_info"]

#: /proc/cpuinfo flags worth recording, in the order of how much they change float throughput
ISA_FLAGS = ("amx_bf16", "amx_fp16", "amx_int8", "amx_tile", "avx512_bf16", "avx512_fp16", "avx512_vnni", "avx512f",
             "avx2", "fma")
_OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


@lru_cache(maxsize=1)
def cpu_info() -> dict[str, Any]:
    """Vendor, model name, family/model numbers, usable cores and the :data:`ISA_FLAGS` present (Linux reads
    /proc/cpuinfo; elsewhere only what :mod:`platform` knows)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    break  # the first processor is enough: the fields are the same for every core here
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    flags = set(fields.get("flags", "").split())
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return {
        "vendor": {"GenuineIntel": "Intel", "AuthenticAMD": "AMD"}.get(fields.get("vendor_id", ""),
                                                                       fields.get("vendor_id") or platform.machine()),
        "model": fields.get("model name") or platform.processor() or platform.machine(),
        "family": fields.get("cpu family"),
        "model_number": fields.get("model"),
        "cores": cores,
        "isa": [f for f in ISA_FLAGS if f in flags],
    }


def bf16_is_native() -> bool:
    """Whether the CPU multiplies bfloat16 in hardware (AMX or AVX512-BF16); elsewhere torch emulates it and a
    bfloat16 model runs slower than float32."""
    isa = set(cpu_info()["isa"])
    return bool(isa & {"amx_bf16", "avx512_bf16"})


def fp16_is_native() -> bool:
    """Whether the CPU multiplies float16 in hardware (AMX-FP16 or AVX512-FP16); elsewhere torch emulates it."""
    return bool(set(cpu_info()["isa"]) & {"amx_fp16", "avx512_fp16"})


def blas_info() -> list[dict[str, Any]]:
    """The BLAS and OpenMP libraries loaded in this process (threadpoolctl): library, version, the kernel it
    chose (OpenBLAS's ``architecture``) and its thread count. Empty where threadpoolctl is missing."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keep = ("internal_api", "version", "architecture", "num_threads", "threading_layer")
    return [{k: lib.get(k) for k in keep if lib.get(k) is not None} for lib in threadpool_info()]


def torch_info() -> dict[str, Any]:
    """torch's version, CPU kernel level (``DEFAULT``/``AVX2``/``AVX512``), threads, MKL and oneDNN, GPUs."""
    import torch

    info: dict[str, Any] = {
        "version": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "mkl": torch.backends.mkl.is_available(),
        "mkldnn": torch.backends.mkldnn.is_available(),
    }
    if torch.cuda.is_available():
        info["cuda"] = torch.version.cuda
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def machine_info(torch: bool = True) -> dict[str, Any]:
    """Everything above as one JSON-ready record (``torch=False`` keeps torch out of the process)."""
    import sys

    info: dict[str, Any] = {
        "cpu": cpu_info(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "blas": blas_info(),
        "openblas_env": {k: os.environ[k] for k in _OPENBLAS_ENV if k in os.environ},
    }
    try:
        import numpy

        info["numpy"] = numpy.__version__
    except ImportError:
        pass
    if torch:
        try:
            info["torch"] = torch_info()
        except ImportError:
            pass
    return info


def describe(info: dict[str, Any] | None = None) -> str:
    """One line for logs and tables, e.g. ``AMD EPYC, 2 cores, avx2+fma; OpenBLAS 0.3.31 Haswell; torch AVX2``."""
    info = info or machine_info(torch="torch" in __import__("sys").modules)
    cpu = info["cpu"]
    parts = [f"{cpu['model']} ({cpu['vendor']}), {cpu['cores']} cores, {'+'.join(cpu['isa']) or 'no AVX2'}"]
    for lib in info.get("blas", []):
        if lib.get("internal_api") in ("openblas", "mkl", "blis"):
            parts.append(f"{lib['internal_api']} {lib.get('version', '?')} {lib.get('architecture', '')}".strip())
    if info.get("openblas_env"):
        parts.append("pinned " + " ".join(f"{k}={v}" for k, v in info["openblas_env"].items()))
    if "torch" in info:
        parts.append(f"torch {info['torch']['version']} {info['torch']['cpu_capability']}")
    return "; ".join(parts)
