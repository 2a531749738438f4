"""Photometric degradations of query images, for evaluating on what a robot's camera sees on a
bad day. Pure numpy + cv2, every random choice drawn from the ``rng`` given, so a degraded
image is a function of (image, kind, seed).

Kinds (``KINDS``) and the ranges their parameters are drawn from (uniformly):

- ``dim``: a dark room: intensity x in [0, 1] becomes ``gain * x ** gamma``, gain 0.25-0.45,
  gamma 1.3-1.8 (the mean brightness drops by more than half).
- ``colour_cast``: a white balance gone wrong: per-channel gains in 0.6-1.4, warm (tungsten:
  red up, blue down) or cool (red down, blue up) by a strength of 0.2-0.4, green by +-0.1;
  clipped at 255. A grey image gets the luminance of the gains (0.299 R + 0.587 G + 0.114 B).
- ``motion_blur``: a linear kernel 9-21 px long (anti-aliased line, sums to 1) at an angle of
  0-180 degrees, reflected at the border.
- ``noise``: sensor noise: Poisson shot noise of ``x / k`` photo-electrons at 0.25-1.0 grey
  levels per electron (``k``), plus Gaussian read noise of sigma 6-14 grey levels; per pixel
  and channel.

``degrade(image, kind, rng)`` takes a uint8 HxWx3 RGB or HxW grey image and returns a new array
of the same shape and dtype.
"""
from __future__ import annotations

import cv2
import numpy as np

KINDS = ("dim", "colour_cast", "motion_blur", "noise")

DIM_GAIN = (0.25, 0.45)
DIM_GAMMA = (1.3, 1.8)
CAST_STRENGTH = (0.2, 0.4)
CAST_GREEN = 0.1
CAST_GAINS = (0.6, 1.4)
BLUR_LENGTH_PX = (9, 21)
READ_NOISE_SIGMA = (6.0, 14.0)
SHOT_GAIN = (0.25, 1.0)      # grey levels per photo-electron


def degrade(image: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """``image`` (uint8 HxWx3 RGB or HxW grey) degraded by ``kind`` (one of ``KINDS``), its
    parameters drawn from ``rng``; same shape and dtype. Raises ValueError for another kind or
    an image that is not uint8 HxW / HxWx3."""
    if kind not in KINDS:
        raise ValueError(f"unknown degradation '{kind}' (choose from {', '.join(KINDS)})")
    image = np.asarray(image)
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"expected a uint8 HxW or HxWx3 image, got {image.dtype} of shape {image.shape}")
    return _KIND_FUNCTIONS[kind](image, rng)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _dim(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    gain, gamma = rng.uniform(*DIM_GAIN), rng.uniform(*DIM_GAMMA)
    return _to_uint8(255.0 * gain * (image.astype(np.float64) / 255.0) ** gamma)


def cast_gains(rng: np.random.Generator) -> np.ndarray:
    """(3,) RGB gains of one colour cast: warm or cool, within CAST_GAINS."""
    direction = 1.0 if rng.random() < 0.5 else -1.0          # +1 warm (tungsten), -1 cool
    strength = rng.uniform(*CAST_STRENGTH)
    green = rng.uniform(-CAST_GREEN, CAST_GREEN)
    return np.clip([1 + direction * strength, 1 + green, 1 - direction * strength], *CAST_GAINS)


def _colour_cast(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    gains = cast_gains(rng)
    if image.ndim == 2:
        gains = np.array(float(gains @ [0.299, 0.587, 0.114]))
    return _to_uint8(image.astype(np.float64) * gains)


def blur_kernel(length: int, angle_rad: float) -> np.ndarray:
    """(length, length) float32 kernel of a straight motion ``length`` px long at ``angle_rad``
    (anti-aliased, sums to 1)."""
    shift = 4                                   # cv2 fixed-point bits: sub-pixel end points
    c = (length - 1) / 2
    d = (length - 1) / 2 * np.array([np.cos(angle_rad), np.sin(angle_rad)])
    p0 = tuple(int(round(v * (1 << shift))) for v in (c - d[0], c - d[1]))
    p1 = tuple(int(round(v * (1 << shift))) for v in (c + d[0], c + d[1]))
    kernel = np.zeros((length, length), np.float32)
    cv2.line(kernel, p0, p1, 1.0, thickness=1, lineType=cv2.LINE_AA, shift=shift)
    return kernel / kernel.sum()


def _motion_blur(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    length = int(rng.integers(BLUR_LENGTH_PX[0], BLUR_LENGTH_PX[1] + 1))
    kernel = blur_kernel(length, rng.uniform(0.0, np.pi))
    out = cv2.filter2D(image.astype(np.float32), -1, kernel, borderType=cv2.BORDER_REFLECT)
    return _to_uint8(out)


def _noise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    k, sigma = rng.uniform(*SHOT_GAIN), rng.uniform(*READ_NOISE_SIGMA)
    electrons = rng.poisson(image.astype(np.float64) / k)
    return _to_uint8(electrons * k + rng.normal(0.0, sigma, image.shape))


_KIND_FUNCTIONS = {"dim": _dim, "colour_cast": _colour_cast, "motion_blur": _motion_blur,
                   "noise": _noise}
