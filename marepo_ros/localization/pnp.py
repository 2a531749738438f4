"""PnP from 2D-3D matches on a CPU: poselib's P3P + LO-RANSAC + non-linear refinement.

poselib (BSD) does the whole job in C++; only the camera model is adapted here: a K with skew
is handled by re-expressing the pixels in an equivalent skew-free pinhole camera.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import poselib
import torch

from ..geometry import invert_pose, make_pose, pixel_rays
from .ransac import map_frame_covariance


@dataclass
class PnPResult:
    """map_from_cam: 4x4 float64; inliers_N: bool (N,); covariance: 6x6 (see ``Estimate``)."""
    map_from_cam: np.ndarray
    inliers_N: np.ndarray
    covariance: np.ndarray


def solve_pnp(points_N3: np.ndarray, pixels_N2: np.ndarray, K: np.ndarray, *,
              threshold_px: float = 6.0, min_iterations: int = 100,
              max_iterations: int = 10_000,
              initial_map_from_cam: np.ndarray | None = None, seed: int = 0) -> PnPResult | None:
    """Camera pose from N >= 4 map points (metres) seen at pixels of an image with intrinsics K.

    threshold_px: RANSAC inlier threshold in pixels; min/max_iterations: RANSAC bounds (poselib
    stops in between once a better model is unlikely; its own minimum of 1000 rounds cost 8 ms of
    the 11 ms a redkitchen query spent in PnP). Returns None when poselib finds no pose
    with at least 4 inliers.
    """
    if len(points_N3) < 4:
        return None
    K = np.asarray(K, np.float64)
    f = (K[0, 0] + K[1, 1]) / 2
    uv = pixel_rays(K, np.asarray(pixels_N2, np.float64))[:, :2] * f      # skew-free, centred
    camera = {"model": "SIMPLE_PINHOLE", "width": 0, "height": 0, "params": [f, 0.0, 0.0]}
    ransac = {"max_reproj_error": float(threshold_px), "min_iterations": min_iterations,
              "max_iterations": max_iterations,
              "seed": seed}
    initial = None
    if initial_map_from_cam is not None:
        cam_from_map = invert_pose(initial_map_from_cam)
        initial = poselib.CameraPose()
        initial.R, initial.t = cam_from_map[:3, :3], cam_from_map[:3, 3]
    pose, info = poselib.estimate_absolute_pose(uv, np.asarray(points_N3, np.float64), camera,
                                                ransac, {"loss_scale": float(threshold_px) / 2},
                                                initial)
    inliers = np.asarray(info.get("inliers", []), bool)
    if len(inliers) != len(points_N3) or inliers.sum() < 4:
        return None
    R, t = np.array(pose.R), np.array(pose.t)
    X = torch.from_numpy(np.asarray(points_N3, np.float64)[inliers])
    x = torch.from_numpy(np.asarray(pixels_N2, np.float64)[inliers])
    covariance = map_frame_covariance(torch.from_numpy(R), torch.from_numpy(t), X, x,
                                      torch.from_numpy(K))
    return PnPResult(invert_pose(make_pose(R, t)), inliers, covariance)
