"""Tracking between relocalizations, as AMCL users expect: a prior (``/initialpose``) and
odometry gate the estimates, odometry carries the last pose forward, and frames are skipped
while the robot stands still. Pure: poses are 4x4 float64 ``map_from_cam`` / ``odom_from_cam``
(camera optical frame; metres, radians).

Without odometry only the prior gates (the camera may have moved anywhere since the last
frame); with it, an estimate far outside the propagated uncertainty is a *jump*: it is held
back until ``confirm_frames`` estimates in a row agree with it (a kidnapped robot is found
again, a single wrong estimate is not published). With ``first_pose_frames`` > 1, the first
pose (at the start, after a reset, and without odometry after ``gap_s`` seconds with no pose)
is held the same way until that many estimates in a row agree: a lone wrong estimate cannot
start the track."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry import invert_pose, is_valid_pose, rotation_angle


@dataclass(frozen=True)
class TrackingConfig:
    """sigma_*: 1-sigma uncertainty of a fresh estimate; growth_*: added per metre / radian
    of odometry motion; n_sigma: the gate; confirm_frames: estimates in a row that confirm a
    jump; first_pose_frames: ... that confirm the first pose (1: published at once); gap_s:
    seconds without a pose after which, without odometry, the next pose is a first pose again;
    update_min_d (m) / update_min_a (rad): a frame is skipped unless the camera moved this much
    since the last frame processed (0: never skip). Estimates in a row agree when each is within
    n_sigma fresh sigmas of the one before (carried to it by odometry when there is some)."""
    sigma_t: float = 0.05
    sigma_r: float = 0.02
    growth_t: float = 0.10
    growth_r: float = 0.10
    n_sigma: float = 3.0
    confirm_frames: int = 3
    first_pose_frames: int = 1
    gap_s: float = 2.0
    update_min_d: float = 0.0
    update_min_a: float = 0.0


@dataclass(frozen=True)
class Belief:
    """Where the camera is (map_from_cam) with 1-sigma uncertainties (m, rad), odometry's
    odom_from_cam at that moment (None: not known), whether it is a prior that no estimate
    has confirmed yet, and the stamp (s) of the estimate it comes from (None: not known)."""
    map_from_cam: np.ndarray
    sigma_t: float
    sigma_r: float
    odom_from_cam: np.ndarray | None = None
    prior: bool = False
    stamp: float | None = None


def motion(odom_from_a: np.ndarray, odom_from_b: np.ndarray) -> tuple[float, float]:
    """(metres, radians) the camera moved from a to b according to odometry."""
    a_from_b = invert_pose(odom_from_a) @ odom_from_b
    return float(np.linalg.norm(a_from_b[:3, 3])), rotation_angle(a_from_b[:3, :3])


def distance(map_from_a: np.ndarray, map_from_b: np.ndarray) -> tuple[float, float]:
    """(metres between the camera centres, radians between the orientations)."""
    return (float(np.linalg.norm(map_from_a[:3, 3] - map_from_b[:3, 3])),
            rotation_angle(map_from_a[:3, :3].T @ map_from_b[:3, :3]))


class PoseTracker:
    """``set_prior``, then per frame: ``skip(odom)``, ``predict(odom)``, ``check(estimate,
    odom)`` -> (accepted, reason). ``odom`` is odometry's odom_from_cam at the frame's stamp,
    or None without odometry."""

    def __init__(self, config: TrackingConfig = TrackingConfig()):
        self.config = config
        self.belief: Belief | None = None
        self._candidates: list[tuple[np.ndarray, np.ndarray]] = []
        self._last_frame_odom: np.ndarray | None = None

    def set_prior(self, map_from_cam: np.ndarray, sigma_t: float, sigma_r: float) -> None:
        """A prior pose (e.g. /initialpose); ValueError for NaN, a non-rigid pose or a sigma
        that is not positive and finite."""
        if not (is_valid_pose(np.asarray(map_from_cam, np.float64)) and np.isfinite(sigma_t)
                and np.isfinite(sigma_r) and sigma_t > 0 and sigma_r > 0):
            raise ValueError("a prior needs a finite rigid pose and positive finite sigmas "
                             f"(got sigma_t {sigma_t}, sigma_r {sigma_r})")
        self.belief = Belief(np.array(map_from_cam, np.float64), float(sigma_t), float(sigma_r),
                             prior=True)
        self._candidates = []

    def skip(self, odom: np.ndarray | None) -> bool:
        """True while the camera moved less than update_min_d and update_min_a since the last
        frame that was not skipped (never without odometry or with both thresholds 0)."""
        c = self.config
        if odom is None or (c.update_min_d <= 0 and c.update_min_a <= 0):
            return False
        if self._last_frame_odom is not None:
            d, a = motion(self._last_frame_odom, odom)
            if d < c.update_min_d and a < c.update_min_a:
                return True
        self._last_frame_odom = odom
        return False

    def predict(self, odom: np.ndarray | None) -> Belief | None:
        """The belief carried forward by odometry to ``odom`` (its uncertainty grown with the
        motion); the belief as it is without odometry or before the first."""
        b = self.belief
        if b is None or odom is None or b.odom_from_cam is None:
            return b
        d, a = motion(b.odom_from_cam, odom)
        c = self.config
        return Belief(b.map_from_cam @ invert_pose(b.odom_from_cam) @ odom,
                      b.sigma_t + c.growth_t * d, b.sigma_r + c.growth_r * a, odom, b.prior, b.stamp)

    def check(self, map_from_cam: np.ndarray, odom: np.ndarray | None,
              stamp: float | None = None) -> tuple[bool, str]:
        """Whether to publish ``map_from_cam`` (and a note when a jump or a first pose was
        confirmed), or why not; an accepted estimate becomes the belief. Gated: against a
        prior, or against the last pose carried by odometry; a first pose waits for
        ``first_pose_frames`` agreeing estimates. ``stamp``: the image's, seconds (None: no gaps
        are told)."""
        c = self.config
        prior = self.predict(odom)
        if prior is not None and (prior.prior or (odom is not None and prior.odom_from_cam is not None)):
            dt, dr = distance(prior.map_from_cam, map_from_cam)
            gate_t, gate_r = c.n_sigma * prior.sigma_t, c.n_sigma * prior.sigma_r
            if dt > gate_t or dr > gate_r:
                return self._hold(map_from_cam, odom, stamp, c.confirm_frames, (
                    f"jump of {dt:.2f} m / {np.degrees(dr):.1f} deg", f" outside the propagated "
                    f"uncertainty ({gate_t:.2f} m / {np.degrees(gate_r):.1f} deg at {c.n_sigma:g} sigma)"))
        elif c.first_pose_frames > 1 and (prior is None or self._after_gap(odom, stamp)):
            return self._hold(map_from_cam, odom, stamp, c.first_pose_frames,
                              ("first pose" if prior is None else
                               f"first pose after {stamp - prior.stamp:.1f} s without one", ""))
        self._accept(map_from_cam, odom, stamp)
        return True, ""

    def _after_gap(self, odom: np.ndarray | None, stamp: float | None) -> bool:
        b = self.belief
        return (odom is None and stamp is not None and b is not None and b.stamp is not None
                and stamp - b.stamp > self.config.gap_s)

    def _accept(self, map_from_cam: np.ndarray, odom: np.ndarray | None, stamp: float | None) -> None:
        self.belief = Belief(np.array(map_from_cam, np.float64), self.config.sigma_t,
                             self.config.sigma_r, odom, stamp=stamp)
        self._candidates = []

    def _hold(self, map_from_cam, odom, stamp, needed: int, what: tuple[str, str]) -> tuple[bool, str]:
        """Hold an estimate back until ``needed`` estimates in a row agree on it (the last one
        carried to now by odometry, within the gate of a fresh estimate). what: (the estimate,
        why it is held)."""
        c = self.config
        if self._candidates:
            m, o = self._candidates[-1]
            last = m @ invert_pose(o) @ odom if odom is not None and o is not None else m
            t, r = distance(last, map_from_cam)
            if t > c.n_sigma * c.sigma_t or r > c.n_sigma * c.sigma_r:
                self._candidates = []
        self._candidates.append((np.array(map_from_cam, np.float64), odom))
        n = len(self._candidates)
        if n >= needed:
            self._accept(map_from_cam, odom, stamp)
            return True, f"{what[0]} confirmed by {n} frames"
        return False, f"{what[0]}{what[1]}: held until {needed} frames agree ({n} so far)"
