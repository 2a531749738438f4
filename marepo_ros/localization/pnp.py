"""PnP from 2D-3D matches on a CPU: poselib's P3P + LO-RANSAC + non-linear refinement.

poselib (BSD) does the whole job in C++; only the camera model is adapted here: a K with skew
is handled by re-expressing the pixels in an equivalent skew-free pinhole camera.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import poselib
import torch

from ..geometry import invert_pose, make_pose, pixel_rays, transform_points
from .estimate import Estimate, check_correspondences
from .ransac import map_frame_covariance


@dataclass
class PnPResult:
    """map_from_cam: 4x4 float64; inliers_N: bool (N,); covariance: 6x6 (see ``Estimate``)."""
    map_from_cam: np.ndarray
    inliers_N: np.ndarray
    covariance: np.ndarray


def _centred(pixels_N2: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, dict]:
    """Pixels re-expressed in an equivalent skew-free camera centred at (0, 0), and that
    camera for poselib."""
    K = np.asarray(K, np.float64)
    f = (K[0, 0] + K[1, 1]) / 2
    uv = pixel_rays(K, np.asarray(pixels_N2, np.float64))[:, :2] * f
    return uv, {"model": "SIMPLE_PINHOLE", "width": 0, "height": 0, "params": [f, 0.0, 0.0]}


def _result(pose, points_N3: np.ndarray, pixels_N2: np.ndarray, K: np.ndarray,
            inliers_N: np.ndarray) -> PnPResult:
    R, t = np.array(pose.R), np.array(pose.t)
    X = torch.from_numpy(np.asarray(points_N3, np.float64)[inliers_N])
    x = torch.from_numpy(np.asarray(pixels_N2, np.float64)[inliers_N])
    covariance = map_frame_covariance(torch.from_numpy(R), torch.from_numpy(t), X, x,
                                      torch.from_numpy(np.asarray(K, np.float64)))
    return PnPResult(invert_pose(make_pose(R, t)), inliers_N, covariance)


def _poselib_pose(map_from_cam: np.ndarray):
    cam_from_map = invert_pose(map_from_cam)
    pose = poselib.CameraPose()
    pose.R, pose.t = cam_from_map[:3, :3], cam_from_map[:3, 3]
    return pose


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
    uv, camera = _centred(pixels_N2, K)
    ransac = {"max_reproj_error": float(threshold_px), "min_iterations": min_iterations,
              "max_iterations": max_iterations, "seed": seed}
    initial = None if initial_map_from_cam is None else _poselib_pose(initial_map_from_cam)
    pose, info = poselib.estimate_absolute_pose(uv, np.asarray(points_N3, np.float64), camera,
                                                ransac, {"loss_scale": float(threshold_px) / 2},
                                                initial)
    inliers = np.asarray(info.get("inliers", []), bool)
    if len(inliers) != len(points_N3) or inliers.sum() < 4:
        return None
    return _result(pose, points_N3, pixels_N2, K, inliers)


def refine_pnp(points_N3: np.ndarray, pixels_N2: np.ndarray, K: np.ndarray,
               map_from_cam: np.ndarray, *, threshold_px: float = 6.0) -> PnPResult | None:
    """``map_from_cam`` refined on the correspondences that reproject within ``threshold_px``
    under it (poselib's non-linear refinement, Cauchy loss); None with fewer than 4."""
    uv, camera = _centred(pixels_N2, K)
    X = np.asarray(points_N3, np.float64)
    cam = transform_points(invert_pose(map_from_cam), X)
    z = np.where(cam[:, 2] > 1e-9, cam[:, 2], np.nan)
    proj = camera["params"][0] * cam[:, :2] / z[:, None]
    inliers = np.nan_to_num(np.linalg.norm(proj - uv, axis=1), nan=np.inf) < threshold_px
    if inliers.sum() < 4:
        return None
    pose, _ = poselib.refine_absolute_pose(uv[inliers], X[inliers], _poselib_pose(map_from_cam),
                                           camera, {"loss_type": "CAUCHY",
                                                    "loss_scale": float(threshold_px) / 2})
    return _result(pose, points_N3, pixels_N2, K, inliers)


class PoselibRansacEstimator:
    """``ransac`` on a CPU: the head's scene coordinates solved by poselib's P3P + LO-RANSAC +
    refinement (C++), where the batched torch RANSAC (``RansacEstimator``, for GPUs) would
    draw its 64 hypotheses in Python-driven tensor code. Same inputs and confidence
    (inlier ratio x min(1, inliers / min_inliers)) as ``RansacEstimator``."""
    name = "ransac"

    def __init__(self, *, inlier_threshold_px: float = 10.0, min_inliers: int = 100,
                 max_iterations: int = 10_000, seed: int = 0):
        self.inlier_threshold_px, self.min_inliers = float(inlier_threshold_px), max(int(min_inliers), 1)
        self.max_iterations, self.seed = max_iterations, seed

    def estimate(self, coords_N3: torch.Tensor, pixels_N2: torch.Tensor, K: np.ndarray) -> Estimate | None:
        n_total = check_correspondences(coords_N3, pixels_N2, K)
        X = coords_N3.detach().cpu().double().numpy()
        x = pixels_N2.detach().cpu().double().numpy()
        finite = np.isfinite(X).all(1) & np.isfinite(x).all(1)
        t0 = time.perf_counter()
        result = solve_pnp(X[finite], x[finite], K, threshold_px=self.inlier_threshold_px,
                           max_iterations=self.max_iterations, seed=self.seed)
        if result is None:
            return None
        n = int(result.inliers_N.sum())
        ratio = n / n_total
        return Estimate(map_from_cam=result.map_from_cam, covariance=result.covariance,
                        n_inliers=n, inlier_ratio=ratio,
                        confidence=ratio * min(1.0, n / self.min_inliers),
                        timings_ms={"pnp": 1e3 * (time.perf_counter() - t0)})
