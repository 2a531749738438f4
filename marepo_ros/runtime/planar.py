"""Planar (2D) output for ground robots, nav2's ``two_d_mode`` as robot_localization has it:
a pose projected onto the plane perpendicular to the map's up axis, keeping x, y and yaw.
Poses are 4x4 float64 ``<to>_from_<from>`` (metres); covariances 6x6 over (x, y, z, rot_x,
rot_y, rot_z) in the map's axes, rotations as small angles about them (``Estimate.covariance``,
``geometry_msgs/PoseWithCovariance``).

The *level frame* is the map frame turned by the least rotation that makes its z the map's up
axis (same origin): a planar pose has z = 0, roll = pitch = 0 there. The up axis is a vector
the user gives, or the mean up axis of the mapping keyframes' bases (``map_up``)."""
from __future__ import annotations

import re

import numpy as np
from scipy.spatial.transform import Rotation

from ..geometry import invert_pose, make_pose

# Variance of z, roll and pitch of a planar pose (m^2, rad^2): fixed by the projection, so
# known, as robot_localization's two_d_mode sets them; not 0, so the matrix stays invertible.
FIXED_VARIANCE = 1e-9
PLANAR = [0, 1, 5]   # x, y, yaw: what a planar pose keeps
FIXED = [2, 3, 4]    # z, roll, pitch
# The keyframes' unit up vectors must agree this much (length of their mean, 1: all alike)
# for their mean to be taken as the map's up axis.
MIN_UP_AGREEMENT = 0.5
DEFAULT_UP = np.array([0.0, 0.0, 1.0])  # REP-103: z up
# Forward, left and up (columns) of a camera optical frame (x right, y down, z forward) in its
# own coordinates: the base axes when the base is the optical frame itself.
OPTICAL_BODY_AXES = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])


def parse_up(text: str) -> np.ndarray | None:
    """The ``map_up`` parameter: None for ``auto``, else the unit vector of ``"x y z"``
    (spaces or commas); ValueError for anything else (wrong count, not finite, zero)."""
    if text.strip() == "auto":
        return None
    try:
        v = np.array([float(x) for x in re.split(r"[\s,]+", text.strip())], np.float64)
    except ValueError:
        raise ValueError(f"map_up must be 'auto' or three numbers 'x y z' (got '{text}')") from None
    if v.shape != (3,) or not np.all(np.isfinite(v)) or np.linalg.norm(v) == 0:
        raise ValueError(f"map_up must be 'auto' or three finite numbers 'x y z', not all zero "
                         f"(got '{text}')")
    return v / np.linalg.norm(v)


def base_axes(base_from_cam: np.ndarray) -> np.ndarray:
    """3x3, columns forward, left, up of the base in its own coordinates: a REP-103 body frame
    (x forward, z up: the identity), or the camera's optical frame when ``base_from_cam`` is
    the identity (a hand-held camera: the base is the optical frame)."""
    return OPTICAL_BODY_AXES if np.allclose(base_from_cam, np.eye(4)) else np.eye(3)


def map_up(setting: str, map_from_cam_N44: np.ndarray | None,
           base_from_cam: np.ndarray) -> tuple[np.ndarray, str, bool]:
    """(the map's unit up axis (3,), a note saying where it came from, whether it is a fall-back)
    for the ``map_up`` parameter: the given vector; ``auto``: the mean up axis of the bases of
    the mapping keyframes (camera poses (N, 4, 4) through the mount), or +z (REP-103, the
    fall-back) when the map has no keyframes or they do not agree (MIN_UP_AGREEMENT)."""
    given = parse_up(setting)
    if given is not None:
        return given, "map_up parameter", False
    if map_from_cam_N44 is None or len(map_from_cam_N44) == 0:
        return DEFAULT_UP, "map_up auto: the map has no keyframe poses; +z assumed (set map_up)", True
    up_base = base_axes(base_from_cam)[:, 2]
    rotations = np.asarray(map_from_cam_N44, np.float64)[:, :3, :3] @ invert_pose(base_from_cam)[:3, :3]
    mean = (rotations @ up_base).mean(0)
    agreement = float(np.linalg.norm(mean))
    if agreement < MIN_UP_AGREEMENT:
        return DEFAULT_UP, (f"map_up auto: the {len(rotations)} keyframes' up axes disagree "
                            f"(agreement {agreement:.2f} < {MIN_UP_AGREEMENT}); +z assumed (set map_up)"), True
    return mean / agreement, (f"map_up auto: mean up axis of {len(rotations)} keyframes "
                              f"(agreement {agreement:.2f})"), False


def level_frame(up: np.ndarray) -> np.ndarray:
    """map_from_level (4x4, a rotation): the least rotation taking z to the unit ``up``."""
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(z, up)
    s, c = float(np.linalg.norm(axis)), float(np.dot(z, up))
    if s < 1e-12:  # up is +z or -z
        return np.eye(4) if c > 0 else make_pose(np.diag([1.0, -1.0, -1.0]), np.zeros(3))
    return make_pose(Rotation.from_rotvec(axis / s * np.arctan2(s, c)).as_matrix(), np.zeros(3))


def planar_pose(map_from_x: np.ndarray, map_from_level: np.ndarray,
                axes: np.ndarray = np.eye(3)) -> np.ndarray:
    """``map_from_x`` projected: in the level frame z = 0 and x's up axis vertical (``axes``:
    its forward, left, up as columns, see ``base_axes``), its yaw (of the forward axis, ZYX as
    tf2's getYaw) kept."""
    level_from_x = invert_pose(map_from_level) @ map_from_x
    body = level_from_x[:3, :3] @ axes
    yaw = np.arctan2(body[1, 0], body[0, 0])
    c, s = np.cos(yaw), np.sin(yaw)
    yawed = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return map_from_level @ make_pose(yawed @ axes.T, [level_from_x[0, 3], level_from_x[1, 3], 0.0])


def planar_covariance(covariance: np.ndarray, map_from_level: np.ndarray) -> np.ndarray:
    """The 6x6 covariance of a planar pose, in the map's axes: that of x, y, yaw in the level
    frame (with their correlations) kept, z, roll, pitch fixed (FIXED_VARIANCE, uncorrelated)."""
    R = map_from_level[:3, :3]
    to_level = np.kron(np.eye(2), R.T)  # block-diagonal (R^T, R^T): map axes -> level axes
    level = to_level @ np.asarray(covariance, np.float64) @ to_level.T
    out = np.zeros((6, 6))
    out[np.ix_(PLANAR, PLANAR)] = level[np.ix_(PLANAR, PLANAR)]
    out[FIXED, FIXED] = FIXED_VARIANCE
    return to_level.T @ out @ to_level
