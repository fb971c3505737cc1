import ctypes
import os
import threading

import pytest
import torch

from resnet_viz.device import _libgomp, best_device, describe_device, release_openmp_threads

PROBE_NAME = b"omp-probe"


def name_this_os_thread(name: bytes) -> None:
    """Linux names threads per OS thread; threads it starts (libgomp's pool) inherit the name."""
    libc = ctypes.CDLL(None)
    libc.prctl(15, ctypes.c_char_p(name), 0, 0, 0)  # 15 = PR_SET_NAME


def os_threads() -> int:
    """OS threads named like the probe thread: itself plus the pool threads it started. Other threads of the
    test process (servers, finished races) may come and go meanwhile without changing this count."""
    count = 0
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm", "rb") as comm:
                count += comm.read().strip() == PROBE_NAME
        except OSError:
            pass  # that thread ended while we looked
    return count


@pytest.mark.skipif(
    not os.path.isdir("/proc/self/task") or _libgomp() is None, reason="needs Linux and torch built with GNU OpenMP"
)
def test_release_openmp_threads_frees_the_callers_idle_pool():
    # Run in a fresh thread so no pool of the test runner's main thread is involved.
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    counts = {}

    def work():
        name_this_os_thread(PROBE_NAME)
        start = os_threads()
        torch.ones(1 << 22).mul(2).sum()  # big enough to run on 2 OpenMP threads
        counts["with pool"] = os_threads() - start
        assert release_openmp_threads()
        counts["released"] = os_threads() - start
        torch.ones(1 << 22).mul(2).sum()  # the next parallel op builds a new pool and works as before
        counts["again"] = os_threads() - start
        release_openmp_threads()

    try:
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
    finally:
        torch.set_num_threads(before)
    assert counts == {"with pool": 1, "released": 0, "again": 1}


def test_device_description_names_the_device():
    device = best_device()
    assert device.type in ("cuda", "mps", "cpu")
    assert describe_device(torch.device("cpu")).startswith("CPU (")
