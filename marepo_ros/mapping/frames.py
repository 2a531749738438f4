"""What mapping reads: posed images (lazily loaded), the progress callback, cancellation."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..io.dataset import SceneDataset
from ..io.depth import register_depth

Progress = Callable[[str, int, int, dict], None]  # (stage, done, total, info)


class MappingCancelled(RuntimeError):
    """Raised when the ``cancel`` callback of ``build_map`` returns True."""


@dataclass
class PosedImage:
    """One mapping image: RGB/grey uint8 pixels, its 3x3 K, map_from_cam (4x4), and optional
    depth (HxW metres in the image's own pixel grid, 0 = invalid). Loaded lazily."""
    load_image: Callable[[], np.ndarray]
    K: np.ndarray
    map_from_cam: np.ndarray
    load_depth: Callable[[], np.ndarray | None] = lambda: None


def posed_images_from_dataset(dataset: SceneDataset, split: str = "mapping", *,
                              depth: bool = True) -> list[PosedImage]:
    """PosedImages for a dataset split; depth (if any, and ``depth``) registered to the RGB
    camera."""
    size = dataset.image_size

    def loader(frame):
        def load_depth():
            d = frame.load_depth()
            return None if d is None else register_depth(d, dataset.depth_K, dataset.K, size)
        return load_depth

    return [PosedImage(fr.load_image, dataset.K, fr.map_from_cam, loader(fr) if depth else lambda: None)
            for fr in dataset.frames(split)]
