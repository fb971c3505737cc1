"""A fair, bounded set of work slots: at most ``n`` holders, the rest wait in line."""

from __future__ import annotations

import threading
from collections import deque
from contextlib import contextmanager
from typing import Callable, Iterator


class LeftTheLine(Exception):
    """A waiter gave up its place in line (its ``cancelled`` event was set) before it got a slot."""


class Slots:
    """At most ``capacity`` holders at once; waiters are served first come, first served.

    Hold a slot for a block with :meth:`hold`, or, for work that outlives a
    block (a race in its worker thread), :meth:`acquire` with a ticket and a
    cancel event, then :meth:`release`. :meth:`position` tells a waiting
    ticket its place in line.
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

    def acquire(
        self,
        ticket: object,
        *,
        cancelled: threading.Event | None = None,
        on_wait: Callable[[int], None] | None = None,
        poll: float = 0.5,
    ) -> bool:
        """Wait in line until ``ticket`` holds a slot (True) or ``cancelled`` is set (False, and out of line).

        ``on_wait(ahead)`` is called while waiting with the number of people ahead (holders and earlier
        waiters), so a page can say why it is waiting.
        """
        with self._cond:
            self._line.append(ticket)
            try:
                while not (self._active < self.capacity and self._line[0] is ticket):
                    if cancelled is not None and cancelled.is_set():
                        return False
                    if on_wait:
                        place = self.position(ticket)
                        if place is None:  # appended above and removed only below
                            raise RuntimeError("a waiting ticket left the line")
                        ahead = self._active + place - 1
                        self._cond.release()  # never call out while holding the lock
                        try:
                            on_wait(ahead)
                        finally:
                            self._cond.acquire()
                    self._cond.wait(poll)
                self._active += 1
                return True
            finally:
                self._line.remove(ticket)
                self._cond.notify_all()

    def release(self) -> None:
        """Give back a slot taken with :meth:`acquire`."""
        with self._cond:
            self._active -= 1
            self._cond.notify_all()

    def position(self, ticket: object) -> int | None:
        """1 for the next in line, 2 for the one after, ...; None when ``ticket`` is not waiting."""
        with self._cond:  # re-entrant: acquire calls it with the lock held
            for i, waiting in enumerate(self._line):
                if waiting is ticket:
                    return i + 1
            return None

    @contextmanager
    def hold(
        self, on_wait: Callable[[int], None] | None = None, poll: float = 0.5, cancelled: threading.Event | None = None
    ) -> Iterator[None]:
        """A slot for the block; raises :class:`LeftTheLine` instead when ``cancelled`` is set while waiting."""
        if not self.acquire(object(), cancelled=cancelled, on_wait=on_wait, poll=poll):
            raise LeftTheLine("the wait for a work slot was cancelled")
        try:
            yield
        finally:
            self.release()
