"""Image preprocessing shared by mapping and localization."""
from __future__ import annotations

import cv2
import numpy as np
import torch

from ..geometry import scale_intrinsics
from .networks import OUTPUT_SUBSAMPLE

GREY_MEAN, GREY_STD = 0.4, 0.25


def target_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(W, H) with the short side ``short_side`` and both sides multiples of 8."""
    s = short_side / min(width, height)
    w = max(OUTPUT_SUBSAMPLE, int(round(width * s / OUTPUT_SUBSAMPLE)) * OUTPUT_SUBSAMPLE)
    h = max(OUTPUT_SUBSAMPLE, int(round(height * s / OUTPUT_SUBSAMPLE)) * OUTPUT_SUBSAMPLE)
    return w, h


def to_grey(image: np.ndarray) -> np.ndarray:
    """HxW uint8 grey from HxWx3 RGB or HxW grey uint8."""
    if image.ndim == 2:
        return image
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def normalise(grey_HW: np.ndarray) -> torch.Tensor:
    """uint8 grey HxW -> float tensor 1x1xHxW, (x/255 - 0.4) / 0.25 as ACE."""
    x = torch.from_numpy(grey_HW).float().div_(255.0)
    return ((x - GREY_MEAN) / GREY_STD)[None, None]


def preprocess(image: np.ndarray, K: np.ndarray, short_side: int = 480
               ) -> tuple[torch.Tensor, np.ndarray]:
    """Image (HxWx3 RGB or HxW grey, uint8) and its K -> (image_11HW, K of the resized image)."""
    h, w = image.shape[:2]
    W, H = target_size(w, h, short_side)
    grey = cv2.resize(to_grey(image), (W, H), interpolation=cv2.INTER_AREA if W < w else cv2.INTER_LINEAR)
    return normalise(grey), scale_intrinsics(K, W / w, H / h)


def cell_centres(height_cells: int, width_cells: int) -> torch.Tensor:
    """Pixel positions (u, v) of each output cell's centre: (H*W, 2), row-major."""
    v, u = torch.meshgrid(torch.arange(height_cells), torch.arange(width_cells), indexing="ij")
    uv = torch.stack([u, v], dim=-1).reshape(-1, 2).float()
    return uv * OUTPUT_SUBSAMPLE + OUTPUT_SUBSAMPLE / 2 - 0.5
