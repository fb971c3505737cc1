"""The app server a load benchmark measures: its process id, resident memory, threads and a memory sampler."""

from __future__ import annotations

import os
import statistics
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


class Watch:
    """Calls :meth:`sample` with the seconds since the start every ``every`` seconds, in a thread, while the block
    lasts."""

    def __init__(self, every: float):
        self.every, self._stop = every, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def sample(self, elapsed: float) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        start = time.perf_counter()
        while not self._stop.is_set():
            self.sample(time.perf_counter() - start)
            self._stop.wait(self.every)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join()


class MemoryWatch(Watch):
    """Samples a process's resident memory; ``peak`` is the largest sample, ``samples`` all of them as (seconds
    since the start, MB)."""

    def __init__(self, pid: int, every: float = 0.2):
        super().__init__(every)
        self.pid, self.peak = pid, 0.0
        self.samples: list[tuple[float, float]] = []

    def sample(self, elapsed: float) -> None:
        mb = rss_mb(self.pid)
        self.peak = max(self.peak, mb)
        self.samples.append((elapsed, mb))


class LargestWatch(Watch):
    """The largest value ``count()`` returned while the block lasted (``largest``)."""

    def __init__(self, count, every: float = 2.0):
        super().__init__(every)
        self.count, self.largest = count, 0

    def sample(self, elapsed: float) -> None:
        self.largest = max(self.largest, self.count())


def memory_after_warmup(samples: list[tuple[float, float]], warmup_s: float) -> dict:
    """Whether memory stays flat after warm-up: the median of the first tenth of the samples after ``warmup_s``
    (at least a minute) against the median of the last tenth, and the least-squares trend in MB per hour."""
    after = [(t, mb) for t, mb in samples if t >= warmup_s]
    span = max(60.0, (after[-1][0] - after[0][0]) / 10)
    start_mb = statistics.median(mb for t, mb in after if t < after[0][0] + span)
    end_mb = statistics.median(mb for t, mb in after if t > after[-1][0] - span)
    slope = statistics.linear_regression([t for t, _ in after], [mb for _, mb in after]).slope * 3600
    return {"span_s": span, "start_mb": start_mb, "end_mb": end_mb, "trend_mb_per_h": slope}


def memory_line(samples: list[tuple[float, float]], warmup_s: float, peak_mb: float, final_mb: float) -> str:
    m = memory_after_warmup(samples, warmup_s)
    span = m["span_s"] / 60
    return (
        f"server memory after warm-up ({warmup_s / 60:.1f} min), median of the first {span:.1f} min: "
        f"{m['start_mb']:.0f} MB; of the last {span:.1f} min: {m['end_mb']:.0f} MB "
        f"({100 * (m['end_mb'] / m['start_mb'] - 1):+.1f} %); trend {m['trend_mb_per_h']:+.0f} MB per hour; "
        f"peak {peak_mb:.0f} MB; idle after everyone left {final_mb:.0f} MB"
    )


def plot_memory(samples: list[tuple[float, float]], warmup_s: float, path: str, title: str) -> None:
    """The memory curve as a PNG, the end of the warm-up marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot([t / 60 for t, _ in samples], [mb for _, mb in samples], color="#0072B2")
    ax.axvline(warmup_s / 60, color="#555555", linestyle="--", label="end of warm-up")
    ax.set_xlabel("minutes")
    ax.set_ylabel("server resident memory (MB)")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_samples(samples: list[tuple[float, float]], path: str) -> None:
    with open(path, "w") as f:
        f.write("seconds,rss_mb\n" + "".join(f"{t:.1f},{mb:.1f}\n" for t, mb in samples))
