"""The regressor's input: one view's scene coordinates and pose (``Sample``), marepo's rigid
jitter, and batching (``collate``). Used by regressor training (rendered rooms) and by marepo_S
fine-tuning (a scene's mapping frames).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from ..geometry import transform_points


@dataclass
class Sample:
    """One view: coords_N3 (float32, map frame, metres; N = cells of the 1/8 grid, row-major),
    pixels_N2 (float32 cell centres in pixels), K (3x3 float64), map_from_cam (4x4 float64),
    depth_N (float32 z-depth of the exact coordinates, metres); exact_N3: the exact coordinates
    where coords_N3 were corrupted (None: coords_N3 are exact); teacher: GeLoc3r's teacher pose
    (map_from_cam 4x4 from RANSAC on coords_N3, ``training.teacher``) where it agrees with the
    ground truth, else None."""
    coords_N3: np.ndarray
    pixels_N2: np.ndarray
    K: np.ndarray
    map_from_cam: np.ndarray
    depth_N: np.ndarray
    grid_hw: tuple[int, int]
    exact_N3: np.ndarray | None = None
    teacher: np.ndarray | None = None


def random_rigid(rng: np.random.Generator, *, max_translation_m: float = 1.0,
                 max_rotation_deg: float = 180.0) -> np.ndarray:
    """A 4x4 rigid transform: rotation about a uniform random axis by an angle uniform in
    ±max_rotation_deg, translation uniform in ±max_translation_m per axis."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(axis * math.radians(
        rng.uniform(-max_rotation_deg, max_rotation_deg))).as_matrix()
    T[:3, 3] = rng.uniform(-max_translation_m, max_translation_m, 3)
    return T


def rigid_jitter(sample: Sample, jitter_from_map: np.ndarray) -> Sample:
    """The sample in a jittered map frame: coordinates X -> J X and map_from_cam -> J
    map_from_cam for J = ``jitter_from_map`` (4x4), so every coordinate keeps its place in the
    camera frame."""
    def move(X):
        return None if X is None else \
            transform_points(jitter_from_map, X.astype(np.float64)).astype(np.float32)
    return replace(sample, coords_N3=move(sample.coords_N3), exact_N3=move(sample.exact_N3),
                   map_from_cam=jitter_from_map @ sample.map_from_cam,
                   teacher=None if sample.teacher is None else jitter_from_map @ sample.teacher)


def collate(samples: list[Sample], tokens: int | None, rng: np.random.Generator
            ) -> dict[str, torch.Tensor]:
    """Batch tensors (float32 unless said): coords_BN3, exact_BN3 (the exact coordinates of the
    same cells), pixels_BN2, K_B33, map_from_cam_B44, teacher_B44 (identity where a sample has
    no teacher) and teacher_ok_B (bool). ``tokens``: cells drawn per sample without
    replacement (None: all; then all samples must have the same grid)."""
    picks = [np.arange(len(s.coords_N3)) if tokens is None else
             rng.choice(len(s.coords_N3), tokens, replace=len(s.coords_N3) < tokens)
             for s in samples]

    def stack(values):
        return torch.from_numpy(np.stack(values)).float()
    return {"coords_BN3": stack([s.coords_N3[p] for s, p in zip(samples, picks)]),
            "exact_BN3": stack([(s.coords_N3 if s.exact_N3 is None else s.exact_N3)[p]
                                for s, p in zip(samples, picks)]),
            "pixels_BN2": stack([s.pixels_N2[p] for s, p in zip(samples, picks)]),
            "K_B33": stack([s.K for s in samples]),
            "map_from_cam_B44": stack([s.map_from_cam for s in samples]),
            "teacher_B44": stack([np.eye(4) if s.teacher is None else s.teacher for s in samples]),
            "teacher_ok_B": torch.tensor([s.teacher is not None for s in samples])}
