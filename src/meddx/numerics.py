"""The numeric profile of a stage process: results that do not depend on which x86-64 CPU ran.

The same seeded training gives other weights on another CPU because the numerical libraries
pick their kernels at run time by instruction set and vendor: ATen's vectorised kernels
(AVX-512 where present), oneDNN's JIT convolutions (up to AVX-512/AMX) and MKL's GEMM branches
(Intel-only branches; another path on AMD). Vectorised kernels sum in another order, so the
last bits differ and training amplifies them.

`portable` (the default, `trainer.numerics`) pins every one of them before torch or numpy load:

| library | variable | value | why |
|---|---|---|---|
| ATen | ATEN_CPU_CAPABILITY | avx2 | AVX2+FMA: every x86-64 CPU since Haswell / Zen |
| oneDNN | ONEDNN_MAX_CPU_ISA | AVX2 | the same level for the convolutions |
| MKL | MKL_CBWR | COMPATIBLE | the only CNR branch that is the same on Intel and AMD (*) |
| numpy | NPY_DISABLE_CPU_FEATURES | its AVX-512 targets | numpy's own SIMD loops (exp, log, sums) |
| OpenBLAS | OPENBLAS_CORETYPE | Haswell, unless already set | numpy's GEMM kernels |
| all | OMP/MKL/OPENBLAS_NUM_THREADS | trainer.num_threads | reductions split by thread count |

(*) MKL's documentation: on non-Intel CPUs the branches other than AUTO and COMPATIBLE
silently fall back to AUTO.

Measured on the AMD EPYC (AVX-512) of this project's machines (30 AdamW steps of a small conv
net, `benchmarks/numerics_probe.py`): the native run and runs with the caller's
`ATEN_CPU_CAPABILITY=avx512`, `ONEDNN_MAX_CPU_ISA=AVX2` or `MKL_CBWR=COMPATIBLE` set alone
give four different weight sets; under `portable` all give one. Disabling oneDNN altogether
(im2col + MKL GEMM) was 2-4x slower and is not needed for the ISA pin. What this cannot fix:
oneDNN sizes some blocks from the cache sizes it reads (no switch exists), so two CPUs with
different caches may still differ; `make ci-repro` then compares within the measured
seed-to-seed noise (meddx.repro_check). Measured: an AMD Zen 4 rebuilt the Zen 5 metrics bit
for bit (178/178), an Intel Xeon (Ice Lake, 1.25 MB L2 per core) did not (116/178 identical,
the rest within seed noise but one, whose 3-seed spread was too small: the reason
repro_check pools a spread over classes). Switching oneDNN off tripled a small training's CPU
time and, under qemu-user emulating an AMD EPYC on that Intel host, still gave other weights.
So the CPU vendor and the per-core L2 size are identity keys: results are compared exactly
where both agree, within noise where not. `native` leaves every library its fastest path.

The variables are read when the libraries load, so `cli` re-executes the stage process once
with them set (`reexec_environment`) instead of hoping nothing imported torch or numpy yet.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

PROFILES = ("portable", "native")
# numpy < 2.4 and >= 2.4 name their AVX-512 dispatch targets differently; disabling one
# target does not disable the others, and numpy warns (ImportWarning) on names it lacks.
NUMPY_AVX512_TARGETS = "AVX512F AVX512_SKX AVX512_ICL AVX512_SPR X86_V4"
PINNED = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_CBWR": "COMPATIBLE",
}
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
REEXEC_MARKER = "MEDDX_NUMERICS"
# What must be equal on two machines for their results to be identical (the CPU model is not:
# the profile exists so that it need not be).
IDENTITY_KEYS = (
    "profile",
    "arch",
    "capability",
    "threads",
    "torch",
    "mkl",
    "onednn",
    "numpy",
    *PINNED,
    "NPY_DISABLE_CPU_FEATURES",
    "OPENBLAS_CORETYPE",
    "vendor",
    "l2_cache",
)


@cache
def cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def _cpuinfo(field: str) -> str | None:
    """The first CPU's `field` in /proc/cpuinfo, or None where there is none."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


@cache
def cpu_model() -> str:
    return _cpuinfo("model name") or platform.processor() or "unknown"


@cache
def cpu_vendor() -> str:
    """`GenuineIntel`, `AuthenticAMD`, ...: oneDNN's kernels differ by vendor (see above)."""
    return _cpuinfo("vendor_id") or "unknown"


@cache
def l2_cache() -> str:
    """The L2 size of CPU 0 as the kernel states it (`1024K`): oneDNN blocks loops by it."""
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            if (index / "level").read_text().strip() == "2":
                return (index / "size").read_text().strip()
        except OSError:
            continue
    return "unknown"


def native_capability() -> str:
    """The widest vector level this CPU offers, as ATen names it."""
    flags = cpu_flags()
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        return "AVX512"
    if {"avx2", "fma"} <= flags:
        return "AVX2"
    return "DEFAULT"


def pins_apply() -> bool:
    """The pins are for x86-64 CPUs with AVX2 and FMA; elsewhere they crash or do nothing."""
    return platform.machine() in ("x86_64", "AMD64") and {"avx2", "fma"} <= cpu_flags()


def environment(profile: str, threads: int, base: Mapping[str, str]) -> dict[str, str]:
    """The process environment a stage runs in under `profile` (a copy of `base`, changed).

    `portable` overrides what the caller set for the pinned libraries (that is its point:
    the caller's settings are what differs between machines), except OPENBLAS_CORETYPE,
    which some machines set because older OpenBLAS builds crash on their CPU.
    """
    if profile not in PROFILES:
        from meddx.errors import ConfigError

        raise ConfigError(
            f"trainer.numerics={profile!r} is not a profile: choose one of {', '.join(PROFILES)}"
        )
    env = dict(base)
    env[REEXEC_MARKER] = profile
    for var in THREAD_VARIABLES:
        env[var] = str(threads)
    if profile == "portable" and pins_apply():
        env.update(PINNED)
        if {"avx512f"} <= cpu_flags():
            env["NPY_DISABLE_CPU_FEATURES"] = NUMPY_AVX512_TARGETS
        env.setdefault("OPENBLAS_CORETYPE", "Haswell")
    return env


def reexec_environment(profile: str, threads: int) -> dict[str, str] | None:
    """The environment to re-execute this process in, or None when it already runs in it."""
    wanted = environment(profile, threads, os.environ)
    return None if wanted == dict(os.environ) else wanted


def _config_line(pattern: str) -> str:
    import torch

    found = re.search(pattern, torch.__config__.show())
    return found.group(1) if found else "unknown"


def facts() -> dict[str, Any]:
    """What ran: the profile, the machine, and (when this process loaded them) the libraries.

    torch is never imported here: a stage that does not use it does not pay for it.
    """
    found: dict[str, Any] = {
        "profile": os.environ.get(REEXEC_MARKER, "unset"),
        "arch": platform.machine(),
        "cpu": cpu_model(),
        "vendor": cpu_vendor(),
        "l2_cache": l2_cache(),
        "native_capability": native_capability(),
    }
    for var in (*PINNED, "NPY_DISABLE_CPU_FEATURES", "OPENBLAS_CORETYPE"):
        found[var] = os.environ.get(var, "")
    if "numpy" in sys.modules:
        found["numpy"] = sys.modules["numpy"].__version__
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        found.update(
            torch=torch.__version__,
            capability=torch.backends.cpu.get_cpu_capability(),
            threads=torch.get_num_threads(),
            mkl=_config_line(r"Math Kernel Library Version ([\d.]+)"),
            onednn=_config_line(r"(?:oneDNN|MKL-DNN) v([\d.]+)"),
        )
    return found


def identical_numerics(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether results made under facts `a` and `b` can be compared bit for bit."""
    if a.get("profile") != "portable" or b.get("profile") != "portable":
        return False
    return all(a.get(key) == b.get(key) for key in IDENTITY_KEYS if key in a or key in b)
