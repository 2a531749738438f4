"""The keyframe feature map stored inside a map file.

For every keyframe: its pose, intrinsics and image size, a global descriptor for retrieval, and
its keypoints with descriptors and one map-frame 3D point each (from depth, triangulation across
keyframes, or the head). Only keypoints with a 3D point are kept. Points of all keyframes are
stored concatenated; ``offsets`` delimit each keyframe's slice.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

POINT_SOURCES = ("depth", "triangulated", "head")  # values of ``source_P``
DESCRIPTOR_SCALE = 127.0                          # unit descriptors stored as int8


def quantize(descriptors_ND: np.ndarray) -> np.ndarray:
    """Unit float descriptors -> int8 (x 127): a quarter of float32's bytes."""
    return np.clip(np.rint(np.asarray(descriptors_ND, np.float32) * DESCRIPTOR_SCALE), -127, 127).astype(np.int8)


def dequantize(descriptors_ND: np.ndarray) -> np.ndarray:
    """int8 descriptors -> float32 unit vectors."""
    d = descriptors_ND.astype(np.float32)
    return d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-6)


@dataclass
class FeatureMap:
    """K keyframes, P points in all.

    map_from_cam_K44: float64 keyframe poses; K_K33: float64 intrinsics of the keyframe images;
    image_size_K2: int32 (width, height); global_KG: float32 unit global descriptors;
    vocabulary_CD: float32 retrieval vocabulary (C centres of D-dim descriptors);
    offsets_K1: int64 start of keyframe k's points (``offsets[k]:offsets[k+1]``);
    keypoints_P2: float32 pixels; descriptors_PD: int8 unit descriptors x 127 (``quantize``); points_P3: float32
    map frame, metres; source_P: uint8 index into ``POINT_SOURCES``.
    extractor / extractor_id: the feature extractor's name and weights hash;
    short_side: the short side (pixels) of the keyframe images as extracted (after any
    shrinking); 0 in maps written before it was recorded (extracted at full size). Keypoints are
    in pixels of the full-size keyframe images either way.
    """
    map_from_cam_K44: np.ndarray
    K_K33: np.ndarray
    image_size_K2: np.ndarray
    global_KG: np.ndarray
    vocabulary_CD: np.ndarray
    offsets_K1: np.ndarray
    keypoints_P2: np.ndarray
    descriptors_PD: np.ndarray
    points_P3: np.ndarray
    source_P: np.ndarray
    extractor: str
    extractor_id: str
    short_side: int = 0

    @property
    def n_keyframes(self) -> int:
        return len(self.map_from_cam_K44)

    @property
    def n_points(self) -> int:
        return len(self.points_P3)

    def keyframe_of_points(self) -> np.ndarray:
        """(P,) int64 keyframe index of every point."""
        return np.repeat(np.arange(self.n_keyframes), np.diff(self.offsets_K1))

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._arrays().values())

    def source_counts(self) -> dict[str, int]:
        return {name: int((self.source_P == i).sum()) for i, name in enumerate(POINT_SOURCES)}

    def _arrays(self) -> dict[str, np.ndarray]:
        return {k: v for k, v in vars(self).items() if isinstance(v, np.ndarray)}

    def to_dict(self) -> dict:
        """Tensors and strings for ``torch.save`` (weights_only-loadable)."""
        return {**{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in self._arrays().items()},
                "extractor": self.extractor, "extractor_id": self.extractor_id,
                "short_side": self.short_side}

    @classmethod
    def from_dict(cls, content: dict) -> FeatureMap:
        """Inverse of ``to_dict``; raises KeyError or ValueError on missing or inconsistent parts."""
        arrays = {k: v.numpy() for k, v in content.items() if isinstance(v, torch.Tensor)}
        fm = cls(**arrays, extractor=str(content["extractor"]), extractor_id=str(content["extractor_id"]),
                 short_side=int(content.get("short_side", 0)))
        k, p = fm.n_keyframes, fm.n_points
        if (len(fm.offsets_K1) != k + 1 or fm.offsets_K1[-1] != p or len(fm.keypoints_P2) != p
                or len(fm.descriptors_PD) != p or len(fm.source_P) != p or len(fm.global_KG) != k):
            raise ValueError("feature map arrays disagree in length")
        return fm
