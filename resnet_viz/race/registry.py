"""One training per setting: the server's races by what determines their curves, shared by their viewers.

A race's id (:func:`race_id`) is a hash of everything its curves depend on: the whole :class:`RaceConfig` (nets,
seeds, recipe, data set and its size, image size, precision and engine settings), the image folder it reads, the
device and torch. :meth:`RaceRegistry.open` gives a viewer

- the race of those settings that is training now ("joined": its curves so far, then live),
- else the finished race of those settings from the server's store ("finished", :class:`.store.FinishedRaces`),
- else a new race, started ("started"; it waits in the scheduler's queue for a trainer).

A viewer watches one race at a time: opening another leaves the first. Leaving ends a viewer's view only; the
training stops when its last viewer has left. Pause acts only for a race's only viewer. A race that trains to its
end is kept in the store (with its twins) and its step times are remembered (:mod:`.estimate`).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Hashable

import torch

from ..device import describe_device
from .config import RaceConfig
from .data import FOLDER_ENV
from .engine import Race
from .estimate import (
    Estimate,
    StepTimes,
    default_step_times,
    estimate_race,
    queue_starts,
    remaining_seconds,
)
from .scheduler import RaceScheduler, default_scheduler
from .store import FinishedRaces

MIN_STEPS_TO_RECORD = 20


def race_id(config: RaceConfig, device: torch.device | str) -> str:
    """The id of the race ``config`` trains on ``device``: 12 hex digits of a hash of what decides its curves."""
    device = torch.device(device)
    settings = config.to_dict()
    if config.dataset == "folder":
        settings["folder"] = os.path.abspath(config.folder or os.environ.get(FOLDER_ENV, ""))
    key = {
        "config": settings,
        "device": describe_device(device),
        "device_type": device.type,
        "torch": torch.__version__,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass
class Opened:
    """What :meth:`RaceRegistry.open` gave: ``kind`` "started", "joined" or "finished", the race's ``id``, the
    live ``race`` (started, joined) or the finished ``result`` (a race file with ``trained``)."""

    kind: str
    id: str
    race: Race | None = None
    result: dict | None = None


@dataclass
class _Entry:
    id: str
    race: Race
    estimate: Estimate | None
    viewers: set = field(default_factory=set)
    created: float = field(default_factory=time.perf_counter)
    trainer_at: float | None = None  # when it got a trainer (left the queue)
    stopping: bool = False  # its last viewer left: it is winding down and nobody may join it
    result: dict | None = None  # once stored


class RaceRegistry:
    """The server's live races by id, their viewers, and the store of finished races."""

    def __init__(
        self,
        store: FinishedRaces | None = None,
        scheduler: RaceScheduler | None = None,
        times: StepTimes | None = None,
    ):
        self.store = store if store is not None else FinishedRaces()
        self.scheduler = scheduler or default_scheduler()
        self.times = times or default_step_times()
        self.started = 0  # trainings started since the registry was made
        self._live: dict[str, _Entry] = {}
        self._watching: dict[Hashable, str] = {}  # viewer -> id of the live race they watch
        self._lock = threading.RLock()

    # -- viewers -------------------------------------------------------------------------------------------------
    def open(
        self, config: RaceConfig, device: torch.device | str, viewer: Hashable, *, estimate: Estimate | None = None
    ) -> Opened:
        """Join the live race of ``config``, open its finished race, or start it (see the module's docstring).

        ``estimate`` (:func:`.estimate.estimate_race`) is what the queue tells about the new race; it is measured
        here when not given.
        """
        device = torch.device(device)
        rid = race_id(config, device)
        found = self._join_or_finished(rid, viewer)
        if found is not None:
            return found
        if estimate is None:
            try:
                estimate = estimate_race(config, device, times=self.times)
            except Exception:  # noqa: BLE001 - the queue then tells no time for this race
                estimate = None
        with self._lock:
            found = self._join_or_finished(rid, viewer)  # someone may have started it meanwhile
            if found is not None:
                return found
            self._leave(viewer)
            race = Race(config, device=device, scheduler=self.scheduler)
            entry = _Entry(rid, race, estimate, {viewer})
            self._live[rid] = entry
            self._watching[viewer] = rid
            self.started += 1
            race.start()
        threading.Thread(target=self._keep, args=(entry, device), name="race-keeper", daemon=True).start()
        return Opened("started", rid, race=race)

    def _join_or_finished(self, rid: str, viewer: Hashable) -> Opened | None:
        with self._lock:
            entry = self._live.get(rid)
            if entry is not None and entry.result is not None:
                self._leave(viewer)
                return Opened("finished", rid, result=entry.result)
            if entry is not None and not entry.stopping and entry.race.status not in ("stopped", "failed"):
                if self._watching.get(viewer) != rid:
                    self._leave(viewer)
                entry.viewers.add(viewer)
                self._watching[viewer] = rid
                return Opened("joined", rid, race=entry.race)
        result = self.store.get(rid)
        if result is None:
            return None
        self.leave(viewer)
        return Opened("finished", rid, result=result)

    def find(self, rid: str, viewer: Hashable) -> Opened | None:
        """Open the race with id ``rid`` (a shared link): join it live, or its finished result; None if unknown."""
        return self._join_or_finished(rid, viewer)

    def leave(self, viewer: Hashable) -> None:
        """``viewer`` stops watching; a race whose last viewer left stops training."""
        with self._lock:
            self._leave(viewer)

    def _leave(self, viewer: Hashable) -> None:
        rid = self._watching.pop(viewer, None)
        entry = self._live.get(rid) if rid is not None else None
        if entry is None:
            return
        entry.viewers.discard(viewer)
        if not entry.viewers and not entry.race.done:
            entry.stopping = True
            entry.race.stop()

    def watching(self, viewer: Hashable) -> str | None:
        with self._lock:
            return self._watching.get(viewer)

    def viewers(self, rid: str) -> int:
        with self._lock:
            entry = self._live.get(rid)
            return len(entry.viewers) if entry is not None else 0

    def pause(self, viewer: Hashable) -> bool:
        """Pause ``viewer``'s race if they are its only viewer; False (nothing paused) otherwise."""
        with self._lock:
            entry = self._live.get(self._watching.get(viewer, ""))
            if entry is None or entry.viewers != {viewer}:
                return False
            entry.race.pause()
            return True

    def resume(self, viewer: Hashable) -> None:
        with self._lock:
            entry = self._live.get(self._watching.get(viewer, ""))
            if entry is not None:
                entry.race.resume()

    # -- the server's races --------------------------------------------------------------------------------------
    def training(self) -> int:
        """Races holding a trainer now (preparing, training or paused)."""
        with self._lock:
            return sum(1 for e in self._live.values() if e.race.status in ("preparing", "running", "paused"))

    def queued(self) -> int:
        with self._lock:
            return sum(1 for e in self._live.values() if e.race.status in ("created", "queued"))

    def live_ids(self) -> list[str]:
        with self._lock:
            return [rid for rid, e in self._live.items() if not e.race.done]

    def estimate_of(self, rid: str) -> Estimate | None:
        with self._lock:
            entry = self._live.get(rid)
            return entry.estimate if entry is not None else None

    def queue(self) -> dict[str, tuple[int, float | None]]:
        """Each queued race's place in line (1: next) and estimated seconds until it starts (None: unknown): the
        races ahead of it, training (from their measured step rate) and queued (from their estimates), end on
        the scheduler's trainers one after another."""
        now = time.perf_counter()
        with self._lock:
            entries = [e for e in self._live.values() if not e.race.done and not e.stopping]
        placed = [(e.race.queue_position(), e) for e in entries]
        waiting = sorted(((pos, e) for pos, e in placed if pos is not None), key=lambda pe: pe[0])
        holding = [e for pos, e in placed if pos is None and e.race.status not in ("created", "queued")]
        remaining = [remaining_seconds(e.race.progress(), e.estimate, now - (e.trainer_at or now)) for e in holding]
        known = all(e.estimate is not None for e in holding if not e.race.step) and all(
            e.estimate is not None for _pos, e in waiting
        )
        starts = queue_starts(
            remaining, [e.estimate.seconds if e.estimate else 0.0 for _p, e in waiting], self.scheduler.limit
        )
        return {e.id: (i + 1, start if known else None) for i, ((_pos, e), start) in enumerate(zip(waiting, starts))}

    # -- a race's end --------------------------------------------------------------------------------------------
    def _keep(self, entry: _Entry, device: torch.device) -> None:
        """Wait for the race's end; keep a finished race in the store and its step times; forget the entry."""
        race = entry.race
        while not race.join(0.25):
            if entry.trainer_at is None and race.status not in ("created", "queued"):
                entry.trainer_at = time.perf_counter()
        ended = time.perf_counter()
        if entry.trainer_at is None and race.started_at:  # a race that trained within one look: no preparing seen
            entry.trainer_at = ended - race.elapsed_s
        if race.status == "finished" and race.runs:
            if race.step >= MIN_STEPS_TO_RECORD and race.elapsed_s > 0 and race.started_at and entry.trainer_at:
                prepare = max(0.0, ended - entry.trainer_at - race.elapsed_s)
                self.times.record(race.config, device, race.elapsed_s / race.step, prepare, race.step)
            result = race.to_dict()
            result["trained"] = {
                "id": entry.id,
                "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "wall_s": round(ended - (entry.trainer_at or entry.created), 2),
                "where": "server",
            }
            self.store.put(entry.id, result, _twins(race))
            with self._lock:
                entry.result = result
        with self._lock:
            if self._live.get(entry.id) is entry:
                del self._live[entry.id]
            for viewer in [v for v, rid in self._watching.items() if rid == entry.id]:
                del self._watching[viewer]


def _twins(race: Race) -> dict[int, bytes]:
    from .files import race_pairs, race_twins_bytes

    out = {}
    try:
        for depth in race_pairs(race):
            out[depth] = race_twins_bytes(race, depth)
    except Exception:  # noqa: BLE001 - the race is kept without its twins' downloads
        return {}
    return out


_default: RaceRegistry | None = None
_default_lock = threading.Lock()


def default_registry() -> RaceRegistry:
    """The server-wide registry (its store under ``$RESNET_VIZ_CACHE/races``, the default scheduler)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = RaceRegistry()
        return _default


def set_default_registry(registry: RaceRegistry | None) -> None:
    """Replace the server-wide registry (tests: a registry on a fresh store); None makes a new one when next asked."""
    global _default
    with _default_lock:
        _default = registry
