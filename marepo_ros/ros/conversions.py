"""ROS message <-> numpy conversions (no cv_bridge needed). Errors are ``InputError`` with a
one-line reason that the node reports on status, diagnostics and the log."""
from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Pose, PoseWithCovarianceStamped
from std_msgs.msg import Header

from ..geometry import pose_from_quat, quat_from_pose
from ..io.images import (ENCODINGS, ImageError, UnsupportedEncoding, decode_compressed, decode_depth,
                         decode_raw)

class InputError(ValueError):
    """An input message that cannot be used; ``str()`` says why in one line."""


def seconds(stamp: Time) -> float:
    """A builtin_interfaces/Time as float seconds."""
    return stamp.sec + 1e-9 * stamp.nanosec


def stamp_from_seconds(t: float) -> Time:
    sec = int(np.floor(t))
    return Time(sec=sec, nanosec=min(int(round((t - sec) * 1e9)), 999_999_999))


def image_from_msg(msg) -> np.ndarray:
    """sensor_msgs/Image -> HxWx3 RGB or HxW grey uint8 (a copy)."""
    try:
        return decode_raw(msg)
    except UnsupportedEncoding as exc:
        raise InputError(f"unsupported image encoding '{exc.encoding}' (supported: "
                         f"{', '.join(ENCODINGS)}, or image_transport:=compressed)") from None
    except ImageError as exc:
        raise InputError(str(exc)) from None


def image_from_compressed(msg) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg/png) -> HxWx3 RGB or HxW grey uint8."""
    try:
        return decode_compressed(msg)
    except ImageError as exc:
        raise InputError(str(exc)) from None


def depth_from_msg(msg) -> np.ndarray:
    """A depth sensor_msgs/Image -> HxW float32 metres, 0 where invalid (``images.decode_depth``)."""
    try:
        return decode_depth(msg)
    except ImageError as exc:
        raise InputError(str(exc)) from None


def pose_to_msg(map_from_cam: np.ndarray) -> Pose:
    t, q = quat_from_pose(map_from_cam)
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in t)
    (pose.orientation.x, pose.orientation.y, pose.orientation.z,
     pose.orientation.w) = (float(v) for v in q)
    return pose


def pose_with_covariance_msg(header: Header, a_from_b: np.ndarray,
                             covariance: np.ndarray) -> PoseWithCovarianceStamped:
    """A PoseWithCovarianceStamped of a 4x4 pose and its 6x6 covariance (row-major)."""
    msg = PoseWithCovarianceStamped(header=header)
    msg.pose.pose = pose_to_msg(a_from_b)
    msg.pose.covariance = [float(c) for c in np.asarray(covariance, np.float64).reshape(36)]
    return msg


def pose_from_msg(pose: Pose) -> np.ndarray:
    """geometry_msgs/Pose -> 4x4; InputError for NaN/inf or a quaternion that is not unit."""
    t = np.array([pose.position.x, pose.position.y, pose.position.z])
    q = np.array([pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w])
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(t))):
        raise InputError("pose contains NaN or inf")
    if abs(np.linalg.norm(q) - 1) > 1e-2:
        raise InputError(f"pose quaternion has norm {np.linalg.norm(q):.3g}, expected 1")
    return pose_from_quat(t, q)
