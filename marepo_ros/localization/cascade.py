"""The ``cascade`` estimator: the keyframes first, the scene-coordinate head only when they are
not certain.

``points`` (XFeat keypoints, retrieval, PnP) localizes most frames of a mapped scene with many
inliers; a pose it gives with ``certain_inliers`` or more, and no rival (``points``'
verification), is taken as it is. Any other frame (fewer inliers, ambiguous, or no pose) is handed to ``hybrid``'s check: the head, on an independent
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

from .estimate import Estimate
from .hybrid import HybridEstimator

# A points pose with this many PnP inliers (and no rival) is taken without the head. Fitted by
# benchmarks/fit_cascade.py on the suite's "fit" rows only (contiguous-b, rendered rooms,
# corridor): the most inliers of an unambiguous points pose outside 10 cm/5° there was 114 (on
# contiguous-b), times a margin of 1.5.
CERTAIN_INLIERS = 173


class CascadeEstimator:
    """``points`` first, ``hybrid``'s check on the head when points is not certain.

    hybrid: a ``HybridEstimator`` (its ``points`` is the keyframe estimator, its ``scr`` the
    head's RANSAC); certain_inliers: a points pose with at least this many inliers is final.

    ``localize(image, K, head)``: image HxWx3 RGB or HxW grey uint8 (pinhole), K 3x3, head a
    callable returning the head's ``SceneCoordinates`` of this image (run only when needed).
    Returns an Estimate or None (the Pipeline's ``timings_ms`` has the head's stages only when
    it ran).
    """
    name = "cascade"

    def __init__(self, hybrid: HybridEstimator, *, certain_inliers: int = CERTAIN_INLIERS):
        self.hybrid, self.points = hybrid, hybrid.points
        self.certain_inliers = int(certain_inliers)

    def localize(self, image: np.ndarray, K: np.ndarray, head: Callable) -> Estimate | None:
        K = np.asarray(K, np.float64)
        t0 = time.perf_counter()
        features = self.points.features(image)
        t1 = time.perf_counter()
        timings = {"extraction": 1e3 * (t1 - t0)}
        retrieved = self.points.estimate_features(features, K, self.points.candidates(features), {})
        timings["features"] = 1e3 * (time.perf_counter() - t1)
        if (retrieved is not None and retrieved.n_inliers >= self.certain_inliers
                and retrieved.confidence > 0):           # not ambiguous (points' rival check)
            retrieved.timings_ms = {**timings, "total": 1e3 * (time.perf_counter() - t0)}
            return retrieved
        view = head()
        est = self.hybrid.estimate(view.coords_N3, view.pixels_N2, view.K_small, image=image, K=K,
                                   features=features, retrieved=retrieved)
        if est is not None:
            est.timings_ms = {**timings, **est.timings_ms, "total": 1e3 * (time.perf_counter() - t0)}
        return est
