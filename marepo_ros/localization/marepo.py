"""Pose estimators built on a pose regressor: ``marepo`` / ``marepo+refine`` (marepo's pose
regression) and ``grr`` / ``grr+refine`` (GRLoc's rays solved in closed form).

``marepo`` / ``grr``: one forward pass of the regressor (no hypotheses, no sampling).
``...+refine``: the regressed pose refined by reprojection-error minimisation on the
coordinates that agree with it: a few rounds of ``ransac.refine_on_inliers`` with an inlier
threshold shrinking from ``initial_threshold_px`` to ``inlier_threshold_px``, at which it runs
to convergence as ``ransac``'s final refinement does (with 3 rounds there instead, 64.0 instead
of 73.6 % of redkitchen queries within 5 cm/5°, every other one, grr of 4000 steps; ransac 76.8).

The ``marepo`` regressor is the map's own (marepo_S, ``SceneMap.extras["regressor"]``) when the
map has one, else the shipped scene-agnostic one; ``grr`` uses the shipped one.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from ..geometry import invert_pose, make_pose
from ..io.mapfile import SceneMap
from ..models.regressor import PoseRegressor, regress_pose
from ..models.regressor_file import load_regressor, regressor_from_dict
from .estimate import Estimate, check_correspondences
from .ransac import map_frame_covariance, refine_on_inliers, reprojection_errors

MIN_FIT_POINTS = 6  # fewer inliers than this: the pose is not refined / no covariance fitted
MAX_CONDITION = 1e3  # grr: a translation system worse conditioned than this is a degenerate view
# A regressed pose (refined or not) that fewer than this fraction of the coordinates agree with
# gets confidence 0: refinement from 20-45 cm away can settle where a few coordinates agree. On
# redkitchen (250 queries, every other one checked) the wrong poses (> 50 cm or 10°) had
# 0.1-18 % support, the right ones (< 5 cm/5°) 31 % and more (10th percentile).
MIN_SUPPORT = 0.2


def regressor_for_map(scene_map: SceneMap | None, device: str | torch.device = "cpu",
                      kind: str = "marepo") -> PoseRegressor:
    """The map's fine-tuned regressor (marepo_S) when it carries one of ``kind``, else the
    shipped one of ``kind``."""
    stored = scene_map.extras.get("regressor") if scene_map is not None else None
    if stored is not None and stored.get("kind", "marepo") == kind:
        return regressor_from_dict(stored).to(device)
    return load_regressor(device=device, kind=kind)


class MarepoEstimator:
    """Map-relative pose regression (``PoseEstimator`` named after the regressor's kind,
    ``"marepo"`` or ``"grr"``, with ``"+refine"`` when refined).

    Options (keyword-only):
        regressor: the PoseRegressor or GeometryRegressor (see ``regressor_for_map``).
        refine: refine the regressed pose on the coordinates that agree with it.
        inlier_threshold_px: reprojection error (pixels) below which a coordinate agrees with a
            pose: counts n_inliers, and is the last refinement threshold.
        initial_threshold_px: the first refinement threshold (pixels); the thresholds halve
            from it down to ``inlier_threshold_px``, a few LM rounds each.
        rounds_per_threshold: selection + LM rounds per threshold but the last.
        final_rounds: at most this many rounds at the last threshold (stops when the inlier set
            repeats), as ``ransac``'s final refinement.
        min_inliers: inlier count from which the confidence equals the inlier ratio.
        max_reprojection_error: errors are clamped at this (pixels).
        prior_sigma: (metres, radians) per-axis standard deviation of the regressed pose, used
            as its covariance when it is not refined (default: the regressor's held-out error
            statistics stored with its weights).
        min_support: inlier ratio below which the estimate gets confidence 0 (``MIN_SUPPORT``).

    ``estimate`` returns an ``Estimate`` with:
        map_from_cam: 4x4 float64 camera-to-map pose.
        covariance: 6x6 over (x, y, z, rot_x, rot_y, rot_z) in the map frame (metres^2, rad^2).
            Refined: sigma^2 (J^T J)^-1 of the final fit on its inliers, as ``RansacEstimator``.
            Regression only: diag(prior_sigma^2), the regressor's typical error.
        n_inliers: coordinates reprojecting within ``inlier_threshold_px`` of the final pose.
        inlier_ratio: n_inliers / N over all N input correspondences.
        confidence: inlier_ratio * min(1, n_inliers / min_inliers), in [0, 1]; 0 when a grr
            regressor's translation system is degenerate (condition number > MAX_CONDITION:
            nearly parallel rays) or when inlier_ratio < ``min_support``.
        timings_ms: "regress" and, refined, "refine" (milliseconds).
    """

    def __init__(self, *, regressor: PoseRegressor, refine: bool = False,
                 inlier_threshold_px: float = 10.0, initial_threshold_px: float | None = None,
                 rounds_per_threshold: int = 3, final_rounds: int = 100, min_inliers: int = 100,
                 max_reprojection_error: float = 100.0,
                 prior_sigma: tuple[float, float] | None = None,
                 min_support: float = MIN_SUPPORT):
        if not 0 < inlier_threshold_px <= max_reprojection_error:
            raise ValueError("need 0 < inlier_threshold_px <= max_reprojection_error")
        self.name = regressor.kind + ("+refine" if refine else "")
        self.regressor = regressor.eval()
        self.refine = refine
        self.inlier_threshold_px = float(inlier_threshold_px)
        self.max_reprojection_error = float(max_reprojection_error)
        self.initial_threshold_px = min(float(initial_threshold_px or 8 * inlier_threshold_px),
                                        self.max_reprojection_error)
        self.rounds_per_threshold, self.final_rounds = rounds_per_threshold, final_rounds
        self.min_inliers = max(int(min_inliers), 1)
        self.prior_sigma = tuple(prior_sigma or regressor.error_sigma)
        self.min_support = float(min_support)

    def thresholds(self) -> list[float]:
        """The refinement thresholds (pixels), halving down to ``inlier_threshold_px``."""
        out, thr = [], self.initial_threshold_px
        while thr > self.inlier_threshold_px:
            out.append(thr)
            thr /= 2
        return out + [self.inlier_threshold_px]

    def estimate(self, coords_N3: torch.Tensor, pixels_N2: torch.Tensor,
                 K: np.ndarray) -> Estimate | None:
        """Pose from (N, 3) map-frame scene coordinates and their (N, 2) pixels; see class doc."""
        n_total = check_correspondences(coords_N3, pixels_N2, K)
        pixels_N2 = pixels_N2.to(coords_N3.device)
        finite = torch.isfinite(coords_N3).all(1) & torch.isfinite(pixels_N2).all(1)
        if int(finite.sum()) < 4:
            return None
        t0 = time.perf_counter()
        map_from_cam, condition = regress_pose(self.regressor, coords_N3[finite],
                                               pixels_N2[finite], K)
        timings = {"regress": 1e3 * (time.perf_counter() - t0)}

        X, x = coords_N3[finite].double().cpu(), pixels_N2[finite].double().cpu()
        K64 = torch.as_tensor(np.asarray(K, dtype=np.float64))
        cam_from_map = invert_pose(map_from_cam)
        R, t = torch.from_numpy(cam_from_map[:3, :3]), torch.from_numpy(cam_from_map[:3, 3])
        cov = np.diag([self.prior_sigma[0] ** 2] * 3 + [self.prior_sigma[1] ** 2] * 3)
        if self.refine:
            t0 = time.perf_counter()
            thresholds = self.thresholds()
            for i, thr in enumerate(thresholds):
                agree = self._inliers(R, t, X, x, K64, thr)
                if int(agree.sum()) < MIN_FIT_POINTS:
                    break
                R, t, _ = refine_on_inliers(R, t, X, x, K64, threshold_px=thr,
                                            max_error_px=self.max_reprojection_error,
                                            max_rounds=self.final_rounds if i == len(thresholds) - 1
                                            else self.rounds_per_threshold)
            map_from_cam = invert_pose(make_pose(R.numpy(), t.numpy()))
            timings["refine"] = 1e3 * (time.perf_counter() - t0)
        inliers = self._inliers(R, t, X, x, K64, self.inlier_threshold_px)
        n_inliers = int(inliers.sum())
        if self.refine and n_inliers >= MIN_FIT_POINTS:
            cov = map_frame_covariance(R, t, X[inliers], x[inliers], K64)
        ratio = n_inliers / n_total
        trusted = condition <= MAX_CONDITION and ratio >= self.min_support
        confidence = ratio * min(1.0, n_inliers / self.min_inliers) if trusted else 0.0
        return Estimate(map_from_cam=map_from_cam, covariance=cov, n_inliers=n_inliers,
                        inlier_ratio=ratio, confidence=confidence, timings_ms=timings)

    def _inliers(self, R, t, X, x, K, threshold_px: float) -> torch.Tensor:
        """(N,) bool: points reprojecting within ``threshold_px`` under cam_from_map (R, t)."""
        return reprojection_errors(R[None], t[None], X, x, K, self.max_reprojection_error)[0] \
            < threshold_px
