"""Helpers for live streams: pairing by stamp (seconds), newest-only hand-off, input rate."""
from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from typing import Any


class StampedBuffer:
    """The last ``capacity`` items of a stream, each with a stamp (s) and a key (e.g. frame id).

    ``nearest(stamp, tolerance)`` gives the item closest in time within ``tolerance`` seconds;
    ``latest(key)`` the newest item with that key. Thread-safe; stamps may arrive out of order.
    """

    def __init__(self, capacity: int = 64):
        self.capacity = capacity
        self._stamps: list[float] = []
        self._items: list[tuple[Any, Any]] = []  # (key, value), sorted by stamp
        self._latest: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def add(self, stamp: float, value: Any, key: Any = None) -> None:
        with self._lock:
            i = bisect.bisect_right(self._stamps, stamp)
            self._stamps.insert(i, stamp)
            self._items.insert(i, (key, value))
            if len(self._stamps) > self.capacity:
                del self._stamps[0], self._items[0]
            if key not in self._latest or stamp >= self._latest[key][0]:
                self._latest[key] = (stamp, value)

    def nearest(self, stamp: float, tolerance: float) -> Any | None:
        """The value whose stamp is closest to ``stamp`` (ties: the earlier), or None when none
        lies within ``tolerance`` seconds."""
        with self._lock:
            i = bisect.bisect_left(self._stamps, stamp)
            best, best_dt = None, tolerance
            for j in (i - 1, i):
                if 0 <= j < len(self._stamps) and abs(self._stamps[j] - stamp) <= best_dt:
                    if best is None or abs(self._stamps[j] - stamp) < best_dt:
                        best, best_dt = self._items[j][1], abs(self._stamps[j] - stamp)
            return best

    def latest(self, key: Any = None) -> Any | None:
        """The newest value added with ``key``, or None."""
        with self._lock:
            item = self._latest.get(key)
            return None if item is None else item[1]

    def newest_stamp(self) -> float | None:
        with self._lock:
            return self._stamps[-1] if self._stamps else None

    def __len__(self) -> int:
        return len(self._stamps)


class LatestSlot:
    """Hands the newest item from producers to one consumer thread; an item not yet taken is
    replaced (``put`` returns True then: one stale item dropped), so nothing ever queues up."""

    def __init__(self):
        self._cond = threading.Condition()
        self._item: Any = None
        self._full = False

    def put(self, item: Any) -> bool:
        with self._cond:
            replaced = self._full
            self._item, self._full = item, True
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> Any | None:
        """The newest item, waiting up to ``timeout`` seconds; None when there was none."""
        with self._cond:
            if not self._full and not self._cond.wait_for(lambda: self._full, timeout):
                return None
            item, self._item, self._full = self._item, None, False
            return item


class RateMeter:
    """Events per second over the last ``window`` seconds (monotonic clock)."""

    def __init__(self, window: float = 5.0):
        self.window = window
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self, now: float | None = None) -> None:
        with self._lock:
            self._times.append(time.monotonic() if now is None else now)

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            while self._times and self._times[0] < now - self.window:
                self._times.popleft()
            if len(self._times) < 2:
                return 0.0
            return (len(self._times) - 1) / max(self._times[-1] - self._times[0], 1e-6)
