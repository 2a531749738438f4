"""The transforms a localizer publishes under REP-105, from a camera pose estimate. Poses are
4x4 float64 ``<to>_from_<from>`` (metres); ``cam`` is the camera optical frame.

    map_from_odom   the correction map → odom: with odometry's odom_from_cam at the image's
                    stamp, the odom frame placed so that the camera lands where the estimate
                    says (what AMCL publishes)
    map_from_base   without odometry: the robot base in the map, from the camera pose and the
                    camera's mounting on the base (base_from_cam)
    base_covariance the camera pose's covariance carried to the base (the lever arm)
"""
from __future__ import annotations

import numpy as np

from ..geometry import invert_pose


def map_from_odom(map_from_cam: np.ndarray, odom_from_cam: np.ndarray) -> np.ndarray:
    """map → odom such that map_from_odom @ odom_from_cam == map_from_cam."""
    return map_from_cam @ invert_pose(odom_from_cam)


def map_from_base(map_from_cam: np.ndarray, base_from_cam: np.ndarray) -> np.ndarray:
    """map → base such that map_from_base @ base_from_cam == map_from_cam."""
    return map_from_cam @ invert_pose(base_from_cam)


def odom_from_cam(odom_from_base: np.ndarray, base_from_cam: np.ndarray) -> np.ndarray:
    """The camera in the odom frame from odometry of the base (nav_msgs/Odometry, TF odom →
    base) and the camera's mounting."""
    return odom_from_base @ base_from_cam


def base_covariance(covariance: np.ndarray, map_from_cam: np.ndarray,
                    base_from_cam: np.ndarray) -> np.ndarray:
    """The 6x6 covariance of map_from_base from that of map_from_cam, both over (x, y, z,
    rot_x, rot_y, rot_z) in the map's axes with rotations as small angles about them (as
    ``Estimate.covariance``): the rotation error is the same; it also swings the base about the
    camera, so the base's position error gains -[a]x dtheta, a = base - camera position (map)."""
    a = map_from_base(map_from_cam, base_from_cam)[:3, 3] - map_from_cam[:3, 3]
    J = np.eye(6)
    J[:3, 3:] = -np.array([[0.0, -a[2], a[1]], [a[2], 0.0, -a[0]], [-a[1], a[0], 0.0]])
    return J @ np.asarray(covariance, np.float64) @ J.T
