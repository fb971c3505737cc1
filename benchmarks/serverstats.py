"""The app server a load benchmark measures: its process id, resident memory, threads and a memory sampler."""

from __future__ import annotations

import os
import threading
import time


def server_pid(port: int) -> int | None:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if b"streamlit" in b" ".join(cmd) and str(port).encode() in cmd:
            return int(pid)
    return None


def _status(pid: int, field: str) -> int | None:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def rss_mb(pid: int) -> float:
    """Resident memory in MB."""
    kb = _status(pid, "VmRSS")
    return float("nan") if kb is None else kb / 1024


def thread_count(pid: int) -> int:
    return _status(pid, "Threads") or 0


def open_files(pid: int) -> list[str]:
    """The regular files the process holds open (its temporary files among them)."""
    paths = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("/") and not target.startswith(("/dev/", "/proc/")):
            paths.append(target)
    return sorted(paths)


class MemoryWatch:
    """Samples a process's resident memory in a thread; ``peak`` is the largest sample, ``samples`` all of them
    as (seconds since the start, MB)."""

    def __init__(self, pid: int, every: float = 0.2):
        self.pid, self.every, self.peak, self._stop = pid, every, 0.0, threading.Event()
        self.samples: list[tuple[float, float]] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.perf_counter()
        while not self._stop.is_set():
            mb = rss_mb(self.pid)
            self.peak = max(self.peak, mb)
            self.samples.append((time.perf_counter() - start, mb))
            self._stop.wait(self.every)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join()
