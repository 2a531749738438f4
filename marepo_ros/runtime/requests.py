"""Which frames the node localizes, and which of its poses are fresh relocalizations: nav2's side
of the node. Pure and thread-safe; times are seconds of a monotonic clock.

- Continuous localization, or only the frames asked for (a trigger: the next frame, once).
- A rate cap: a frame sooner than 1 / max_rate_hz after the last one admitted is skipped (the
  caller counts it), never queued.
- A fresh relocalization is the first pose after ``start``, after a trigger, after
  ``reinitialize``, after a jump the tracker confirmed, or after being lost (a frame that gave
  no pose LOST_AFTER_S or more after the last pose): its pose seeds ``/initialpose``, once."""
from __future__ import annotations

import threading

LOST_AFTER_S = 3.0
# A frame up to this fraction of the cap's period early still passes (a camera's jitter: a
# 10 Hz stream under a 10 Hz cap is not halved).
RATE_SLACK = 0.1
# What ``admit`` decides for a frame:
LOCALIZE = "localize"
TRIGGERED = "triggered"               # localize: asked for (not to be skipped as standing still)
SKIP_NOT_REQUESTED = "not_requested"  # continuous localization is off and no trigger waits
SKIP_RATE = "rate"                    # over max_localization_rate
SKIPS = (SKIP_NOT_REQUESTED, SKIP_RATE)


class LocalizationRequests:
    """``admit(now, ...)`` per incoming frame; ``published(now)`` / ``failed(now)`` per frame
    localized or not; ``trigger()`` and ``reinitialize()`` from the services."""

    def __init__(self):
        self._lock = threading.Lock()
        self.start()

    def start(self) -> None:
        """A fresh start (activation): no trigger waits, the next pose is fresh."""
        with self._lock:
            self._trigger = False
            self._fresh = True
            self._lost = False
            self._last_admitted: float | None = None
            self._last_pose: float | None = None

    def trigger(self) -> bool:
        """Localize the next frame (even with continuous localization off or over the cap); its
        pose, or the next, is fresh. False when a trigger was already waiting."""
        with self._lock:
            waiting, self._trigger, self._fresh = self._trigger, True, True
            return not waiting

    def reinitialize(self) -> None:
        """The next pose is a fresh relocalization (the tracking state is the caller's)."""
        with self._lock:
            self._fresh = True

    def admit(self, now: float, *, continuous: bool, max_rate_hz: float) -> str:
        """LOCALIZE or TRIGGERED (a waiting trigger, used up by this frame) to localize this
        frame, else why not (one of SKIPS)."""
        with self._lock:
            decision = TRIGGERED if self._trigger else LOCALIZE
            if decision == LOCALIZE:
                if not continuous:
                    return SKIP_NOT_REQUESTED
                if (max_rate_hz > 0 and self._last_admitted is not None
                        and now - self._last_admitted < (1.0 - RATE_SLACK) / max_rate_hz):
                    return SKIP_RATE
            self._trigger, self._last_admitted = False, now
            return decision

    def published(self, now: float, *, jump: bool = False) -> bool:
        """A pose went out (``jump``: the tracker confirmed a jump with it); True when it is a
        fresh relocalization (seed /initialpose with it)."""
        with self._lock:
            fresh = self._fresh or self._lost or jump
            self._fresh = self._lost = False
            self._last_pose = now
            return fresh

    def failed(self, now: float) -> None:
        """A frame was localized without a pose being published."""
        with self._lock:
            if self._last_pose is not None and now - self._last_pose >= LOST_AFTER_S:
                self._lost = True

    def status(self) -> dict:
        with self._lock:
            return {"trigger_pending": self._trigger, "lost": self._lost,
                    "next_pose_fresh": self._fresh or self._lost}
