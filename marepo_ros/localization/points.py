"""The ``points`` estimator: retrieval, 2D-3D matching against the keyframe feature map, PnP.

No trained head is needed: a map's feature map alone localizes (so the node can localize right
after mapping while the head still trains).
"""
from __future__ import annotations

import time

import numpy as np

from ..geometry import pose_error
from ..io.feature_map import FeatureMap, dequantize
from ..models.preprocess import to_grey
from ..models.threads import cpu_threads
from ..models.xfeat import ImageFeatures, XFeatExtractor
from .estimate import Estimate
from .matching import match_points
from .pnp import solve_pnp
from .retrieval import covisible_groups, top_k, vlad


# A pose of another covisibility group, or of the matches the chosen pose leaves out, this far
# from the chosen one is a rival (a wrong pose's distance, evaluation.metrics.WRONG).
AMBIGUOUS_M, AMBIGUOUS_DEG = 0.5, 10.0
# A rival with this share of the pose's inliers makes the place ambiguous: no pose (confidence
# 0). Half the support, chosen a priori; on the suite's rendered rooms (fit rows) the poses one
# texture period off had rivals of 0.57-0.92, correct ones up to 0.36 (docs/results.md).
AMBIGUOUS_SHARE = 0.5
# RANSAC rounds of a rival search: a rival holding a fifth of the matches it is searched among
# is found with probability 1 - (1 - 0.2^3)^1000 > 0.999; on matches with no rival poselib
# would otherwise run to its 10 000 rounds.
RIVAL_ITERATIONS = 1000


def inlier_confidence(n_inliers: int, min_inliers: int) -> float:
    """1 - exp(-(n - min) / 30), 0 below ``min_inliers``: ~0.5 at 20 inliers over the minimum."""
    return float(1.0 - np.exp(-(n_inliers - min_inliers) / 30.0)) if n_inliers >= min_inliers else 0.0


def rival_inliers(points_N3: np.ndarray, pixels_N2: np.ndarray, K: np.ndarray,
                  map_from_cam: np.ndarray, subsets: list[np.ndarray], *, min_inliers: int,
                  threshold_px: float) -> int:
    """Inliers of the best rival of the pose ``map_from_cam`` (4x4): each subset (N,) bool of
    the matches (map points (N, 3) metres, pixels (N, 2)) is solved on its own, and a pose with
    at least ``min_inliers`` inliers more than ``AMBIGUOUS_M`` or ``AMBIGUOUS_DEG`` away is a
    rival; 0 when there is none."""
    best = 0
    for sel in subsets:
        if sel.sum() < min_inliers:
            continue
        other = solve_pnp(points_N3[sel], pixels_N2[sel], K, threshold_px=threshold_px,
                          max_iterations=RIVAL_ITERATIONS)
        if other is None or other.inliers_N.sum() < min_inliers:
            continue
        moved, turned = pose_error(other.map_from_cam, map_from_cam)
        if moved > AMBIGUOUS_M or turned > AMBIGUOUS_DEG:
            best = max(best, int(other.inliers_N.sum()))
    return best


class PointsEstimator:
    """Pose of an image from its XFeat features and the map's keyframe feature map.

    retrieve, max_retrieve, min_points: keyframes retrieved by global descriptor whose points
    are matched: ``retrieve``, or more until they hold ``min_points`` points;
    top_k: query keypoints; None: 768 against maps whose points mostly come from depth, 1024
    against triangulated ones (sparser: with 768, 86.0 instead of 94.0 % within 5 cm/5° on
    redkitchen without depth; with depth 99.2 % either way, 10 ms faster);
    short_side: the query is shrunk to this short side (pixels) before extraction when larger
    (keypoints are mapped back to its pixels); None: the short side the
    feature map's keyframes were extracted at (XFeat's descriptors are not scale-invariant:
    the query at 360 px against keyframes at 480 px lost 12 points within 5 cm/5° on
    redkitchen without depth), 480 for maps that do not record it;
    ratio: ratio test on distinct 3D locations (``matching.match_points``);
    threshold_px: PnP inlier threshold at the query's resolution; min_inliers: fewer inliers
    give confidence 0 (the node does not publish them): on the demo room every wrong pose
    (> 50 cm or 10°) had 14-16 inliers, correct ones 20 and more; at 20, 0 of 20 published
    poses were wrong there (4 of 29 at 12), and redkitchen kept all 250; threads: torch CPU threads for a query (``models.threads.cpu_threads``;
    None: torch's setting).

    Verification beyond counting inliers: two good poses far apart make an ambiguous place.
    Rivals come from (1) hloc's covisibility clustering: the retrieved keyframes are grouped by
    where they look from (``covisible_groups``), and a group other than the pose's own with at
    least ``min_inliers`` matches is solved on its own; (2) the matches the pose leaves out,
    solved again (sequential RANSAC: a repeated texture or structure matches one period away,
    and the true place then hides among the outliers). A rival pose away from the chosen one
    (> ``AMBIGUOUS_M`` or ``AMBIGUOUS_DEG``) with at least ``min_inliers`` inliers counts:
    ``evidence["runner_up"]`` is its inliers over the pose's (0 without one), a cue of the
    calibrated confidence, and from ``AMBIGUOUS_SHARE`` on the pose gets confidence 0.
    """
    name = "points"

    def __init__(self, feature_map: FeatureMap, extractor: XFeatExtractor, *, retrieve: int = 3,
                 max_retrieve: int = 20, min_points: int = 4000, top_k: int | None = None,
                 short_side: int | None = None, ratio: float = 0.8,
                 threshold_px: float = 6.0, min_inliers: int = 20, threads: int | None = 1):
        if extractor.identity != feature_map.extractor_id:
            raise ValueError(f"the feature map was built with {feature_map.extractor} "
                             f"{feature_map.extractor_id}, not {extractor.name} {extractor.identity}")
        self.feature_map, self.extractor = feature_map, extractor
        depth_share = feature_map.source_counts()["depth"] / max(feature_map.n_points, 1)
        self.top_k = top_k or (768 if depth_share >= 0.5 else 1024)
        self.retrieve, self.ratio = retrieve, ratio
        self.short_side = short_side or feature_map.short_side or 480
        self.max_retrieve, self.min_points = max_retrieve, min_points
        self.threshold_px, self.min_inliers = threshold_px, min_inliers
        self.threads = threads if extractor.device.type == "cpu" else None

    def candidates(self, features: ImageFeatures) -> np.ndarray:
        """Indices of the keyframes retrieved by global descriptor, best first (see
        ``enough``)."""
        fm = self.feature_map
        return self.enough(top_k(vlad(features.descriptors_ND, fm.vocabulary_CD), fm.global_KG,
                                 self.max_retrieve))

    def enough(self, ranked: np.ndarray) -> np.ndarray:
        """The first keyframes of ``ranked`` (best first): at least ``retrieve``, more (up to
        ``max_retrieve``) until they hold ``min_points`` points (sparse, triangulated maps)."""
        ranked = ranked[:self.max_retrieve]
        counts = np.cumsum(np.diff(self.feature_map.offsets_K1)[ranked])
        enough = int(np.searchsorted(counts, self.min_points)) + 1
        return ranked[:max(self.retrieve, enough)]

    def features(self, image: np.ndarray) -> ImageFeatures:
        """XFeat features of an HxWx3 RGB or HxW grey uint8 image (pixels of ``image``)."""
        return self.extractor.extract(to_grey(image), top_k=self.top_k, short_side=self.short_side)

    def match(self, features: ImageFeatures, keyframes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query keypoint indices, map point indices) of the matches to the keyframes' points."""
        fm = self.feature_map
        idx = np.concatenate([np.arange(fm.offsets_K1[k], fm.offsets_K1[k + 1]) for k in keyframes])
        # the retrieved keyframes' descriptors only: float32 copies of a whole map's would cost
        # 4x its int8 descriptors in memory (661 MB on the 16x site of benchmarks/scale.py)
        qi, mi = match_points(features.descriptors_ND, dequantize(fm.descriptors_PD[idx]),
                              fm.points_P3[idx], ratio=self.ratio)
        return qi, idx[mi]

    def estimate_features(self, features: ImageFeatures, K: np.ndarray, keyframes: np.ndarray,
                          timings_ms: dict[str, float]) -> Estimate | None:
        """Match ``features`` (pixels of the image with intrinsics K) to the points of
        ``keyframes`` and solve; None when too few matches or no pose."""
        fm = self.feature_map
        t0 = time.perf_counter()
        qi, mi = self.match(features, keyframes)
        t1 = time.perf_counter()
        timings_ms["matching"] = 1e3 * (t1 - t0)
        if len(qi) < 4:
            return None
        result = solve_pnp(fm.points_P3[mi], features.keypoints_N2[qi], K,
                           threshold_px=self.threshold_px)
        timings_ms["pnp"] = 1e3 * (time.perf_counter() - t1)
        if result is None:
            return None
        n = int(result.inliers_N.sum())
        inliers = (fm.points_P3[mi][result.inliers_N].astype(np.float64),
                   features.keypoints_N2[qi][result.inliers_N].astype(np.float64))
        t2 = time.perf_counter()
        runner_up = self._rival(features, K, keyframes, qi, mi, result) / max(n, 1)
        timings_ms["verification"] = 1e3 * (time.perf_counter() - t2)
        confidence = 0.0 if runner_up >= AMBIGUOUS_SHARE else inlier_confidence(n, self.min_inliers)
        return Estimate(map_from_cam=result.map_from_cam, covariance=result.covariance,
                        n_inliers=n, inlier_ratio=n / len(qi), confidence=confidence,
                        timings_ms=timings_ms, inliers=inliers, evidence={"runner_up": runner_up})

    def _rival(self, features: ImageFeatures, K: np.ndarray, keyframes: np.ndarray,
               qi: np.ndarray, mi: np.ndarray, result) -> int:
        """Inliers of the best rival pose (see the class docstring): from another covisibility
        group of ``keyframes`` on its own matches, or from the matches ``result`` leaves out;
        0 when there is none."""
        fm = self.feature_map
        subsets = [~result.inliers_N]                       # what the pose leaves out
        groups = covisible_groups(fm.map_from_cam_K44[keyframes])
        if groups.max() > 0:
            kf_of_match = np.searchsorted(fm.offsets_K1, mi, side="right") - 1
            order = np.argsort(keyframes)
            group_of_match = groups[order[np.searchsorted(keyframes[order], kf_of_match)]]
            own = np.bincount(group_of_match[result.inliers_N], minlength=groups.max() + 1).argmax()
            subsets += [group_of_match == g for g in range(groups.max() + 1) if g != own]
        return rival_inliers(fm.points_P3[mi], features.keypoints_N2[qi], K, result.map_from_cam,
                             subsets, min_inliers=self.min_inliers, threshold_px=self.threshold_px)

    def localize(self, image: np.ndarray, K: np.ndarray) -> Estimate | None:
        """HxWx3 RGB or HxW grey uint8 pinhole image with its 3x3 K -> Estimate (None: no
        pose)."""
        with cpu_threads(self.threads):
            return self._localize(image, K)

    def _localize(self, image: np.ndarray, K: np.ndarray) -> Estimate | None:
        t0 = time.perf_counter()
        features = self.features(image)
        t1 = time.perf_counter()
        keyframes = self.candidates(features)
        timings = {"extraction": 1e3 * (t1 - t0), "retrieval": 1e3 * (time.perf_counter() - t1)}
        est = self.estimate_features(features, np.asarray(K, np.float64), keyframes, timings)
        if est is not None:
            est.timings_ms["total"] = 1e3 * (time.perf_counter() - t0)
        return est
