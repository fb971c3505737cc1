"""Pick the fastest available device (CUDA, then Apple MPS, then the CPU) and the precision to train in."""

from __future__ import annotations

import ctypes
import functools
from contextlib import nullcontext
from typing import Callable, ContextManager

import torch

# Training precision: "auto" picks bfloat16 autocast on CPUs that compute bfloat16 natively (AVX-512 BF16 or AMX),
# float32 elsewhere (a race measures both where bfloat16 is native: resnet_viz/race/autotune.py); "fp32" forces
# float32, "bf16" forces bfloat16. On CUDA "auto" is float32 with TF32 convolutions: the race's small networks
# are bound by kernel launches there, and autocast's casts only add
# launches (H200, quick race: bfloat16 trained at 0.93x the speed of float32).
PRECISIONS = ("auto", "bf16", "fp32")
PRECISION_NAMES = {"bf16": "bfloat16", "fp32": "float32"}  # a resolved precision, as a reader calls it


def best_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe_device(device: torch.device | None = None) -> str:
    """A short human description, e.g. ``"CUDA: NVIDIA H100"`` or ``"CPU (2 threads)"``."""
    device = device or best_device()
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "Apple MPS"
    return f"CPU ({torch.get_num_threads()} threads)"


def release_openmp_threads() -> bool:
    """Free the calling thread's idle OpenMP worker pool (GNU libgomp only).

    Returns True when libgomp took the request (also when the thread had no
    pool), False where there is no libgomp to ask.

    libgomp counts every pool's threads, idle ones included. Once more threads
    exist than cores, every pool stops spinning between parallel regions and
    goes to sleep instead, which made training in a worker thread about 25%
    slower on 2 cores after the calling thread had run any multi-threaded op.
    The caller's next parallel op simply builds a new pool (microseconds).
    """
    lib = _libgomp()
    if lib is None:
        return False
    return lib.omp_pause_resource_all(1) == 0  # 1 = omp_pause_soft; -1 inside a parallel region


@functools.cache
def _libgomp():
    """The libgomp torch loaded, if that is its OpenMP runtime and it has omp_pause_resource_all (OpenMP 5)."""
    try:
        with open("/proc/self/maps") as maps:  # Linux: find the copy torch loaded, wherever it lives
            paths = {line.split()[-1] for line in maps if "/libgomp" in line}
        if len(paths) != 1:
            return None
        lib = ctypes.CDLL(paths.pop())  # already loaded: dlopen returns the same handle
        lib.omp_pause_resource_all.argtypes = [ctypes.c_int]
        return lib
    except (OSError, AttributeError):
        return None


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bfloat16 natively (AVX-512 BF16 or AMX): there autocast pays off.

    Without it, oneDNN emulates bfloat16 and training gets slower, not faster.
    """
    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        try:
            if getattr(cpu, probe)():
                return True
        except Exception:  # noqa: BLE001 - a private probe that moved: ask the kernel instead
            pass
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
        return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        return False


def resolve_precision(device: torch.device | str, precision: str = "auto") -> str:
    """``"bf16"`` or ``"fp32"``: what ``precision`` (auto, bf16, fp32) means on ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    device = torch.device(device)
    if device.type == "cpu":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return "fp32"  # CUDA (see above), MPS and others (autocast support varies, float32 is safe)


def autocast_for(device: torch.device | str, precision: str) -> Callable[[], ContextManager]:
    """A factory of autocast contexts for a resolved ``precision`` ("bf16" or "fp32") on ``device``."""
    device = torch.device(device)
    if precision == "bf16" and device.type in ("cpu", "cuda"):
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext


def describe_precision(device: torch.device | str, precision: str) -> str:
    """A short human description of a resolved precision, e.g. ``"bfloat16 autocast (AVX-512 BF16)"``."""
    device = torch.device(device)
    if precision == "bf16":
        where = {"cpu": "CPU with native bfloat16" if cpu_has_native_bf16() else "CPU, emulated", "cuda": "CUDA"}.get(
            device.type, device.type
        )
        return f"bfloat16 autocast ({where})"
    if device.type == "cuda" and torch.backends.cudnn.allow_tf32:
        return "float32 (TF32 convolutions)"
    return "float32"
