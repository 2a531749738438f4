"""Training our own encoder on rendered scenes: dense contrastive learning on view pairs.

Why not ACE's protocol (one shared encoder, one head per scene, reprojection loss): on the
2-core CPU this project trains on, ACE's recipe (a GPU-week on 100 scenes) is out of reach,
and the head only needs features that are (a) the same for the same surface point seen from
nearby views and under other light, and (b) different for different points. An InfoNCE loss on
the features of corresponding pixels in two rendered views (correspondences exact from the
rendered depth and poses) asks for exactly that, with hundreds of positives per image pair.

Everything here is scene-agnostic: training never sees the evaluation scene.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..geometry import backproject, invert_pose, make_pose, project, transform_points
from ..models.networks import OUTPUT_SUBSAMPLE, Encoder
from ..models.preprocess import normalise
from ..synthetic.paths import random_view_pair
from ..synthetic.raycast import render
from ..synthetic.scene import random_scene, vary_lighting

WIDTH, HEIGHT = 160, 120  # training render size (pixels)
BASE_FOCAL = 525.0 * WIDTH / 640  # Kinect-like field of view at this size


@dataclass
class PairBatch:
    """Images and correspondences of B view pairs.

    images_B21HW: normalised grey renders, view a then view b of each pair.
    uv_a / uv_b: (M, 2) pixel positions of corresponding points; pair_index: (M,) their pair.
    """
    images_B21HW: torch.Tensor
    uv_a: torch.Tensor
    uv_b: torch.Tensor
    pair_index: torch.Tensor


def _intrinsics(rng: np.random.Generator) -> np.ndarray:
    f = BASE_FOCAL * rng.uniform(0.8, 2.2)
    cx = (WIDTH - 1) / 2 + rng.normal(0, 3)
    cy = (HEIGHT - 1) / 2 + rng.normal(0, 3)
    return np.array([[f, 0, cx], [0, f, cy], [0, 0, 1]])


def _roll(map_from_cam: np.ndarray, degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    Rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    return map_from_cam @ make_pose(Rz, np.zeros(3))


def photometric(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Grey uint8 HxW from a render, with camera-like changes: contrast, brightness, gamma,
    blur, sensor noise and JPEG compression."""
    g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    g = np.clip((g - 0.5) * rng.uniform(0.7, 1.3) + 0.5 + rng.uniform(-0.15, 0.15), 0, 1)
    g = g ** rng.uniform(0.75, 1.35)
    if rng.random() < 0.5:
        g = cv2.GaussianBlur(g, (0, 0), rng.uniform(0.3, 1.2))
    g = g + rng.normal(0, rng.uniform(0, 0.02), g.shape)
    g8 = np.clip(g * 255 + 0.5, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", g8, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 96))])
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)


def correspondences(depth_a, K_a, T_a, depth_b, K_b, T_b, rng, max_points=128):
    """(uv_a, uv_b) float (M, 2) of points visible in both views, about one per 2x2 cells of
    view a so that no two points fall in the same feature cell."""
    step = 2 * OUTPUT_SUBSAMPLE
    gy, gx = np.mgrid[0:HEIGHT - step + 1:step, 0:WIDTH - step + 1:step]
    uv_a = np.stack([gx.ravel(), gy.ravel()], 1) + rng.integers(0, step, (gx.size, 2))
    z_a = depth_a[uv_a[:, 1], uv_a[:, 0]]
    pts_map = transform_points(T_a, backproject(K_a, uv_a.astype(np.float64), z_a))
    pts_b = transform_points(invert_pose(T_b), pts_map)
    z_b = pts_b[:, 2]
    uv_b = project(K_b, np.where(z_b[:, None] > 0.05, pts_b, 1.0))
    inside = (z_b > 0.05) & (uv_b[:, 0] >= 0) & (uv_b[:, 0] <= WIDTH - 1) \
        & (uv_b[:, 1] >= 0) & (uv_b[:, 1] <= HEIGHT - 1)
    ib = np.clip(np.round(uv_b).astype(int), 0, [WIDTH - 1, HEIGHT - 1])
    seen = np.abs(depth_b[ib[:, 1], ib[:, 0]] - z_b) < 0.03 * np.maximum(z_b, 0.1)
    keep = np.flatnonzero(inside & seen & (z_a > 0))
    keep = rng.permutation(keep)[:max_points]
    return uv_a[keep].astype(np.float32), uv_b[keep].astype(np.float32)


class PairSource:
    """Endless rendered view pairs from a pool of random scenes, renewed as training goes."""

    def __init__(self, seed: int, pool: int = 6, pairs_per_scene: int = 48):
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.pairs_per_scene = pairs_per_scene
        self.scenes = [self._new_scene() for _ in range(pool)]
        self.uses = [0] * pool

    def _new_scene(self):
        return random_scene(int(self.rng.integers(0, 2**31)))

    def pair(self):
        """(grey_a, grey_b uint8 HxW, uv_a, uv_b (M, 2)) of one rendered pair."""
        i = int(self.rng.integers(len(self.scenes)))
        if self.uses[i] >= self.pairs_per_scene:
            self.scenes[i], self.uses[i] = self._new_scene(), 0
        self.uses[i] += 1
        scene, rng = self.scenes[i], self.rng
        T_a, T_b = random_view_pair(scene, int(rng.integers(0, 2**31)))
        T_a, T_b = _roll(T_a, rng.normal(0, 8)), _roll(T_b, rng.normal(0, 8))
        views = []
        for T in (T_a, T_b):
            K = _intrinsics(rng)
            light = vary_lighting(scene.lighting, int(rng.integers(0, 2**31)))
            rgb, depth = render(scene, K, T, WIDTH, HEIGHT, lighting=light)
            views.append((photometric(rgb, rng), depth, K, T))
        (ga, da, Ka, Ta), (gb, db, Kb, Tb) = views
        uv_a, uv_b = correspondences(da, Ka, Ta, db, Kb, Tb, rng)
        return ga, gb, uv_a, uv_b

    def batch(self, n_pairs: int) -> PairBatch:
        images, uva, uvb, idx = [], [], [], []
        while len(images) < n_pairs:
            ga, gb, ua, ub = self.pair()
            if len(ua) < 16:
                continue
            idx.append(np.full(len(ua), len(images)))
            images.append(torch.cat([normalise(ga), normalise(gb)], 0))
            uva.append(ua)
            uvb.append(ub)
        return PairBatch(torch.stack(images), torch.from_numpy(np.concatenate(uva)),
                         torch.from_numpy(np.concatenate(uvb)), torch.from_numpy(np.concatenate(idx)))


def sample_features(features_BCHW: torch.Tensor, uv_M2: torch.Tensor, index_M: torch.Tensor,
                    image_hw: tuple[int, int]) -> torch.Tensor:
    """Bilinear features (M, C) at pixel positions uv of the images ``index``."""
    H, W = image_hw
    hf, wf = features_BCHW.shape[-2:]
    # pixel u -> feature-grid coordinate g = (u - 3.5) / 8 -> grid_sample's [-1, 1] range
    gx = ((uv_M2[:, 0] - (OUTPUT_SUBSAMPLE / 2 - 0.5)) / OUTPUT_SUBSAMPLE * 2 + 1) / wf - 1
    gy = ((uv_M2[:, 1] - (OUTPUT_SUBSAMPLE / 2 - 0.5)) / OUTPUT_SUBSAMPLE * 2 + 1) / hf - 1
    grid = torch.stack([gx, gy], -1)
    out = []
    for b in range(features_BCHW.shape[0]):
        sel = index_M == b
        g = grid[sel][None, None]  # 1x1xMx2
        out.append(F.grid_sample(features_BCHW[b:b + 1], g, align_corners=False,
                                 padding_mode="border")[0, :, 0].T)
    return torch.cat(out, 0)


def contrastive_loss(encoder: Encoder, batch: PairBatch, temperature: float = 0.1
                     ) -> tuple[torch.Tensor, float]:
    """Symmetric InfoNCE over all points of the batch; returns (loss, top-1 match accuracy)."""
    feats = encoder(batch.images_B21HW.flatten(0, 1))  # (2B, C, h, w)
    fa = sample_features(feats[0::2], batch.uv_a, batch.pair_index, (HEIGHT, WIDTH))
    fb = sample_features(feats[1::2], batch.uv_b, batch.pair_index, (HEIGHT, WIDTH))
    fa, fb = F.normalize(fa, dim=1), F.normalize(fb, dim=1)
    logits = fa @ fb.T / temperature
    target = torch.arange(len(fa))
    loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    accuracy = (logits.argmax(1) == target).float().mean().item()
    return loss, accuracy
