"""The ``hybrid`` estimator: the scene-coordinate head and the keyframe feature map, each
checking the other.

1. The head's scene coordinates give a coarse pose (RANSAC).
2. The keyframes near that pose, even one of confidence 0 (``retrieval.nearest_keyframes``;
   no global retrieval) are matched with the query's XFeat features and solved by PnP
   (``points``). When the head gave no pose, or the two disagree, global retrieval gets one
   more try: the head may be wrong.
3. Two sources, one decision: when both poses agree (within ``agree_m`` / ``agree_deg``),
   the pose is refined on the feature inliers and the scene coordinates that agree with it,
   and its confidence is the higher of the two. When they disagree, the better-supported one
   wins and its confidence is scaled by (1 - the other's): a pose the other source strongly
   contradicts is not published. A pose from one source alone gets half its confidence (on the
   demo room the head alone published 4 wrong poses at confidence 0.06-0.10 before this). A
   frame neither source supports gets no pose.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from ..geometry import pose_error
from ..models.xfeat import ImageFeatures
from .estimate import Estimate, PoseEstimator, check_correspondences
from .pnp import refine_pnp
from .points import PointsEstimator
from .retrieval import nearest_keyframes

LONE_SOURCE = 0.5     # confidence factor of a pose only one of the two sources gives


def pixels_between(K_from: np.ndarray, K_to: np.ndarray, pixels_N2: np.ndarray) -> np.ndarray:
    """Pixels (N, 2) of an image with intrinsics K_from as pixels of the same camera's image
    with intrinsics K_to (e.g. the head's shrunk input back to the full image)."""
    uv1 = np.column_stack([pixels_N2, np.ones(len(pixels_N2))])
    out = uv1 @ (K_to @ np.linalg.inv(K_from)).T
    return out[:, :2] / out[:, 2:]


class HybridEstimator:
    """Pose from scene coordinates *and* the image (the ``Pipeline`` passes both: its table
    entries have inputs "both").

    scr: the pose estimator on scene coordinates (``ransac``); points: the ``points``
    estimator on the map's keyframe feature map; agree_m / agree_deg: two poses closer than
    both agree; joint: refine an agreed pose on both sources' inliers (else the feature pose
    stands); threshold_px: inlier threshold of the joint refinement (full-size image pixels);
    retry_globally: look for keyframes by global retrieval when the scene-coordinate pose finds
    no support near it (off: the ``+kf`` refinement of a regressor, which only looks near the
    regressed pose); name: what the estimator is called (``hybrid``, ``grr+kf``, ...).

    ``scr`` may be any estimator on scene coordinates: ``ransac`` (``hybrid``) or a pose
    regressor (``marepo+kf``, ``grr+kf``: GeLoc3r's refinement against database views in the
    form this map has, keyframes with 3D points).
    """
    def __init__(self, scr: PoseEstimator, points: PointsEstimator, *, agree_m: float = 0.10,
                 agree_deg: float = 5.0, joint: bool = True, threshold_px: float = 6.0,
                 retry_globally: bool = True, name: str = "hybrid"):
        self.scr, self.points = scr, points
        self.agree_m, self.agree_deg = agree_m, agree_deg
        self.joint, self.threshold_px = joint, threshold_px
        self.retry_globally, self.name = retry_globally, name

    def estimate(self, coords_N3: torch.Tensor, pixels_N2: torch.Tensor, K_small: np.ndarray, *,
                 image: np.ndarray, K: np.ndarray, features: ImageFeatures | None = None,
                 retrieved: Estimate | None = None) -> Estimate | None:
        """coords_N3 / pixels_N2 / K_small: the head's scene coordinates at pixels of the
        shrunk image with intrinsics K_small; image, K: the full pinhole image (HxWx3 RGB or HxW
        grey uint8) and its 3x3 intrinsics. ``features`` (the image's XFeat features) and
        ``retrieved`` (``points``' pose from global retrieval) when a caller has them already
        (``cascade``). Returns the decided Estimate or None."""
        check_correspondences(coords_N3, pixels_N2, K_small)
        K = np.asarray(K, np.float64)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        scr = self.scr.estimate(coords_N3, pixels_N2, K_small)
        t1 = time.perf_counter()
        timings["scr"] = 1e3 * (t1 - t0)
        prior = scr                      # any pose says where to look, supported or not
        scr = scr if scr is not None and scr.confidence > 0 else None
        if features is None:
            features = self.points.features(image)
            timings["extraction"] = 1e3 * (time.perf_counter() - t1)
        t2 = time.perf_counter()
        fm = self.points.feature_map
        feat = None
        if prior is not None:
            near = nearest_keyframes(fm.map_from_cam_K44, prior.map_from_cam, self.points.max_retrieve)
            feat = self.points.estimate_features(features, K, self.points.enough(near), {})
        if self.retry_globally and (feat is None or not self._agree(scr, feat)):  # globally
            again = retrieved or self.points.estimate_features(
                features, K, self.points.candidates(features), {})
            if again is not None and (feat is None or again.confidence > feat.confidence):
                feat = again
        timings["features"] = 1e3 * (time.perf_counter() - t2)
        est = self._decide(scr, feat, coords_N3, pixels_N2, K_small, K)
        if est is not None:
            est.timings_ms = {**timings, "total": 1e3 * (time.perf_counter() - t0)}
        return est

    def _agree(self, a: Estimate | None, b: Estimate | None) -> bool:
        if a is None or b is None:
            return False
        moved, turned = pose_error(a.map_from_cam, b.map_from_cam)
        return moved < self.agree_m and turned < self.agree_deg

    def _decide(self, scr: Estimate | None, feat: Estimate | None, coords_N3, pixels_N2, K_small,
                K) -> Estimate | None:
        feat = feat if feat is not None and feat.confidence > 0 else None
        if scr is None and feat is None:
            return None
        if self._agree(scr, feat):
            est = self._refine(feat, coords_N3, pixels_N2, K_small, K) if self.joint else feat
            est.confidence = max(scr.confidence, feat.confidence)
            est.evidence["agreement"] = 1.0
            return est
        if scr is None or feat is None:               # one source alone: half as sure
            est = scr or feat
            est.confidence *= LONE_SOURCE
            est.evidence["agreement"] = 0.5
            return est
        win, lose = (feat, scr) if feat.confidence >= scr.confidence else (scr, feat)
        win.confidence *= 1.0 - lose.confidence
        win.evidence["agreement"] = 0.0
        return win

    def _refine(self, feat: Estimate, coords_N3, pixels_N2, K_small, K) -> Estimate:
        """The feature pose refined on its own inliers plus the scene coordinates that
        reproject within ``threshold_px`` under it."""
        X_ft, x_ft = feat.inliers
        X_scr = coords_N3.detach().cpu().double().numpy()
        x_scr = pixels_between(np.asarray(K_small, np.float64), K,
                               pixels_N2.detach().cpu().double().numpy())
        ok = np.isfinite(X_scr).all(1)
        result = refine_pnp(np.concatenate([X_ft, X_scr[ok]]), np.concatenate([x_ft, x_scr[ok]]),
                            K, feat.map_from_cam, threshold_px=self.threshold_px)
        if result is None:
            return feat
        n = int(result.inliers_N.sum())
        return Estimate(map_from_cam=result.map_from_cam, covariance=result.covariance,
                        n_inliers=n, inlier_ratio=n / len(result.inliers_N),
                        confidence=feat.confidence, evidence=dict(feat.evidence))
