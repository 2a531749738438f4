"""The node's TF output: the latest correction, republished at a fixed rate.

REP-105: a localizer publishes map → odom (or, without odometry, map → base), never map →
camera (the camera already has a parent on a robot). The correction changes with each pose but
must be in the TF tree continuously, so it is sent every ``transform_publish_period`` s, stamped
*now + transform_tolerance* (post-dated: a lookup at the newest sensor time finds it), as AMCL
does."""
from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
from geometry_msgs.msg import TransformStamped

from ..geometry import quat_from_pose
from .conversions import stamp_from_seconds


def transform_msg(parent: str, child: str, parent_from_child: np.ndarray, stamp_s: float) -> TransformStamped:
    ts = TransformStamped()
    ts.header.stamp, ts.header.frame_id, ts.child_frame_id = stamp_from_seconds(stamp_s), parent, child
    t, q = quat_from_pose(parent_from_child)
    ts.transform.translation.x, ts.transform.translation.y, ts.transform.translation.z = map(float, t)
    (ts.transform.rotation.x, ts.transform.rotation.y, ts.transform.rotation.z,
     ts.transform.rotation.w) = map(float, q)
    return ts


class TfMessageBroadcaster:
    """What tf2_ros.TransformBroadcaster does (TFMessage on /tf, depth 100), for where only
    tf2_msgs exists: the PyPI wheels plus scripts/build_tf2_msgs.py (run by make setup)."""

    def __init__(self, node):
        from tf2_msgs.msg import TFMessage
        self._message = TFMessage
        self._pub = node.create_publisher(TFMessage, "/tf", 100)

    def sendTransform(self, transform: TransformStamped) -> None:  # noqa: N802 - tf2_ros' name
        self._pub.publish(self._message(transforms=[transform]))


class TransformRepublisher:
    """``update(parent, child, parent_from_child)`` from the worker; ``tick(tolerance_s)`` from
    the node's timer sends the latest one with ``send`` (a TransformBroadcaster's
    sendTransform), stamped ``now_s() + tolerance_s``. Nothing is sent before the first update."""

    def __init__(self, send: Callable[[TransformStamped], None], now_s: Callable[[], float]):
        self._send, self._now_s = send, now_s
        self._latest: tuple[str, str, np.ndarray] | None = None
        self._lock = threading.Lock()

    def update(self, parent: str, child: str, parent_from_child: np.ndarray) -> None:
        with self._lock:
            self._latest = (parent, child, np.array(parent_from_child, np.float64))

    def tick(self, tolerance_s: float) -> None:
        with self._lock:
            latest = self._latest
        if latest is not None:
            self._send(transform_msg(*latest, self._now_s() + tolerance_s))
