"""Per-model reader/writer locks for probes that share one model across threads.

Most probes (Grad-CAM, block contributions, lesions) only *read* a model: many
may run at once. A few must change its state for a moment (gradient norms with
batch statistics switch BatchNorm to training mode; explaining a model left in
training mode switches it to eval): they take the model exclusively, so no
reader ever sees another thread's temporary state.
"""

from __future__ import annotations

import threading
import weakref
from contextlib import contextmanager
from typing import Iterator

from torch import nn


class ModelLock:
    """Many readers or one writer; a waiting writer blocks new readers (no starvation).

    The writer may re-enter (``exclusive`` inside ``exclusive`` or ``shared``
    inside ``exclusive``) from the same thread.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer: int | None = None
        self._writer_depth = 0
        self._writers_waiting = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        me = threading.get_ident()
        if self._writer == me:  # already exclusive in this thread
            yield
            return
        with self._cond:
            while self._writer is not None or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._cond:
            if self._writer != me:
                self._writers_waiting += 1
                while self._writer is not None or self._readers:
                    self._cond.wait()
                self._writers_waiting -= 1
                self._writer = me
            self._writer_depth += 1
        try:
            yield
        finally:
            with self._cond:
                self._writer_depth -= 1
                if self._writer_depth == 0:
                    self._writer = None
                    self._cond.notify_all()


_locks: "weakref.WeakKeyDictionary[nn.Module, ModelLock]" = weakref.WeakKeyDictionary()
_guard = threading.Lock()


def model_lock(model: nn.Module) -> ModelLock:
    """The lock that guards ``model``'s mutable state (one per model)."""
    with _guard:
        lock = _locks.get(model)
        if lock is None:
            lock = _locks[model] = ModelLock()
        return lock
