"""Private eval-mode copies of shared models, for methods whose captum class registers hooks on the model.

A copy is made once per model and reused while the original's tensors are unchanged, so the shared model
is only ever read (and never carries another caller's hooks).
"""

from __future__ import annotations

import copy
import itertools
import threading
import weakref
from contextlib import contextmanager
from typing import Iterator, TypeVar

from torch import nn

from ..locks import model_lock

M = TypeVar("M", bound=nn.Module)


def _stamp(model: nn.Module) -> tuple:
    """Changes whenever a parameter or buffer is replaced or changed in place."""
    return tuple((t.data_ptr(), t._version) for t in itertools.chain(model.parameters(), model.buffers()))


class CopyPool:
    """Private eval-mode copies of shared models, reused while the original's tensors are unchanged."""

    def __init__(self, keep: int = 2):
        self.keep = keep
        self._idle: "weakref.WeakKeyDictionary[nn.Module, list]" = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    @contextmanager
    def borrow(self, model: M) -> Iterator[M]:
        with model_lock(model).shared():
            stamp = _stamp(model)
            private: M | None = None
            with self._lock:
                idle = self._idle.setdefault(model, [])
                while idle and private is None:
                    candidate, candidate_stamp = idle.pop()
                    if candidate_stamp == stamp:
                        private = candidate
            if private is None:
                private = copy.deepcopy(model)
                private.eval().requires_grad_(False)
        try:
            yield private
        finally:
            with self._lock:
                idle = self._idle.setdefault(model, [])
                if len(idle) < self.keep:
                    idle.append((private, stamp))

    def clear(self) -> None:
        with self._lock:
            self._idle.clear()


copies = CopyPool()
