"""Keyframe retrieval: by global image descriptor (VLAD over local descriptors), or by pose.

A map learns its own small vocabulary (k-means over its keyframes' descriptors); an image's
global descriptor is VLAD (Jegou et al. 2010) with intra-normalisation and power
normalisation (Arandjelovic & Zisserman 2013). Retrieval is a dot product.
"""
from __future__ import annotations

import numpy as np


def learn_vocabulary(descriptors_ND: np.ndarray, n_words: int = 32, *, iterations: int = 15,
                     sample: int = 100_000, seed: int = 0) -> np.ndarray:
    """(n_words, D) float32 k-means centres (cosine k-means on unit descriptors)."""
    rng = np.random.default_rng(seed)
    d = np.asarray(descriptors_ND, np.float32)
    if len(d) > sample:
        d = d[rng.choice(len(d), sample, replace=False)]
    if len(d) < n_words:
        raise ValueError(f"need at least {n_words} descriptors to learn a vocabulary, got {len(d)}")
    centres = d[rng.choice(len(d), n_words, replace=False)].copy()
    for _ in range(iterations):
        assign = np.argmax(d @ centres.T, axis=1)
        for c in range(n_words):
            members = d[assign == c]
            if len(members):
                centres[c] = members.sum(0)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True) + 1e-12
    return centres


def vlad(descriptors_ND: np.ndarray, vocabulary_CD: np.ndarray) -> np.ndarray:
    """(C*D,) float32 unit VLAD vector of one image's descriptors."""
    d = np.asarray(descriptors_ND, np.float32)
    C, D = vocabulary_CD.shape
    out = np.zeros((C, D), np.float32)
    if len(d):
        assign = np.argmax(d @ vocabulary_CD.T, axis=1)
        np.add.at(out, assign, d - vocabulary_CD[assign])
    out /= np.linalg.norm(out, axis=1, keepdims=True) + 1e-12       # intra-normalisation
    out = np.sign(out) * np.sqrt(np.abs(out))                        # power normalisation
    flat = out.ravel()
    return flat / (np.linalg.norm(flat) + 1e-12)


def top_k(global_G: np.ndarray, database_KG: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k most similar database entries, best first."""
    sims = database_KG @ global_G
    k = min(k, len(sims))
    idx = np.argpartition(-sims, k - 1)[:k]
    return idx[np.argsort(-sims[idx])]


def nearest_keyframes(map_from_cam_K44: np.ndarray, map_from_cam: np.ndarray, k: int, *,
                      metres_per_degree: float = 1 / 30) -> np.ndarray:
    """Indices of the k keyframes (poses (K, 4, 4)) closest to a camera pose, best first, by
    centre distance (metres) + viewing-direction difference x ``metres_per_degree`` (30 deg
    weigh as much as 1 m)."""
    dist = np.linalg.norm(map_from_cam_K44[:, :3, 3] - map_from_cam[:3, 3], axis=1)
    cos = np.clip(map_from_cam_K44[:, :3, 2] @ map_from_cam[:3, 2], -1.0, 1.0)
    score = dist + np.degrees(np.arccos(cos)) * metres_per_degree
    k = min(k, len(score))
    idx = np.argpartition(score, k - 1)[:k]
    return idx[np.argsort(score[idx])]


def covisible_groups(map_from_cam_K44: np.ndarray, *, max_distance_m: float = 1.5,
                     max_angle_deg: float = 45.0) -> np.ndarray:
    """(K,) group index of each keyframe pose (K, 4, 4): keyframes whose centres are within
    ``max_distance_m`` and whose viewing directions are within ``max_angle_deg`` see the same
    place (covisible), and groups are the connected components of that relation, numbered in
    the order of their first keyframe (the best retrieved one's group is 0)."""
    centres, axes = map_from_cam_K44[:, :3, 3], map_from_cam_K44[:, :3, 2]
    near = (np.linalg.norm(centres[:, None] - centres[None], axis=-1) <= max_distance_m) & \
        (axes @ axes.T >= np.cos(np.radians(max_angle_deg)))
    group = np.full(len(centres), -1)
    n = 0
    for start in range(len(centres)):
        if group[start] >= 0:
            continue
        group[start], todo = n, [start]
        while todo:
            k = todo.pop()
            for j in np.flatnonzero(near[k] & (group < 0)):
                group[j] = n
                todo.append(j)
        n += 1
    return group
