"""The node's tracking inputs, as AMCL users expect them: ``initialpose``
(PoseWithCovarianceStamped of the base in the map frame: a prior) and odometry
(nav_msgs/Odometry of the base in the odom frame, on ``odom_topic``), feeding
``runtime.tracking.PoseTracker`` (gating, propagation, still-standing skips); and, with
``publish_initialpose``, the node's own base pose out on ``/initialpose`` to seed AMCL (the
node's subscription ignores what it published itself: without a namespace it is the same
topic)."""
from __future__ import annotations

import threading

import numpy as np
from geometry_msgs.msg import PoseWithCovarianceStamped
from nav_msgs.msg import Odometry

from ..runtime.streams import StampedBuffer
from ..runtime.tracking import PoseTracker, TrackingConfig
from .conversions import InputError, pose_from_msg, seconds

DEFAULT_PRIOR_SIGMA = (1.0, 0.5)  # m, rad: for an initial pose without covariance
SEED_TOPIC = "/initialpose"  # where AMCL listens (nav2's default, global)
SEED_QUEUE_DEPTH = 10


def prior_sigmas(covariance_6x6: np.ndarray) -> tuple[float, float]:
    """(sigma_t m, sigma_r rad) of a pose covariance (x y z roll pitch yaw): the square roots
    of the largest translation and rotation variances; the defaults where those are zero."""
    cov = np.asarray(covariance_6x6, np.float64).reshape(6, 6)
    var_t, var_r = np.max(np.diag(cov)[:3]), np.max(np.diag(cov)[3:])
    return (float(np.sqrt(var_t)) if var_t > 0 else DEFAULT_PRIOR_SIGMA[0],
            float(np.sqrt(var_r)) if var_r > 0 else DEFAULT_PRIOR_SIGMA[1])


class TrackingInputs:
    """Subscribes ``initialpose`` (and ``odom_topic`` when set) on ``node``; ``base_from_cam``
    returns the current 4x4 mounting (None while unknown: mount_source tf before TF has it); ``map_frame`` the frame an initial pose must be in;
    ``log(kind, text, level=...)`` reports. Thread-safe: callbacks on the executor, the rest
    from the worker."""

    def __init__(self, node, settings, *, base_from_cam, log):
        self._base_from_cam, self._log, self._map_frame = base_from_cam, log, settings.map_frame
        self._tolerance = settings.odom_tolerance
        self.tracker = PoseTracker(TrackingConfig(
            n_sigma=settings.gate_sigmas, confirm_frames=settings.jump_confirm_frames,
            first_pose_frames=settings.first_pose_confirm_frames, gap_s=settings.first_pose_gap,
            update_min_d=settings.update_min_d, update_min_a=settings.update_min_a))
        self._lock = threading.Lock()
        self._odom = StampedBuffer(capacity=400)
        self.status = {"prior": False, "initial_pose_error": "", "odometry_error": "",
                       "odometry_received": 0, "last_note": ""}
        self._node = node
        self.subscriptions = {"initialpose": node.create_subscription(
            PoseWithCovarianceStamped, "initialpose", self._on_initial_pose, 10)}
        if settings.odom_topic:
            self.subscriptions["odometry"] = node.create_subscription(
                Odometry, settings.odom_topic, self._on_odom, 50)
        self._seed_pub = (node.create_publisher(PoseWithCovarianceStamped, SEED_TOPIC, SEED_QUEUE_DEPTH)
                          if settings.publish_initialpose else None)
        self._own_seed: PoseWithCovarianceStamped | None = None

    def destroy(self) -> None:
        for sub in self.subscriptions.values():
            self._node.destroy_subscription(sub)
        self.subscriptions = {}
        if self._seed_pub is not None:
            self._node.destroy_publisher(self._seed_pub)
            self._seed_pub = None

    def seed(self, msg: PoseWithCovarianceStamped) -> None:
        """Publish the base pose ``msg`` on /initialpose (publish_initialpose only)."""
        self._own_seed = msg
        self._seed_pub.publish(msg)

    def reset(self) -> None:
        """Forget the prior and the tracking state (~/reinitialize_global_localization)."""
        with self._lock:
            self.tracker = PoseTracker(self.tracker.config)
        self.status.update(prior=False, last_note="")

    def _on_initial_pose(self, msg: PoseWithCovarianceStamped) -> None:
        if msg == self._own_seed:  # the node's own seed for AMCL, not a prior for itself
            return
        try:
            if msg.header.frame_id not in ("", self._map_frame):
                raise InputError(f"it is in frame '{msg.header.frame_id}', not '{self._map_frame}'")
            map_from_base = pose_from_msg(msg.pose.pose)
            mount = self._base_from_cam()
            if mount is None:
                raise InputError("the camera mount is not known yet (mount_source tf)")
            with self._lock:
                self.tracker.set_prior(map_from_base @ mount,
                                       *prior_sigmas(np.array(msg.pose.covariance)))
        except (InputError, ValueError) as exc:
            self.status["initial_pose_error"] = f"initial pose refused: {exc}"
            return self._log("initial_pose", self.status["initial_pose_error"], level="warning")
        self.status.update(prior=True, initial_pose_error="")
        self._log("initial_pose", "initial pose set: the next poses are gated by it", level="info")

    def _on_odom(self, msg: Odometry) -> None:
        try:
            odom_from_base = pose_from_msg(msg.pose.pose)
        except InputError as exc:
            self.status["odometry_error"] = f"odometry refused: {exc}"
            return self._log("odometry", self.status["odometry_error"])
        self._odom.add(seconds(msg.header.stamp), odom_from_base)
        self.status["odometry_received"] += 1

    def odom_at(self, stamp: float) -> np.ndarray | None:
        """Odometry's odom_from_cam at ``stamp`` (the nearest within odom_tolerance), or None
        (none, or the mount is unknown)."""
        odom_from_base, mount = self._odom.nearest(stamp, self._tolerance), self._base_from_cam()
        return None if odom_from_base is None or mount is None else odom_from_base @ mount

    def skip(self, odom: np.ndarray | None) -> bool:
        with self._lock:
            return self.tracker.skip(odom)

    def check(self, map_from_cam: np.ndarray, odom: np.ndarray | None,
              stamp: float | None = None) -> tuple[bool, str]:
        with self._lock:
            ok, note = self.tracker.check(map_from_cam, odom, stamp)
            self.status["prior"] = bool(self.tracker.belief is not None and self.tracker.belief.prior)
        if note:
            self.status["last_note"] = note
        return ok, note
