"""A fair, bounded set of work slots: at most ``n`` holders, the rest wait in line."""
from __future__ import annotations

import threading
from collections import deque
from contextlib import contextmanager
from typing import Callable, Iterator


class Slots:
    """At most ``capacity`` holders at once; waiters are served first come, first served.

    ``on_wait(ahead)`` is called while waiting with the number of people ahead
    (holders and earlier waiters), so a page can say why it is waiting.
    """

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._cond = threading.Condition()
        self._line: deque[object] = deque()
        self._active = 0

    @property
    def active(self) -> int:
        return self._active

    @property
    def waiting(self) -> int:
        return len(self._line)

    @contextmanager
    def hold(self, on_wait: Callable[[int], None] | None = None, poll: float = 0.5) -> Iterator[None]:
        ticket = object()
        with self._cond:
            self._line.append(ticket)
            while not (self._active < self.capacity and self._line[0] is ticket):
                ahead = self._active + self._line.index(ticket)
                if on_wait:
                    self._cond.release()  # never call out while holding the lock
                    try:
                        on_wait(ahead)
                    finally:
                        self._cond.acquire()
                self._cond.wait(poll)
            self._line.popleft()
            self._active += 1
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()
