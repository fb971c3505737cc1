import os
import threading

import pytest
import torch

from resnet_viz.device import _libgomp, best_device, describe_device, release_openmp_threads


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task") or _libgomp() is None,
                    reason="needs Linux and torch built with GNU OpenMP")
def test_release_openmp_threads_frees_the_callers_idle_pool():
    # Run in a fresh thread so no pool of the test runner's main thread is involved.
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    counts = {}

    def work():
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
