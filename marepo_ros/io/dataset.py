"""Reader for the generic scene folder layout.

    SCENE/rgb/<name>.color.jpg|png      images, any size, colour or grey
    SCENE/depth/<name>.depth.png        optional uint16 depth in millimetres, 0 (or 65535) = invalid
    SCENE/poses/<name>.pose.txt         4x4 camera-to-world (= map_from_cam), metres
    SCENE/intrinsics.txt                3x3 K of the rgb camera
    SCENE/depth_intrinsics.txt          optional 3x3 K of the depth camera (default: K)
    SCENE/splits/mapping.txt, query.txt optional frame names, one per line (default: all frames)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..geometry import check_intrinsics, is_valid_pose, nearest_rotation
from .images import from_opencv

IMAGE_SUFFIXES = (".color.jpg", ".color.png", ".jpg", ".png")
INVALID_DEPTH_MM = 65535  # as 0: no depth (the 7-Scenes Kinect recordings use it)


class DatasetError(ValueError):
    """A scene folder that does not follow the layout; the message names the path."""


@dataclass(frozen=True)
class Frame:
    """One frame of a scene: ``name`` (e.g. ``frame-000000``), its files and pose."""
    name: str
    image_path: Path
    depth_path: Path | None
    map_from_cam: np.ndarray | None  # 4x4 float64; None when the dataset's poses are not read

    def load_image(self) -> np.ndarray:
        """HxWx3 RGB or HxW grey uint8 (see ``read_image``)."""
        return read_image(self.image_path)

    def load_depth(self) -> np.ndarray | None:
        """HxW float32 depth in metres (0 = invalid), or None without a depth file."""
        if self.depth_path is None:
            return None
        raw = cv2.imread(str(self.depth_path), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise DatasetError(f"{self.depth_path}: cannot read depth image")
        depth = raw.astype(np.float32) / 1000.0
        depth[raw == INVALID_DEPTH_MM] = 0.0       # 7-Scenes marks missing depth so, not with 0
        return depth


def read_image(path: Path) -> np.ndarray:
    """HxWx3 RGB or HxW grey uint8 from any image file cv2 reads (16-bit -> 8-bit, alpha dropped)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DatasetError(f"{path}: cannot read image")
    return from_opencv(img)


def read_matrix(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A whitespace-separated float64 matrix of the given shape."""
    try:
        M = np.loadtxt(path, dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read a {shape[0]}x{shape[1]} matrix ({exc})") from None
    if M.shape != shape:
        raise DatasetError(f"{path}: expected a {shape[0]}x{shape[1]} matrix, got shape {M.shape}")
    return M


class SceneDataset:
    """A scene folder: intrinsics ``K`` and frames by split.

    ``frames(split)`` returns the frames of ``splits/<split>.txt`` (all frames when the split
    file is absent and ``split`` is ``mapping`` or ``all``). With ``poses=False`` the poses/
    folder is neither needed nor read (frames without a pose: `map build --no-poses`).
    """

    def __init__(self, root: str | Path, *, poses: bool = True):
        self.root = Path(root)
        self.with_poses = poses      # False: poses/ is not read (frames' map_from_cam is None)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: not a directory")
        for sub in ("rgb", "poses") if poses else ("rgb",):
            if not (self.root / sub).is_dir():
                raise DatasetError(f"{self.root}: missing folder '{sub}/'")
        self.K = read_matrix(self.root / "intrinsics.txt", (3, 3))
        problem = check_intrinsics(self.K)
        if problem:
            raise DatasetError(f"{self.root / 'intrinsics.txt'}: {problem}")
        dk = self.root / "depth_intrinsics.txt"
        self.depth_K = read_matrix(dk, (3, 3)) if dk.exists() else self.K.copy()
        self._images = self._index_images()

    def _index_images(self) -> dict[str, Path]:
        images: dict[str, Path] = {}
        for p in sorted((self.root / "rgb").iterdir()):
            for suffix in IMAGE_SUFFIXES:
                if p.name.endswith(suffix):
                    images.setdefault(p.name[: -len(suffix)], p)
                    break
        if not images:
            raise DatasetError(f"{self.root / 'rgb'}: no .jpg or .png images")
        return images

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the scene's images (all share the size K was calibrated for)."""
        h, w = read_image(self._images[self.names[0]]).shape[:2]
        return w, h

    @property
    def names(self) -> list[str]:
        """All frame names with an image, sorted."""
        return sorted(self._images)

    def split_names(self, split: str) -> list[str]:
        """Frame names of a split (``mapping``, ``query`` or ``all``)."""
        if split == "all":
            return self.names
        path = self.root / "splits" / f"{split}.txt"
        if not path.exists():
            if split == "mapping":
                return self.names
            raise DatasetError(f"{path}: split file not found")
        names = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
        missing = [n for n in names if n not in self._images]
        if missing:
            raise DatasetError(f"{path}: {len(missing)} frames have no image, e.g. '{missing[0]}'")
        return names

    def frame(self, name: str) -> Frame:
        """The frame called ``name``, with its pose checked and its rotation made exactly
        orthonormal (pose files store rounded matrices: 7-Scenes' are off by ~1e-4)."""
        depth_path = self.root / "depth" / f"{name}.depth.png"
        depth_path = depth_path if depth_path.exists() else None
        if not self.with_poses:
            return Frame(name, self._images[name], depth_path, None)
        pose_path = self.root / "poses" / f"{name}.pose.txt"
        if not pose_path.exists():
            raise DatasetError(f"{pose_path}: pose file not found")
        T = read_matrix(pose_path, (4, 4))
        if not is_valid_pose(T):
            raise DatasetError(f"{pose_path}: not a rigid 4x4 transform (NaN or non-orthonormal)")
        T[:3, :3] = nearest_rotation(T[:3, :3])
        return Frame(name, self._images[name], depth_path, T)

    def frames(self, split: str = "mapping") -> list[Frame]:
        """The frames of a split, in file order."""
        return [self.frame(n) for n in self.split_names(split)]

    def __repr__(self) -> str:
        return f"SceneDataset({str(self.root)!r}, {len(self._images)} frames)"
