"""Keyframe collection for mapping: pair images with poses, keep frames that moved enough.

Images and poses arrive as separate streams. ``KeyframeCollector`` holds the recent images
until a pose of the same stamp (within a tolerance) is known, then keeps an image as a
keyframe when the camera moved at least ``min_translation_m`` or turned ``min_rotation_deg``
since the last keyframe (``moved_enough``, also the feature map's spacing), up to
``max_keyframes``. Stored images are grey and downscaled to ``store_short_side`` pixels, so
memory is bounded by the cap. The node's mapping session feeds it live; ``collect_keyframes``
feeds it recorded frames that already carry their pose (``marepo-ros map build BAG``).
"""
from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Iterable

import cv2
import numpy as np

from ..camera import Camera, undistorted
from ..geometry import is_valid_pose, pose_error, scale_intrinsics
from ..runtime.streams import StampedBuffer
from ..models.preprocess import to_grey


@dataclass
class Keyframe:
    """grey_HW uint8, its 3x3 K, map_from_cam 4x4 (metres), and depth_HW float32 (metres, on
    grey's pixel grid, 0 = invalid) or None."""
    grey: np.ndarray
    K: np.ndarray
    map_from_cam: np.ndarray
    depth: np.ndarray | None = None


def moved_enough(map_from_cam: np.ndarray, last: np.ndarray, min_translation_m: float,
                 min_rotation_deg: float) -> bool:
    """Whether a camera pose (4x4) moved ``min_translation_m`` metres or turned
    ``min_rotation_deg`` degrees from ``last`` (4x4): the keyframe spacing."""
    moved, turned = pose_error(map_from_cam, last)
    return moved >= min_translation_m or turned >= min_rotation_deg


def shrink(image: np.ndarray, K: np.ndarray, short_side: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(grey image whose short side is at most ``short_side`` (None: as it is), its K)."""
    grey = to_grey(image)
    h, w = grey.shape
    s = short_side / min(h, w) if short_side else 1.0
    if s >= 1:
        return grey.copy(), np.asarray(K, np.float64)
    W, H = max(1, round(w * s)), max(1, round(h * s))
    small = cv2.resize(grey, (W, H), interpolation=cv2.INTER_AREA)
    return small, scale_intrinsics(K, W / w, H / h)


class KeyframeCollector:
    """Collects keyframes from an image stream and a pose stream (thread-safe).

    ``add_pose(stamp, map_from_cam)`` -> None, or the reason the pose was refused (NaN, not
    rigid). ``add_image(stamp, payload)`` queues an image (any payload, e.g. a ROS message);
    ``ready()`` returns the (payload, map_from_cam) pairs whose pose is now known and which
    passed the motion thresholds; the caller decodes them and calls ``keep(image, K, pose)``.
    ``counts`` tallies keyframes, unposed / still / over-cap images and refused poses.
    ``store_short_side`` None keeps the images' own size.
    """

    def __init__(self, *, min_translation_m: float = 0.05, min_rotation_deg: float = 5.0,
                 max_keyframes: int = 500, pose_tolerance_s: float = 0.05,
                 store_short_side: int | None = 360, max_pending: int = 30):
        self.min_translation_m = min_translation_m
        self.min_rotation_deg = min_rotation_deg
        self.max_keyframes = max_keyframes
        self.pose_tolerance_s = pose_tolerance_s
        self.store_short_side = store_short_side
        self.keyframes: list[Keyframe] = []
        self.counts: Counter = Counter()
        self._poses = StampedBuffer(capacity=400)
        self._pending: deque[tuple[float, Any]] = deque(maxlen=max_pending)
        self._last_pose: np.ndarray | None = None
        self._lock = threading.Lock()

    def add_pose(self, stamp: float, map_from_cam: np.ndarray) -> str | None:
        if not np.all(np.isfinite(map_from_cam)):
            self.counts["refused_poses"] += 1
            return "pose contains NaN or inf"
        if not is_valid_pose(map_from_cam, tol=1e-2):
            self.counts["refused_poses"] += 1
            return "pose is not a rigid transform (non-unit quaternion?)"
        self._poses.add(stamp, np.asarray(map_from_cam, np.float64))
        return None

    def add_image(self, stamp: float, payload: Any) -> None:
        with self._lock:
            if len(self._pending) == self._pending.maxlen:
                self.counts["unposed"] += 1
            self._pending.append((stamp, payload))

    def ready(self) -> list[tuple[Any, np.ndarray]]:
        """Pending images now paired with a pose that moved enough (oldest first)."""
        out = []
        newest = self._poses.newest_stamp()
        with self._lock:
            keep: deque = deque(maxlen=self._pending.maxlen)
            for stamp, payload in self._pending:
                pose = self._poses.nearest(stamp, self.pose_tolerance_s)
                if pose is None:
                    if newest is not None and newest > stamp + self.pose_tolerance_s:
                        self.counts["unposed"] += 1  # its pose window has passed
                    else:
                        keep.append((stamp, payload))
                    continue
                if len(self.keyframes) + len(out) >= self.max_keyframes:
                    self.counts["over_cap"] += 1
                elif self._moved(pose):
                    self._last_pose = pose
                    out.append((payload, pose))
                else:
                    self.counts["still"] += 1
            self._pending = keep
        return out

    def keep(self, image: np.ndarray, K: np.ndarray, map_from_cam: np.ndarray,
             depth: np.ndarray | None = None) -> None:
        """Store a keyframe; ``depth`` (HxW metres, aligned with ``image``, 0 = invalid) is
        shrunk with it (nearest neighbour: no depth is mixed across edges). ValueError when
        the depth is not of the image's size."""
        grey, K_small = shrink(image, K, self.store_short_side)
        if depth is not None:
            if depth.shape != image.shape[:2]:
                raise ValueError(f"depth is {depth.shape[1]}x{depth.shape[0]} but its image is "
                                 f"{image.shape[1]}x{image.shape[0]}")
            depth = cv2.resize(np.asarray(depth, np.float32), grey.shape[::-1],
                               interpolation=cv2.INTER_NEAREST)
        with self._lock:
            self.keyframes.append(Keyframe(grey, K_small, map_from_cam, depth))
            self.counts["keyframes"] = len(self.keyframes)
            self.counts["with_depth"] += depth is not None

    def keep_camera_image(self, image: np.ndarray, camera: Camera, map_from_cam: np.ndarray,
                          depth: np.ndarray | None = None) -> None:
        """``keep`` an image of ``camera``: a distorted image, and the depth registered to it,
        are undistorted whole first (``camera.undistorted``; depth by nearest neighbour)."""
        if depth is not None:
            depth, _ = undistorted(depth, camera, nearest=True)
        image, camera = undistorted(image, camera)
        self.keep(image, camera.K, map_from_cam, depth)

    def _moved(self, pose: np.ndarray) -> bool:
        return self._last_pose is None or moved_enough(pose, self._last_pose, self.min_translation_m,
                                                       self.min_rotation_deg)


def collect_keyframes(collector: KeyframeCollector, frames: Iterable) -> None:
    """Feed recorded frames that carry their pose to ``collector``, as the node's mapping session
    feeds it live. frames: objects with ``stamp`` (s), ``image`` (HxW[x3] uint8),
    ``camera`` (Camera), ``map_from_cam`` (4x4) and ``depth`` (HxW float32 metres registered to
    the image, or None), e.g. ``io.bag.BagFrame``s. Give the collector ``pose_tolerance_s=0``:
    each image is paired with its own pose only."""
    for fr in frames:
        collector.add_pose(fr.stamp, fr.map_from_cam)
        collector.add_image(fr.stamp, fr)
        for kf, pose in collector.ready():
            collector.keep_camera_image(kf.image, kf.camera, pose, kf.depth)
