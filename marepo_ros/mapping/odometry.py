"""Mapping poses from the images themselves where they have depth: frame-to-keyframe tracking.

For a stream with depth and no poses (`map build --no-poses`). Each image's XFeat keypoints are
matched to those of the last ``recent`` keyframes (mutual nearest neighbours, ratio test); the
keyframes' depth-lifted points make 2D-3D matches, and poselib's PnP RANSAC gives the image's
pose (``localization.pnp.solve_pnp``). When those keyframes do not hold it (a gap in the stream,
a fast turn), the ``retrieved`` keyframes most alike by VLAD are tried (a vocabulary learnt on
the first keyframe), so the tracking picks up again where the camera returns to a mapped place.
An image that moved ``min_translation_m`` or turned ``min_rotation_deg`` since the last keyframe
(``keyframes.moved_enough``) and has depth becomes one. The map frame is the first image's
camera frame (x right, y down, z forward). Like any odometry the poses drift; `map build
--no-poses` therefore bundle-adjusts them (``--refine-poses always``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..geometry import transform_points
from ..localization.pnp import solve_pnp
from ..localization.retrieval import learn_vocabulary, vlad
from ..models.preprocess import to_grey
from ..models.xfeat import ImageFeatures, XFeatExtractor
from .feature_map import lift_with_depth
from .frames import MappingCancelled, PosedImage, Progress
from .keyframes import moved_enough
from .views import mutual_matches


@dataclass(frozen=True)
class OdometryConfig:
    """top_k, short_side: XFeat keypoints per image and the short side they are found at
    (the feature map's); recent / retrieved: keyframes matched first (the last ones) and, when
    those fail, the most alike by VLAD; an image is located with at least ``min_inliers`` PnP
    inliers within ``threshold_px``; keyframe spacing and depth smoothness as the feature
    map's."""
    top_k: int = 2048
    short_side: int = 360
    recent: int = 3
    retrieved: int = 5
    min_inliers: int = 60
    threshold_px: float = 3.0
    ratio: float = 0.9
    min_translation_m: float = 0.03
    min_rotation_deg: float = 3.0
    max_depth_jump: float = 0.05
    vocabulary_words: int = 32


class _Keyframes:
    """The tracking's keyframes: features, map-frame points (one per keypoint), poses, VLAD."""

    def __init__(self, words: int):
        self.words = words
        self.feats: list[ImageFeatures] = []
        self.points: list[np.ndarray] = []
        self.poses: list[np.ndarray] = []
        self.globals: list[np.ndarray] = []
        self.vocabulary: np.ndarray | None = None

    def add(self, f: ImageFeatures, points_N3: np.ndarray, map_from_cam: np.ndarray) -> None:
        ok = ~np.isnan(points_N3[:, 0])
        f = ImageFeatures(f.keypoints_N2[ok], f.scores_N[ok], f.descriptors_ND[ok])
        if self.vocabulary is None:
            self.vocabulary = learn_vocabulary(f.descriptors_ND, min(self.words, len(f.descriptors_ND)))
        self.feats.append(f)
        self.points.append(points_N3[ok])
        self.poses.append(map_from_cam)
        self.globals.append(vlad(f.descriptors_ND, self.vocabulary))

    def alike(self, f: ImageFeatures, n: int, skip: set[int]) -> list[int]:
        """The n keyframes (not in skip) most alike to f by VLAD."""
        sim = np.stack(self.globals) @ vlad(f.descriptors_ND, self.vocabulary)
        return [int(k) for k in np.argsort(-sim) if int(k) not in skip][:n]


def _locate(f: ImageFeatures, K: np.ndarray, kfs: _Keyframes, candidates: list[int],
            cfg: OdometryConfig) -> tuple[np.ndarray | None, int]:
    """(map_from_cam or None, inliers) of an image from its matches to the candidate keyframes."""
    uv, pts = [], []
    for k in candidates:
        ia, ib = mutual_matches(f.descriptors_ND, kfs.feats[k].descriptors_ND, cfg.ratio)
        uv.append(f.keypoints_N2[ia])
        pts.append(kfs.points[k][ib])
    uv, pts = np.concatenate(uv).astype(np.float64), np.concatenate(pts)
    if len(uv) < cfg.min_inliers:
        return None, 0
    result = solve_pnp(pts, uv, K, threshold_px=cfg.threshold_px)
    inliers = 0 if result is None else int(result.inliers_N.sum())
    return (result.map_from_cam if inliers >= cfg.min_inliers else None), inliers


def track_poses(images: list[PosedImage], extractor: XFeatExtractor,
                cfg: OdometryConfig = OdometryConfig(), *, progress: Progress | None = None,
                cancel: Callable[[], bool] | None = None) -> tuple[list[np.ndarray | None], dict]:
    """(map_from_cam 4x4 of each image, None where it could not be located; report: located,
    lost, keyframes, median inliers, seconds). The images' own poses are not read. Raises
    ValueError when the first image has no depth (the map frame and its scale come from it)."""
    t0 = time.time()
    kfs = _Keyframes(cfg.vocabulary_words)
    poses: list[np.ndarray | None] = []
    inliers, relocated = [], 0
    for i, im in enumerate(images):
        if cancel is not None and cancel():
            raise MappingCancelled("pose tracking cancelled")
        depth = im.load_depth()
        f = extractor.extract(to_grey(im.load_image()), top_k=cfg.top_k, short_side=cfg.short_side)
        if not kfs.feats:
            if depth is None:
                raise ValueError("tracking poses needs depth: the first image has none")
            pose = np.eye(4)
        else:
            recent = list(range(max(0, len(kfs.feats) - cfg.recent), len(kfs.feats)))
            pose, n = _locate(f, im.K, kfs, recent, cfg)
            if pose is None and len(kfs.feats) > len(recent):
                pose, n = _locate(f, im.K, kfs, kfs.alike(f, cfg.retrieved, set(recent)), cfg)
                relocated += pose is not None
            if pose is not None:
                inliers.append(n)
        poses.append(pose)
        if pose is not None and depth is not None and (
                not kfs.feats or moved_enough(pose, kfs.poses[-1], cfg.min_translation_m, cfg.min_rotation_deg)):
            cam = lift_with_depth(f.keypoints_N2.astype(np.float64), depth, im.K, np.eye(4), cfg.max_depth_jump)
            kfs.add(f, transform_points(pose, cam), pose)
        if progress:
            progress("poses", i + 1, len(images), {"keyframes": len(kfs.feats)})
    located = sum(p is not None for p in poses)
    return poses, {"images": len(images), "located": located, "lost": len(images) - located,
                   "relocated": relocated, "keyframes": len(kfs.feats),
                   "median_inliers": int(np.median(inliers)) if inliers else 0,
                   "seconds": round(time.time() - t0, 1)}
