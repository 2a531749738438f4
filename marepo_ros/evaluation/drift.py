"""Mapping poses as a drifting VIO/SLAM would give them, and the rigid alignment of a trajectory.

``drifted_poses``: along the path in capture order, a heading error (rotation about the map's up
axis) and a position bias (metres per metre travelled) each follow a random walk from zero at
the first frame; each step of the true path is rotated by the heading error and shifted by the
bias. The walks are scaled so that, at the end of the path, the bias alone accounts for
``drift_per_m`` of the distance travelled and the heading error is ``heading_deg_per_m`` times
it; the resulting drift (heading included) is what ``drift_summary`` reports.

``align_rigid``: the rotation and translation (no scale) that best map estimated positions onto
ground truth (Umeyama / Kabsch, as evo's ``--align``); ``align_poses``: the same for whole poses.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from ..geometry import make_pose


def path_length(map_from_cam_N44: np.ndarray) -> np.ndarray:
    """(N,) metres travelled from the first pose to each pose along the positions."""
    steps = np.linalg.norm(np.diff(np.asarray(map_from_cam_N44)[:, :3, 3], axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(steps)])


def drifted_poses(map_from_cam_N44: np.ndarray, up: np.ndarray, *, drift_per_m: float = 0.015,
                  heading_deg_per_m: float = 0.2, seed: int = 0) -> np.ndarray:
    """(N, 4, 4) poses drifting away from ``map_from_cam_N44`` (in capture order) about the unit
    ``up`` axis (3,) of the map, equal at the first pose (see the module docstring)."""
    T = np.asarray(map_from_cam_N44, np.float64)
    rng = np.random.default_rng(seed)
    s = path_length(T)
    step = np.diff(s)
    length = max(float(s[-1]), 1e-9)
    heading = np.concatenate([[0.0], np.cumsum(rng.normal(size=len(step)) * np.sqrt(step))])
    bias = np.concatenate([np.zeros((1, 3)),
                           np.cumsum(rng.normal(size=(len(step), 3)) * np.sqrt(step)[:, None], 0)])
    heading *= np.radians(heading_deg_per_m) * length / max(abs(heading[-1]), 1e-12)
    offset = np.concatenate([np.zeros((1, 3)), np.cumsum(bias[:-1] * step[:, None], 0)])
    offset *= drift_per_m * length / max(np.linalg.norm(offset[-1]), 1e-12)
    up = np.asarray(up, np.float64) / np.linalg.norm(up)
    turns = Rotation.from_rotvec(heading[:, None] * up[None])
    moves = np.diff(T[:, :3, 3], axis=0)
    positions = T[0, :3, 3] + np.concatenate(
        [np.zeros((1, 3)), np.cumsum(turns[:-1].apply(moves), 0)]) + offset
    return np.stack([make_pose(turns[i].as_matrix() @ T[i, :3, :3], positions[i])
                     for i in range(len(T))])


def drift_summary(drifted_N44: np.ndarray, truth_N44: np.ndarray) -> dict:
    """Position error of drifted poses: at the end and at most, in cm and as % of the path."""
    err = np.linalg.norm(np.asarray(drifted_N44)[:, :3, 3] - np.asarray(truth_N44)[:, :3, 3], axis=1)
    length = max(float(path_length(truth_N44)[-1]), 1e-9)
    return {"path_m": round(length, 2), "end_cm": round(100 * float(err[-1]), 1),
            "max_cm": round(100 * float(err.max()), 1),
            "end_percent": round(100 * float(err[-1]) / length, 2)}


def align_poses(estimated_N44: np.ndarray, truth_N44: np.ndarray, lever_m: float = 1.0) -> np.ndarray:
    """4x4 truth_from_estimated of whole poses: ``align_rigid`` of each pose's centre and of the
    points ``lever_m`` along its three axes, so that orientations count as well as positions
    (aligning the centres alone turned the redkitchen query trajectory of a drifted map by
    2.7-6.7 deg, more than its own orientation error, ~1 deg)."""
    E, G = np.asarray(estimated_N44, np.float64), np.asarray(truth_N44, np.float64)
    ends = lambda T: np.concatenate([T[:, :3, 3]] + [T[:, :3, 3] + lever_m * T[:, :3, i]
                                                      for i in range(3)])
    return align_rigid(ends(E), ends(G))


def align_rigid(estimated_N3: np.ndarray, truth_N3: np.ndarray) -> np.ndarray:
    """4x4 truth_from_estimated: the rotation and translation minimising the squared distances
    between the moved estimated positions (N, 3) and the true ones (N >= 3)."""
    a, b = np.asarray(estimated_N3, np.float64), np.asarray(truth_N3, np.float64)
    ma, mb = a.mean(0), b.mean(0)
    U, _, Vt = np.linalg.svd((b - mb).T @ (a - ma))
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    R = U @ D @ Vt
    return make_pose(R, mb - R @ ma)
