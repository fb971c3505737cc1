"""Pick the fastest available device: CUDA, then Apple MPS, then the CPU."""
from __future__ import annotations

import ctypes
import functools

import torch


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
