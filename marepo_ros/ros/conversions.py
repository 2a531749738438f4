"""ROS message <-> numpy conversions (no cv_bridge needed). Errors are ``InputError`` with a
one-line reason that the node reports on status, diagnostics and the log."""
from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Pose

from ..geometry import pose_from_quat, quat_from_pose
from ..io.images import ENCODINGS, ImageError, UnsupportedEncoding, decode_compressed, decode_raw

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


DEPTH_ENCODINGS = {"16UC1": ("u2", 1e-3), "mono16": ("u2", 1e-3), "32FC1": ("f4", 1.0)}  # -> metres


def depth_from_msg(msg) -> np.ndarray:
    """A depth sensor_msgs/Image (16UC1 or mono16 in millimetres, as RealSense's
    aligned_depth_to_color; 32FC1 in metres) -> HxW float32 metres, 0 where invalid."""
    if msg.encoding not in DEPTH_ENCODINGS:
        raise InputError(f"unsupported depth encoding '{msg.encoding}' (supported: "
                         f"{', '.join(DEPTH_ENCODINGS)})")
    kind, to_metres = DEPTH_ENCODINGS[msg.encoding]
    dtype = np.dtype(kind).newbyteorder(">" if msg.is_bigendian else "<")
    h, w, step = msg.height, msg.width, msg.step
    if h == 0 or w == 0:
        raise InputError(f"empty depth image ({w}x{h})")
    if step < w * dtype.itemsize or len(msg.data) < h * step:
        raise InputError(f"depth data too short for {w}x{h} {msg.encoding} (step {step}, "
                         f"{len(msg.data)} bytes)")
    rows = np.frombuffer(bytes(msg.data[:h * step]), np.uint8).reshape(h, step)[:, :w * dtype.itemsize]
    depth = rows.copy().view(dtype).reshape(h, w).astype(np.float32) * np.float32(to_metres)
    depth[~np.isfinite(depth) | (depth < 0)] = 0.0
    return depth


def pose_to_msg(map_from_cam: np.ndarray) -> Pose:
    t, q = quat_from_pose(map_from_cam)
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in t)
    (pose.orientation.x, pose.orientation.y, pose.orientation.z,
     pose.orientation.w) = (float(v) for v in q)
    return pose


def pose_from_msg(pose: Pose) -> np.ndarray:
    """geometry_msgs/Pose -> 4x4; InputError for NaN/inf or a quaternion that is not unit."""
    t = np.array([pose.position.x, pose.position.y, pose.position.z])
    q = np.array([pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w])
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(t))):
        raise InputError("pose contains NaN or inf")
    if abs(np.linalg.norm(q) - 1) > 1e-2:
        raise InputError(f"pose quaternion has norm {np.linalg.norm(q):.3g}, expected 1")
    return pose_from_quat(t, q)
