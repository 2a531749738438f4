"""Frames missing from a publisher's stream, estimated from the stamps alone (ROS 2 images
carry no sequence number): the frame period is the median step between recent stamps, and a
step of k periods means k - 1 frames lost on the way."""
from __future__ import annotations

from collections import deque

import numpy as np


class SequenceGaps:
    """Per stream (``key``, e.g. a frame id): ``add(stamp)`` returns the frames estimated
    missing just before this one; ``missing`` is the total over all streams.

    window: steps the period is the median of; min_steps: steps seen before gaps are counted;
    max_gap_s: a longer step is a pause of the publisher, not a loss, and the period is
    learnt anew after it (the publisher may come back at another rate). Stamps in seconds; an
    out-of-order or repeated stamp counts nothing and is ignored.
    """

    def __init__(self, *, window: int = 30, min_steps: int = 5, max_gap_s: float = 2.0):
        self.window, self.min_steps, self.max_gap_s = window, min_steps, max_gap_s
        self._last: dict[object, float] = {}
        self._steps: dict[object, deque[float]] = {}
        self.missing = 0

    def period(self, key: object = None) -> float | None:
        """Seconds between the stream's frames (median of recent steps), None before
        ``min_steps`` steps."""
        steps = self._steps.get(key)
        return float(np.median(steps)) if steps and len(steps) >= self.min_steps else None

    def add(self, stamp: float, key: object = None) -> int:
        last = self._last.get(key)
        if last is not None and stamp <= last:
            return 0
        self._last[key] = stamp
        if last is None:
            return 0
        step, period = stamp - last, self.period(key)
        steps = self._steps.setdefault(key, deque(maxlen=self.window))
        if step > self.max_gap_s:
            steps.clear()
            return 0
        steps.append(step)
        if period is None or step < 1.5 * period:
            return 0
        lost = int(round(step / period)) - 1
        self.missing += lost
        return lost
