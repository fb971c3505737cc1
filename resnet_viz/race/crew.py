"""Worker threads that train several groups of runs side by side, each with its own PyTorch thread count."""

from __future__ import annotations

import queue
import threading
from typing import Callable

import torch


class Crew:
    """``workers`` threads, each with ``threads_each`` CPU threads for PyTorch, that run one function on
    several groups at once (:meth:`map`). With one worker, :meth:`map` runs in the calling thread.

    PyTorch's thread count is per thread once a thread has run an op, but a new thread starts from the
    last count set anywhere: each worker sets its own and runs an op at once, then the crew puts the
    process-wide count back, so threads started later (a server's page scripts) keep the default.
    """

    def __init__(self, workers: int, threads_each: int):
        self._inbox: list[queue.Queue] = []
        self._outbox: queue.Queue = queue.Queue()
        self._threads: list[threading.Thread] = []
        if workers <= 1:
            return
        default = torch.get_num_threads()
        ready = threading.Barrier(workers + 1)
        for i in range(workers):
            inbox: queue.Queue = queue.Queue()
            thread = threading.Thread(
                target=self._work, args=(i, inbox, threads_each, ready), name=f"training-race-worker-{i}", daemon=True
            )
            self._inbox.append(inbox)
            self._threads.append(thread)
            thread.start()
        ready.wait()
        torch.set_num_threads(default)

    def _work(self, index: int, inbox: queue.Queue, threads: int, ready: threading.Barrier) -> None:
        torch.set_num_threads(max(1, threads))
        torch.get_num_threads()  # fixes this thread's count before the default is put back
        ready.wait()
        while (job := inbox.get()) is not None:
            fn, arg = job
            try:
                self._outbox.put((index, True, fn(arg)))
            except BaseException as e:  # noqa: BLE001 - re-raised in the calling thread
                self._outbox.put((index, False, e))

    def map(self, fn: Callable, groups: list) -> list:
        """``[fn(g) for g in groups]``, one group per worker, side by side; re-raises a worker's error."""
        if not self._threads:
            return [fn(g) for g in groups]
        if len(groups) > len(self._threads):
            raise ValueError("more groups than workers")
        for inbox, group in zip(self._inbox, groups):
            inbox.put((fn, group))
        results: list = [None] * len(groups)
        error = None
        for _ in groups:
            index, ok, value = self._outbox.get()
            if ok:
                results[index] = value
            else:
                error = error or value
        if error is not None:
            raise error
        return results

    def close(self) -> None:
        for inbox in self._inbox:
            inbox.put(None)
        for thread in self._threads:
            thread.join()
        self._inbox, self._threads = [], []

    def __enter__(self) -> "Crew":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
