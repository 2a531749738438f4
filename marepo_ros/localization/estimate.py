"""What every pose estimator returns (``Estimate``) and the two shapes of estimator: on scene
coordinates (``PoseEstimator``) and on the image (``ImageEstimator``). Estimators import only
this module from the registry's side, so the registry (``registry``) can import them all."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from ..geometry import check_intrinsics

MIN_CONFIDENCE = 0.05   # the node publishes estimates from this confidence on (its default)


@dataclass
class Estimate:
    """One camera pose estimate.

    map_from_cam: 4x4 float64, camera-to-map (metres).
    covariance: 6x6 float64 over (x, y, z, rot_x, rot_y, rot_z) in the map frame, metres^2 and
        rad^2, as ``geometry_msgs/PoseWithCovariance`` orders it.
    n_inliers / inlier_ratio: support of the pose among the input correspondences.
    confidence: in [0, 1]; the node publishes only above its threshold.
    timings_ms: per-stage wall times in milliseconds.
    inliers: (map points (N, 3), pixels (N, 2)) the pose was fitted to, where an estimator
        keeps them (``points``, for ``hybrid``), else None.
    evidence: further cues of how sure the pose is, by name, where an estimator has them
        (``hybrid``, ``cascade``: "agreement" 1 when head and keyframes agree, 0.5 when one
        source alone gives the pose, 0 when they disagree and the better-supported one won).
    """
    map_from_cam: np.ndarray
    covariance: np.ndarray
    n_inliers: int
    inlier_ratio: float
    confidence: float
    timings_ms: dict[str, float] = field(default_factory=dict)
    inliers: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    evidence: dict[str, float] = field(default_factory=dict)

    def sigmas(self) -> tuple[float, float]:
        """(position, rotation) standard deviation: sqrt of the covariance's trace over the 3
        position axes (metres) and the 3 rotation axes (radians); inf when it is not finite."""
        cov = np.asarray(self.covariance, np.float64)
        if cov.shape != (6, 6) or not np.all(np.isfinite(cov)):
            return float("inf"), float("inf")
        return (float(np.sqrt(max(np.trace(cov[:3, :3]), 0.0))),
                float(np.sqrt(max(np.trace(cov[3:, 3:]), 0.0))))


class PoseEstimator(Protocol):
    """Camera pose from scene coordinates.

    ``estimate`` takes
        coords_N3: (N, 3) float tensor, predicted scene coordinates in the map frame (metres);
        pixels_N2: (N, 2) float tensor, the image positions (u, v) those coordinates belong to,
            in pixels of the image whose intrinsics are ``K``;
        K: (3, 3) float64 numpy intrinsics;
    and returns an ``Estimate`` (its pose may be poor: check ``confidence``), or None when no
    pose could be computed at all.
    """
    name: str

    def estimate(self, coords_N3: torch.Tensor, pixels_N2: torch.Tensor,
                 K: np.ndarray) -> Estimate | None: ...


def check_correspondences(coords_N3: torch.Tensor, pixels_N2: torch.Tensor, K: np.ndarray) -> int:
    """N, after checking the shapes of an estimator's inputs and K (ValueError saying why not)."""
    n = len(coords_N3)
    if coords_N3.shape != (n, 3) or pixels_N2.shape != (n, 2):
        raise ValueError(f"need coords (N, 3) and pixels (N, 2), got "
                         f"{tuple(coords_N3.shape)} and {tuple(pixels_N2.shape)}")
    if (problem := check_intrinsics(K)) is not None:
        raise ValueError(problem)
    return n


class ImageEstimator(Protocol):
    """Camera pose straight from an image (estimators that need no scene coordinates).

    ``localize`` takes an HxWx3 RGB or HxW grey uint8 pinhole image (the ``Pipeline`` undistorts
    a distorted one first) and its (3, 3) float64 K and returns an ``Estimate`` or None.
    """
    name: str

    def localize(self, image: np.ndarray, K: np.ndarray) -> Estimate | None: ...
