"""How many races train at once on a server: a queue in front of a bounded number of trainers."""

from __future__ import annotations

import os
import threading

from ..slots import Slots

MAX_RACES_ENV = "RESNET_VIZ_MAX_RACES"


class RaceScheduler(Slots):
    """Lets at most ``limit`` races train at once; the rest wait first come, first served."""

    def __init__(self, limit: int = 1):
        super().__init__(limit)

    @property
    def limit(self) -> int:
        return self.capacity


_default_scheduler: RaceScheduler | None = None
_default_lock = threading.Lock()


def default_scheduler() -> RaceScheduler:
    """The server-wide scheduler; its limit comes from ``$RESNET_VIZ_MAX_RACES`` (default 1)."""
    global _default_scheduler
    with _default_lock:
        if _default_scheduler is None:
            _default_scheduler = RaceScheduler(max(1, int(os.environ.get(MAX_RACES_ENV, "1"))))
        return _default_scheduler
