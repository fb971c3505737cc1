"""Finished races kept on the server for everyone: a bounded store on disk under the cache folder.

Each race that trained to its end is kept as ``<id>.json`` (the race file, :meth:`Race.to_dict`, with when and
where it trained) and one ``<id>-<depth>.safetensors`` per depth (its twins of the first seed, what the page offers
for download) in ``$RESNET_VIZ_CACHE/races`` (``~/.cache/resnet_viz/races``; ``$RESNET_VIZ_RACES_DIR`` names
another folder), so a restarted server still has them. The store holds at most ``max_races`` races and
``max_bytes`` bytes (``$RESNET_VIZ_RACE_STORE``, ``$RESNET_VIZ_RACE_STORE_MB``); the race used least recently goes
first.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import OrderedDict
from pathlib import Path

from .autotune import CACHE_ENV

STORE_ENV = "RESNET_VIZ_RACE_STORE"
STORE_MB_ENV = "RESNET_VIZ_RACE_STORE_MB"
FOLDER_ENV = "RESNET_VIZ_RACES_DIR"  # where the store lives (default: the cache folder's races/)
DEFAULT_MAX_RACES = 50
DEFAULT_MAX_MB = 500
FOLDER = "races"
ID_PATTERN = re.compile(r"^[0-9a-f]{12}$")
LOADED_KEPT = 4  # race files kept parsed in memory


def _env_number(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default


class FinishedRaces:
    """The server's finished races by id; thread-safe, bounded by count and bytes, least recently used out first."""

    def __init__(
        self, folder: str | os.PathLike | None = None, max_races: int | None = None, max_bytes: int | None = None
    ):
        base = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "resnet_viz")
        self.folder = Path(folder or os.environ.get(FOLDER_ENV) or Path(base) / FOLDER)
        self.max_races = max_races or _env_number(STORE_ENV, DEFAULT_MAX_RACES)
        self.max_bytes = max_bytes or _env_number(STORE_MB_ENV, DEFAULT_MAX_MB) * 1024 * 1024
        self._lock = threading.RLock()
        self._used: OrderedDict[str, float] = OrderedDict()  # id -> last use, least recent first
        self._loaded: OrderedDict[str, dict] = OrderedDict()
        self._scan()

    def _scan(self) -> None:
        try:
            found = [(p.stat().st_mtime, p.stem) for p in self.folder.glob("*.json") if ID_PATTERN.match(p.stem)]
        except OSError:
            found = []
        for mtime, race_id in sorted(found):
            self._used[race_id] = mtime
        self._make_room(0, races=0)  # the bounds may have shrunk since these were stored

    def _files(self, race_id: str) -> list[Path]:
        return [self.folder / f"{race_id}.json", *sorted(self.folder.glob(f"{race_id}-*.safetensors"))]

    def _size(self, race_id: str) -> int:
        return sum(p.stat().st_size for p in self._files(race_id) if p.exists())

    def total_bytes(self) -> int:
        with self._lock:
            return sum(self._size(race_id) for race_id in self._used)

    def ids(self) -> list[str]:
        """The stored races, least recently used first."""
        with self._lock:
            return list(self._used)

    def __contains__(self, race_id: object) -> bool:
        with self._lock:
            return race_id in self._used

    def __len__(self) -> int:
        with self._lock:
            return len(self._used)

    def put(self, race_id: str, result: dict, twins: dict[int, bytes] | None = None) -> None:
        """Keep a finished race (its :meth:`Race.to_dict` with ``trained``) and its twins' checkpoint bytes."""
        if not ID_PATTERN.match(race_id):
            raise ValueError(f"not a race id: {race_id!r}")
        text = json.dumps(result)
        size = len(text.encode()) + sum(len(data) for data in (twins or {}).values())
        if size > self.max_bytes:
            return  # larger than the whole store: kept by nobody, and the others stay
        with self._lock:
            self._drop(race_id)  # a race stored again replaces its files
            self._make_room(size)  # first, so the folder never holds more than the bound
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                for depth, data in (twins or {}).items():
                    (self.folder / f"{race_id}-{int(depth)}.safetensors").write_bytes(data)
                tmp = self.folder / f"{race_id}.json.tmp"
                tmp.write_text(text)
                os.replace(tmp, self.folder / f"{race_id}.json")
            except OSError:
                return  # a full or read-only disk: the race is not kept
            self._used[race_id] = time.time()
            self._used.move_to_end(race_id)
            self._remember(race_id, result)

    def get(self, race_id: str) -> dict | None:
        """The stored race (and it becomes the most recently used), or None."""
        with self._lock:
            if race_id not in self._used:
                return None
            self._used.move_to_end(race_id)
            self._used[race_id] = time.time()
            if race_id in self._loaded:
                self._loaded.move_to_end(race_id)
                return self._loaded[race_id]
            try:
                result = json.loads((self.folder / f"{race_id}.json").read_text())
            except (OSError, ValueError):
                self._drop(race_id)
                return None
            try:
                os.utime(self.folder / f"{race_id}.json")
            except OSError:
                pass
            self._remember(race_id, result)
            return result

    def twins(self, race_id: str) -> dict[int, Path]:
        """Depth -> checkpoint file of the stored race's twins."""
        with self._lock:
            if race_id not in self._used:
                return {}
            found = {}
            for path in self.folder.glob(f"{race_id}-*.safetensors"):
                try:
                    found[int(path.stem.rsplit("-", 1)[1])] = path
                except ValueError:
                    continue
            return dict(sorted(found.items()))

    def _remember(self, race_id: str, result: dict) -> None:
        self._loaded[race_id] = result
        self._loaded.move_to_end(race_id)
        while len(self._loaded) > LOADED_KEPT:
            self._loaded.popitem(last=False)

    def _drop(self, race_id: str) -> None:
        self._used.pop(race_id, None)
        self._loaded.pop(race_id, None)
        for path in self._files(race_id):
            try:
                path.unlink()
            except OSError:
                pass

    def _make_room(self, size: int, races: int = 1) -> None:
        """Drop the least recently used races until ``races`` more races of ``size`` bytes fit the bounds."""
        while self._used and len(self._used) + races > self.max_races:
            self._drop(next(iter(self._used)))
        sizes = {race_id: self._size(race_id) for race_id in self._used}
        total = sum(sizes.values())
        while self._used and total + size > self.max_bytes:
            oldest = next(iter(self._used))
            total -= sizes.pop(oldest, 0)
            self._drop(oldest)
