"""Depth maps: registration from a depth camera to the RGB camera.

Pixel convention: pixel (u, v) has its centre at integer coordinates (the convention of
``geometry.scale_intrinsics`` and of OpenCV keypoints). Depth is z-depth in metres, 0 = invalid.
"""
from __future__ import annotations

import functools

import cv2
import numpy as np

from ..geometry import backproject, project, transform_points


def register_depth(depth_HW: np.ndarray, depth_K: np.ndarray, rgb_K: np.ndarray,
                   rgb_size: tuple[int, int], rgb_from_depth: np.ndarray | None = None,
                   *, fill_holes: bool = True) -> np.ndarray:
    """Resample a depth image into the RGB camera's pixel grid (forward splatting).

    Every valid depth pixel is back-projected with ``depth_K``, moved by ``rgb_from_depth``
    (4x4, default identity: both cameras share one pose, as for 7-Scenes), projected with
    ``rgb_K`` and rounded to the nearest RGB pixel; where several land on one pixel the nearest
    (smallest z) wins. Each output value is the z of the splatted point in the RGB camera, so
    it is exact at the point's own (sub-pixel) position, not at the pixel centre.

    With ``fill_holes`` an empty pixel takes the minimum (foreground-favouring) of its valid
    3x3 neighbours when at least 4 of the 8 are valid: this closes the 1-pixel gaps that
    up-sampling leaves, while straight borders of the valid region (3 valid neighbours) and
    wider holes stay empty.

    depth_HW: (Hd, Wd) depth of the depth camera, metres, 0 / NaN = invalid.
    depth_K, rgb_K: (3, 3) intrinsics of the depth and the RGB camera.
    rgb_size: (W, H) of the RGB image.
    Returns (H, W) float32 depth in the RGB camera, metres, 0 = invalid.
    """
    W, H = int(rgb_size[0]), int(rgb_size[1])
    depth = np.asarray(depth_HW, dtype=np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    if rgb_from_depth is None:     # one pose: where a pixel lands does not depend on its depth
        target = _pixel_map(depth.shape, np.asarray(depth_K, np.float64).tobytes(),
                            np.asarray(rgb_K, np.float64).tobytes(), W, H).ravel()
        keep = valid.ravel() & (target >= 0)
        idx, z = target[keep], depth.ravel()[keep]
    else:
        v, u = np.nonzero(valid)
        pts = transform_points(np.asarray(rgb_from_depth, dtype=np.float64),
                               backproject(depth_K, np.stack([u, v], axis=1), depth[v, u]))
        pts = pts[pts[:, 2] > 1e-6]
        ur, vr = np.rint(project(np.asarray(rgb_K, dtype=np.float64), pts)).T
        inside = (ur >= 0) & (ur < W) & (vr >= 0) & (vr < H)
        idx = vr[inside].astype(np.int64) * W + ur[inside].astype(np.int64)
        z = pts[inside, 2].astype(np.float32)

    zbuf = np.full(H * W, np.inf, dtype=np.float32)
    np.minimum.at(zbuf, idx, z)
    out = zbuf.reshape(H, W)
    if fill_holes:
        valid = np.isfinite(out)
        neigh_min = cv2.erode(out, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
        n_valid = cv2.filter2D(valid.astype(np.float32), -1, np.ones((3, 3), np.float32),
                               borderType=cv2.BORDER_CONSTANT)
        fill = ~valid & (n_valid >= 3.5)
        out[fill] = neigh_min[fill]
    out[~np.isfinite(out)] = 0.0
    return out


@functools.lru_cache(maxsize=8)
def _pixel_map(shape: tuple[int, int], depth_K: bytes, rgb_K: bytes, W: int, H: int) -> np.ndarray:
    """(Hd, Wd) int64: the flat RGB pixel index (v * W + u) each depth pixel lands on when both
    cameras share one pose (z is the same in both), -1 outside the RGB image. Ks as float64
    bytes (hashable)."""
    Kd, Kr = (np.frombuffer(k, np.float64).reshape(3, 3) for k in (depth_K, rgb_K))
    v, u = np.mgrid[:shape[0], :shape[1]]
    ur, vr = np.rint(project(Kr, backproject(Kd, np.stack([u, v], axis=-1), np.ones(shape)))).transpose(2, 0, 1)
    inside = (ur >= 0) & (ur < W) & (vr >= 0) & (vr < H)
    return np.where(inside, vr.astype(np.int64) * W + ur.astype(np.int64), -1)

