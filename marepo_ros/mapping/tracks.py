"""Feature tracks across keyframes: which keyframes to match, verified matches, tracks.

Pairs are found without trusting the poses (they may drift): each keyframe with the next few in
capture order, and with the keyframes most similar by global descriptor (VLAD; a place seen
again after a loop, however far the drifting poses put it). A pair's mutual nearest-neighbour
descriptor matches are kept when they fit one relative pose (poselib's essential-matrix
LO-RANSAC); the verified matches of all pairs are joined into tracks (connected components),
and a track
that holds two keypoints of one keyframe is dropped (a wrong match joined it).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import poselib
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..geometry import pixel_rays
from ..localization.retrieval import learn_vocabulary, vlad
from ..models.xfeat import ImageFeatures
from .views import mutual_matches


@dataclass
class Tracks:
    """Observations of tracked points: keyframe (M,) int, keypoint index (M,) int, point (M,)
    int in 0..n_points-1; n_points: the number of tracks; pairs: the verified keyframe pairs
    (P, 2) with their inliers (P,)."""
    keyframe_M: np.ndarray
    keypoint_M: np.ndarray
    point_M: np.ndarray
    n_points: int
    pairs_P2: np.ndarray
    pair_inliers_P: np.ndarray


def candidate_pairs(feats: list[ImageFeatures], *, sequential: int = 3, retrieved: int = 5,
                    vocabulary_words: int = 32) -> np.ndarray:
    """(P, 2) keyframe pairs i < j: each keyframe with its next ``sequential`` keyframes, and
    with its ``retrieved`` most similar others by VLAD that are not its sequential neighbours."""
    n = len(feats)
    pairs = {(i, j) for i in range(n) for j in range(i + 1, min(n, i + sequential + 1))}
    if retrieved > 0 and n > sequential + 1:
        desc = np.concatenate([f.descriptors_ND for f in feats])
        vocabulary = learn_vocabulary(desc, min(vocabulary_words, len(desc)))
        g = np.stack([vlad(f.descriptors_ND, vocabulary) for f in feats])
        sim = g @ g.T
        for i in range(n):
            far = np.abs(np.arange(n) - i) > sequential
            order = np.argsort(-np.where(far, sim[i], -np.inf))[:retrieved]
            pairs |= {(min(i, int(j)), max(i, int(j))) for j in order if far[j]}
    return np.array(sorted(pairs), np.int64).reshape(-1, 2)


RANSAC_MIN_ITERATIONS = 100    # poselib's default 1000: 3.4x the time per pair on redkitchen
                               # keyframes for 0.7 % more inliers (the adaptive stop still runs
                               # as many as a low inlier ratio needs)


def verified_matches(fa: ImageFeatures, fb: ImageFeatures, Ka: np.ndarray, Kb: np.ndarray, *,
                     ratio: float = 0.9, threshold_px: float = 1.5, min_inliers: int = 30
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Keypoint indices (ia, ib) of the matches between two keyframes that fit one relative pose
    (Sampson error within ``threshold_px``); empty when fewer than ``min_inliers``."""
    ia, ib = mutual_matches(fa.descriptors_ND, fb.descriptors_ND, ratio)
    empty = np.zeros(0, np.int64)
    if len(ia) < min_inliers:
        return empty, empty
    f = (Ka[0, 0] + Ka[1, 1] + Kb[0, 0] + Kb[1, 1]) / 4
    ua = pixel_rays(Ka, fa.keypoints_N2[ia].astype(np.float64))[:, :2] * f
    ub = pixel_rays(Kb, fb.keypoints_N2[ib].astype(np.float64))[:, :2] * f
    camera = {"model": "SIMPLE_PINHOLE", "width": 0, "height": 0, "params": [f, 0.0, 0.0]}
    _, info = poselib.estimate_relative_pose(ua, ub, camera, camera, {
        "max_epipolar_error": threshold_px, "seed": 0, "min_iterations": RANSAC_MIN_ITERATIONS}, {})
    inliers = np.asarray(info.get("inliers", []), bool)
    if len(inliers) != len(ia) or inliers.sum() < min_inliers:
        return empty, empty
    return ia[inliers], ib[inliers]


def build_tracks(feats: list[ImageFeatures], Ks_K33: np.ndarray, pairs_P2: np.ndarray, *,
                 ratio: float = 0.9, threshold_px: float = 1.5, min_inliers: int = 30,
                 progress=None) -> Tracks:
    """Tracks from the verified matches of ``pairs_P2`` (see the module docstring); progress:
    called with (done, total) after each pair."""
    offsets = np.concatenate([[0], np.cumsum([len(f.keypoints_N2) for f in feats])])
    kept, counts, edges = [], [], []
    for n, (a, b) in enumerate(pairs_P2):
        ia, ib = verified_matches(feats[a], feats[b], Ks_K33[a], Ks_K33[b], ratio=ratio,
                                  threshold_px=threshold_px, min_inliers=min_inliers)
        if len(ia):
            kept.append((a, b))
            counts.append(len(ia))
            edges.append(np.stack([offsets[a] + ia, offsets[b] + ib], 1))
        if progress:
            progress(n + 1, len(pairs_P2))
    edges = np.concatenate(edges) if edges else np.zeros((0, 2), np.int64)
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])),
                       shape=(offsets[-1], offsets[-1]))
    _, roots = connected_components(graph, directed=False)
    keyframe = np.searchsorted(offsets, np.arange(offsets[-1]), side="right") - 1
    size = np.bincount(roots, minlength=offsets[-1])
    tracked = size[roots] >= 2
    # a track with two keypoints of one keyframe joined a wrong match: drop it
    node_key = roots[tracked].astype(np.int64) * (len(feats) + 1) + keyframe[tracked]
    _, first, dup_count = np.unique(node_key, return_index=True, return_counts=True)
    bad_roots = np.unique(roots[tracked][first[dup_count > 1]])
    keep = tracked & ~np.isin(roots, bad_roots)
    nodes = np.nonzero(keep)[0]
    _, point = np.unique(roots[nodes], return_inverse=True)
    return Tracks(keyframe_M=keyframe[nodes], keypoint_M=nodes - offsets[keyframe[nodes]],
                  point_M=point.astype(np.int64), n_points=int(point.max() + 1) if len(point) else 0,
                  pairs_P2=np.array(kept, np.int64).reshape(-1, 2),
                  pair_inliers_P=np.array(counts, np.int64))
