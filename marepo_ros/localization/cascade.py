"""The ``cascade`` estimator: the keyframes first, the scene-coordinate head only when they are
not certain.

``points`` (XFeat keypoints, retrieval, PnP) localizes most frames of a mapped scene with many
inliers; a pose it is certain of (its calibrated probability at least ``certain_probability``,
and no rival: ``points``' verification) is taken as it is. Any other frame (fewer inliers, ambiguous, or no pose) is handed to ``hybrid``'s check: the head, on an independent
network (the ACE-format encoder), gives its own pose; the keyframes near it are matched with
the features already extracted; the two are decided as ``hybrid`` decides (agree: refined on
both; disagree: the better-supported one, less confident; one alone: half as confident). So
the second network runs only where the first is unsure, at about ``points``' cost on frames it
is sure of.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from ..models.threads import cpu_threads
from .calibration import ConfidenceModel
from .estimate import Estimate
from .hybrid import HybridEstimator

# A points pose is certain (taken without the head) when points' calibrated P(within 10 cm/5°)
# (localization/confidence.json) is at least CERTAIN_PROBABILITY: 0.9, chosen a priori; on the
# suite's fit rows (contiguous-b, rendered rooms, corridor) no unambiguous points pose at 0.61 or
# more was outside 10 cm/5° (benchmarks/fit_cascade.py). Without a model for points, a pose
# with CERTAIN_INLIERS PnP inliers is certain (the most inliers of such a pose on the fit rows
# was 114, x 1.5).
CERTAIN_PROBABILITY = 0.9
CERTAIN_INLIERS = 173


class CascadeEstimator:
    """``points`` first, ``hybrid``'s check on the head when points is not certain.

    hybrid: a ``HybridEstimator`` (its ``points`` is the keyframe estimator, its ``scr`` the
    head's RANSAC); model: the calibrated-confidence model (None: none); certain_probability: a
    points pose whose calibrated probability is at least this is final (with a model for
    points); certain_inliers: else, one with at least this many inliers.

    ``localize(image, K, head)``: image HxWx3 RGB or HxW grey uint8 (pinhole), K 3x3, head a
    callable returning the head's ``SceneCoordinates`` of this image (run only when needed).
    Returns an Estimate or None (the Pipeline's ``timings_ms`` has the head's stages only when
    it ran).
    """
    name = "cascade"

    def __init__(self, hybrid: HybridEstimator, *, model: ConfidenceModel | None = None,
                 certain_probability: float = CERTAIN_PROBABILITY,
                 certain_inliers: int = CERTAIN_INLIERS):
        self.hybrid, self.points = hybrid, hybrid.points
        self.model = model if model is not None and "points" in model.weights else None
        self.certain_probability = float(certain_probability)
        self.certain_inliers = int(certain_inliers)

    def certain(self, est: Estimate) -> bool:
        """Whether points' pose is final: not ambiguous (confidence > 0) and probable enough."""
        if est.confidence <= 0:
            return False
        if self.model is not None:
            return self.model.probability("points", est) >= self.certain_probability
        return est.n_inliers >= self.certain_inliers

    def localize(self, image: np.ndarray, K: np.ndarray, head: Callable) -> Estimate | None:
        K = np.asarray(K, np.float64)
        t0 = time.perf_counter()
        with cpu_threads(self.points.threads):        # as ``points`` alone runs
            features = self.points.features(image)
            t1 = time.perf_counter()
            timings = {"extraction": 1e3 * (t1 - t0)}
            retrieved = self.points.estimate_features(features, K, self.points.candidates(features),
                                                      {})
        timings["features"] = 1e3 * (time.perf_counter() - t1)
        if retrieved is not None and self.certain(retrieved):
            retrieved.timings_ms = {**timings, "total": 1e3 * (time.perf_counter() - t0)}
            return retrieved
        view = head()
        est = self.hybrid.estimate(view.coords_N3, view.pixels_N2, view.K_small, image=image, K=K,
                                   features=features, retrieved=retrieved)
        if est is not None:
            est.timings_ms = {**timings, **est.timings_ms, "total": 1e3 * (time.perf_counter() - t0)}
        return est
