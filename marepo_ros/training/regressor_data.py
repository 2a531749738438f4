"""Training samples for the pose regressor, generated on the fly from rendered rooms.

A sample is what a head would give the regressor for one image: the scene coordinates of the
image's 1/8-resolution cells (exact, by ray casting ``synthetic.scene.random_scene`` geometry from a
random pose with random intrinsics, fx != fy, several image sizes), corrupted the way a real
head errs (``corrupt``), then moved by marepo's rigid jitter (``rigid_jitter``: one random
rigid transform, up to ±1 m and ±180°, applied to the coordinates and to the pose alike), so
that only the pose *relative to the coordinates* can be learnt, never an absolute one.

Seeds pick scenes: training and validation use disjoint seed ranges (``TRAIN_SEEDS``,
``VALIDATION_SEEDS``), so validation geometry and textures are never seen in training.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch

from ..geometry import pixel_rays, pose_error, transform_points
from ..localization.pnp import solve_pnp
from ..models.preprocess import cell_centres
from ..models.regressor_batch import Sample, collate, random_rigid, rigid_jitter
from ..synthetic.paths import look_pose
from ..synthetic.raycast import cast_rays, clearance
from ..synthetic.scene import Scene, random_scene

TRAIN_SEEDS = range(1_000_000, 2_000_000)
VALIDATION_SEEDS = range(9_000_000, 9_001_000)
IMAGE_SIZES = ((320, 240), (240, 320), (424, 240), (360, 240), (240, 240), (256, 192))


@dataclass(frozen=True)
class Corruption:
    """How a head errs, as ranges sampled per view (metres, fractions).

    noise_rel: Gaussian noise with sigma = noise_rel * depth (uniform in the range).
    smooth_m: amplitude of a smooth, low-frequency 3D distortion over the image.
    outliers: fraction of cells replaced by random points of the room.
    region: fraction of the image (one rectangle, with probability ``region_prob``) whose
        coordinates slide along their rays to a wrong depth (a confused part of the image).
    clean_prob: probability that a view is left exact.
    """
    noise_rel: tuple[float, float] = (0.002, 0.03)
    smooth_m: tuple[float, float] = (0.0, 0.15)
    outliers: tuple[float, float] = (0.0, 0.4)
    region: tuple[float, float] = (0.05, 0.3)
    region_prob: float = 0.5
    clean_prob: float = 0.2


def random_intrinsics(rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
    """(K, width, height): one of IMAGE_SIZES, focal 0.6-1.2 x width, fx/fy 0.9-1.1, principal
    point within 5 % of the centre."""
    w, h = IMAGE_SIZES[rng.integers(len(IMAGE_SIZES))]
    f = rng.uniform(0.6, 1.2) * max(w, h)
    fx, fy = f, f * rng.uniform(0.9, 1.1)
    cx, cy = (w - 1) / 2 + rng.uniform(-0.05, 0.05) * w, (h - 1) / 2 + rng.uniform(-0.05, 0.05) * h
    return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]]), w, h


def random_view(scene: Scene, rng: np.random.Generator, K: np.ndarray, width: int, height: int,
                *, min_depth_m: float = 0.6) -> Sample:
    """Exact scene coordinates of a random view: camera at least 0.3 m from every surface,
    any heading, pitch -30..+15°, roll ±8°; redrawn until the median cell depth exceeds
    ``min_depth_m``."""
    h, w = math.ceil(height / 8), math.ceil(width / 8)
    pixels = cell_centres(h, w).numpy().astype(np.float64)
    rays_cam = pixel_rays(K, pixels)
    for _ in range(200):
        p = np.array([*(rng.uniform(-0.5, 0.5, 2) * scene.size[:2]), rng.uniform(0.5, 2.0)])
        if clearance(scene, p)[0] < 0.3:
            continue
        T = look_pose(p, rng.uniform(-np.pi, np.pi), rng.uniform(-0.5, 0.25), rng.normal(0, 0.07))
        depth = cast_rays(scene, p, rays_cam @ T[:3, :3].T)       # rays have camera z = 1
        if np.median(depth) >= min_depth_m and np.isfinite(depth).all():
            coords = transform_points(T, rays_cam * depth[:, None])
            return Sample(coords.astype(np.float32), pixels.astype(np.float32), K, T,
                          depth.astype(np.float32), (h, w))
    raise RuntimeError("no usable view found in this scene")


def corrupt(sample: Sample, rng: np.random.Generator, scene_size: np.ndarray,
            corruption: Corruption = Corruption()) -> Sample:
    """The sample with head-like errors (see ``Corruption``; the exact coordinates kept as
    ``exact_N3``); pose and pixels unchanged."""
    c = corruption
    if rng.random() < c.clean_prob:
        return sample
    sample = replace(sample, exact_N3=sample.coords_N3)
    h, w = sample.grid_hw
    X = sample.coords_N3.astype(np.float64)
    z = sample.depth_N.astype(np.float64)[:, None]
    X = X + rng.normal(size=X.shape) * rng.uniform(*c.noise_rel) * z
    field = rng.normal(size=(3, 3, 3)).astype(np.float32)
    smooth = cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC).reshape(-1, 3)
    X = X + rng.uniform(*c.smooth_m) * smooth
    centre = sample.map_from_cam[:3, 3]
    if rng.random() < c.region_prob:
        frac = rng.uniform(*c.region)
        rh = max(1, int(round(h * math.sqrt(frac) * rng.uniform(0.7, 1.4))))
        rw = max(1, min(w, int(round(frac * h * w / rh))))
        rh = min(rh, h)
        r0, c0 = rng.integers(h - rh + 1), rng.integers(w - rw + 1)
        grid = np.zeros((h, w), bool)
        grid[r0:r0 + rh, c0:c0 + rw] = True
        idx = grid.ravel()
        X[idx] = centre + (X[idx] - centre) * rng.uniform(0.3, 2.5)
    n_out = int(rng.uniform(*c.outliers) * len(X))
    if n_out:
        idx = rng.choice(len(X), n_out, replace=False)
        half = np.array([scene_size[0] / 2, scene_size[1] / 2, scene_size[2] / 2])
        X[idx] = rng.uniform(-half, half, (n_out, 3)) + [0, 0, half[2]]
    return replace(sample, coords_N3=X.astype(np.float32))


TEACHER_THRESHOLD = 0.02    # RANSAC inlier threshold of the teacher, in units of the focal length
TEACHER_AGREES = (0.10, 5.0)  # (m, deg): a teacher pose farther from the ground truth is dropped


def with_teacher(sample: Sample) -> Sample:
    """The sample with GeLoc3r's teacher pose: poselib's LO-RANSAC PnP on its (possibly
    corrupted) coordinates and pixels, threshold ``TEACHER_THRESHOLD`` x focal; kept only where
    it agrees with the ground truth (``TEACHER_AGREES``), else ``teacher`` stays None."""
    f = (sample.K[0, 0] + sample.K[1, 1]) / 2
    result = solve_pnp(sample.coords_N3, sample.pixels_N2, sample.K,
                       threshold_px=TEACHER_THRESHOLD * f, max_iterations=1000)
    if result is None:
        return sample
    moved_m, turned_deg = pose_error(result.map_from_cam, sample.map_from_cam)
    agrees = moved_m <= TEACHER_AGREES[0] and turned_deg <= TEACHER_AGREES[1]
    return replace(sample, teacher=result.map_from_cam if agrees else None)


class SampleStream:
    """Endless training samples: a new scene (seed from ``seeds``, in order from ``start``)
    every ``views_per_scene`` views; each view corrupted, given a teacher pose when ``teacher``
    (``with_teacher``, before the jitter, which then moves it too) and rigidly jittered (the
    attributes ``max_rotation_deg`` and ``max_translation_m`` may change between draws: a
    curriculum).

    ``state()`` / ``SampleStream(..., start=...)`` resume the scene sequence."""

    def __init__(self, *, seeds: range = TRAIN_SEEDS, start: int = 0, views_per_scene: int = 48,
                 corruption: Corruption = Corruption(), max_rotation_deg: float = 180.0,
                 max_translation_m: float = 1.0, rng_seed: int = 0, teacher: bool = False):
        self.seeds, self.next_index = seeds, start
        self.teacher = teacher
        self.views_per_scene = views_per_scene
        self.corruption = corruption
        self.max_rotation_deg, self.max_translation_m = max_rotation_deg, max_translation_m
        self.rng = np.random.default_rng([rng_seed, start])
        self.scene, self.left = None, 0

    def state(self) -> int:
        return self.next_index

    def __next__(self) -> Sample:
        if self.left == 0:
            self.scene = random_scene(self.seeds[self.next_index % len(self.seeds)])
            self.next_index += 1
            self.left = self.views_per_scene
        self.left -= 1
        K, w, h = random_intrinsics(self.rng)
        s = corrupt(random_view(self.scene, self.rng, K, w, h), self.rng, self.scene.size,
                    self.corruption)
        if self.teacher:
            s = with_teacher(s)
        return rigid_jitter(s, random_rigid(self.rng, max_rotation_deg=self.max_rotation_deg,
                                            max_translation_m=self.max_translation_m))

    def __iter__(self):
        return self


class BatchStream(torch.utils.data.IterableDataset):
    """Endless collated training batches (``regressor_batch.collate``) for a DataLoader: each
    worker runs its own ``SampleStream`` on its share of the seeds (worker k of n takes every
    n-th seed from ``start``), so rendering runs on n CPU cores while a GPU trains. No
    curriculum (the jitter stays at ``stream_options``' value)."""

    def __init__(self, *, batch: int, tokens: int, start: int = 0, seed: int = 0,
                 seeds: range = TRAIN_SEEDS, **stream_options):
        super().__init__()
        self.batch, self.tokens, self.start, self.seed = batch, tokens, start, seed
        self.seeds, self.stream_options = seeds, stream_options

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        k, n = (info.id, info.num_workers) if info is not None else (0, 1)
        stream = SampleStream(seeds=self.seeds[self.start + k::n], rng_seed=1000 * self.seed + k,
                              **self.stream_options)
        rng = np.random.default_rng([self.seed, k, self.start])
        while True:
            yield collate([next(stream) for _ in range(self.batch)], self.tokens, rng)


def validation_set(n_scenes: int = 20, views_per_scene: int = 5, *, seed: int = 0
                   ) -> tuple[list[Sample], list[Sample]]:
    """Fixed held-out views from VALIDATION_SEEDS scenes (never used in training): (exact,
    corrupted) versions of the same rigidly jittered views; every one of the corrupted views is
    corrupted (``clean_prob`` 0)."""
    rng = np.random.default_rng(seed)
    clean, corrupted = [], []
    for i in range(n_scenes):
        scene = random_scene(VALIDATION_SEEDS[i])
        for _ in range(views_per_scene):
            K, w, h = random_intrinsics(rng)
            s = random_view(scene, rng, K, w, h)
            bad = corrupt(s, rng, scene.size, Corruption(clean_prob=0.0))
            J = random_rigid(rng)
            clean.append(rigid_jitter(s, J))
            corrupted.append(rigid_jitter(bad, J))
    return clean, corrupted
