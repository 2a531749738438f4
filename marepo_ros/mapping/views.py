"""Between keyframe views: descriptor matches and the intersection of rays (used by the feature
map's triangulation and by the feature tracks of pose refinement)."""
from __future__ import annotations

import numpy as np
import torch


def mutual_matches(desc_a: np.ndarray, desc_b: np.ndarray, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Mutual nearest neighbours of unit descriptors that also pass a ratio test."""
    if len(desc_a) < 2 or len(desc_b) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    sims = torch.from_numpy(desc_a) @ torch.from_numpy(desc_b).T
    top2, idx = torch.topk(sims, 2, dim=1)
    back = sims.argmax(0)
    d1, d2 = torch.sqrt(torch.clamp(2 - 2 * top2[:, 0], min=0)), torch.sqrt(torch.clamp(2 - 2 * top2[:, 1], min=0))
    a = torch.arange(len(desc_a))
    good = (back[idx[:, 0]] == a) & (d1 < ratio * d2)
    return a[good].numpy(), idx[good, 0].numpy()


def triangulate_rays(centres_NV3: np.ndarray, rays_NV3: np.ndarray, used_NV: np.ndarray) -> np.ndarray:
    """(N, 3) least-squares intersection of up to V rays per point (unit rays, ``used`` marks
    the valid ones): the point nearest to all its rays, NaN with fewer than 2 rays."""
    P = np.eye(3) - rays_NV3[..., :, None] * rays_NV3[..., None, :]       # (N, V, 3, 3)
    P = P * used_NV[..., None, None]
    A, b = P.sum(1), np.einsum("nvij,nvj->ni", P, centres_NV3)
    out = np.full((len(A), 3), np.nan)
    ok = used_NV.sum(1) >= 2
    out[ok] = np.linalg.solve(A[ok] + 1e-12 * np.eye(3), b[ok][..., None])[..., 0]
    return out
