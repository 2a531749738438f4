"""Tracking between relocalizations, as AMCL users expect: a prior (``/initialpose``) and
odometry gate the estimates, odometry carries the last pose forward, and frames are skipped
while the robot stands still. Pure: poses are 4x4 float64 ``map_from_cam`` / ``odom_from_cam``
(camera optical frame; metres, radians).

Without odometry only the prior gates (the camera may have moved anywhere since the last
frame); with it, an estimate far outside the propagated uncertainty is a *jump*: it is held
back until ``confirm_frames`` estimates in a row agree with it (a kidnapped robot is found
again, a single wrong estimate is not published)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry import invert_pose, is_valid_pose, rotation_angle


@dataclass(frozen=True)
class TrackingConfig:
    """sigma_*: 1-sigma uncertainty of a fresh estimate; growth_*: added per metre / radian
    of odometry motion; n_sigma: the gate; update_min_d (m) / update_min_a (rad): a frame is
    skipped unless the camera moved this much since the last frame processed (0: never skip)."""
    sigma_t: float = 0.05
    sigma_r: float = 0.02
    growth_t: float = 0.10
    growth_r: float = 0.10
    n_sigma: float = 3.0
    confirm_frames: int = 3
    update_min_d: float = 0.0
    update_min_a: float = 0.0


@dataclass(frozen=True)
class Belief:
    """Where the camera is (map_from_cam) with 1-sigma uncertainties (m, rad), odometry's
    odom_from_cam at that moment (None: not known), and whether it is a prior that no estimate
    has confirmed yet."""
    map_from_cam: np.ndarray
    sigma_t: float
    sigma_r: float
    odom_from_cam: np.ndarray | None = None
    prior: bool = False


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
                      b.sigma_t + c.growth_t * d, b.sigma_r + c.growth_r * a, odom, b.prior)

    def check(self, map_from_cam: np.ndarray, odom: np.ndarray | None) -> tuple[bool, str]:
        """Whether to publish ``map_from_cam`` (and a note when a jump was confirmed), or why
        not; an accepted estimate becomes the belief. Gated: against a prior, or against the
        last pose carried by odometry."""
        c = self.config
        prior = self.predict(odom)
        if prior is not None and (prior.prior or (odom is not None and prior.odom_from_cam is not None)):
            dt, dr = distance(prior.map_from_cam, map_from_cam)
            gate_t, gate_r = c.n_sigma * prior.sigma_t, c.n_sigma * prior.sigma_r
            if dt > gate_t or dr > gate_r:
                return self._jump(map_from_cam, odom, dt, dr, gate_t, gate_r)
        self._accept(map_from_cam, odom)
        return True, ""

    def _accept(self, map_from_cam: np.ndarray, odom: np.ndarray | None) -> None:
        self.belief = Belief(np.array(map_from_cam, np.float64), self.config.sigma_t,
                             self.config.sigma_r, odom)
        self._candidates = []

    def _jump(self, map_from_cam, odom, dt, dr, gate_t, gate_r) -> tuple[bool, str]:
        """Hold a jump back until confirm_frames estimates in a row agree on it (each carried
        to now by odometry, within the gate of a fresh estimate)."""
        c = self.config
        if odom is not None and self._candidates:
            carried = [m @ invert_pose(o) @ odom for m, o in self._candidates]
            agree = [distance(m, map_from_cam) for m in carried]
            if not all(t <= c.n_sigma * c.sigma_t and r <= c.n_sigma * c.sigma_r for t, r in agree):
                self._candidates = []
        self._candidates.append((np.array(map_from_cam, np.float64),
                                 odom if odom is not None else np.eye(4)))
        n = len(self._candidates)
        if n >= c.confirm_frames:
            self._accept(map_from_cam, odom)
            return True, f"jump of {dt:.2f} m / {np.degrees(dr):.1f} deg confirmed by {n} frames"
        return False, (f"jump of {dt:.2f} m / {np.degrees(dr):.1f} deg outside the propagated "
                       f"uncertainty ({gate_t:.2f} m / {np.degrees(gate_r):.1f} deg at "
                       f"{c.n_sigma:g} sigma): held until {c.confirm_frames} frames agree ({n} so far)")
