"""Rendered scene folders in the layout ``io.dataset.SceneDataset`` reads: a trajectory through
a room (``write_scene_folder``, query frames in blocks: ``query_mask``), a mapping trajectory
through a room and a second pass along part of it as the query (``write_revisit_folder``), or a
mapping and a query drive down a ``corridor_scene`` (``write_drive_folder``, no depth by
default).
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from .paths import default_intrinsics, drive_path, random_camera_path, revisit_path
from .raycast import render
from .scene import Scene


def query_mask(n_mapping: int, n_query: int, block: int = 25) -> np.ndarray:
    """(n_mapping + n_query,) bool: query frames in blocks of about ``block`` consecutive frames,
    interleaved with mapping blocks (mapping first and last)."""
    k = min(max(1, math.ceil(n_query / block)), max(n_mapping - 1, 1)) if n_query else 0
    maps = [len(a) for a in np.array_split(np.arange(n_mapping), k + 1)]
    queries = [len(a) for a in np.array_split(np.arange(n_query), k)] if k else []
    mask = []
    for i, m in enumerate(maps):
        mask += [False] * m + ([True] * queries[i] if i < k else [])
    return np.array(mask, bool)


def write_scene_folder(scene: Scene, out_dir: str | Path, *, n_mapping: int, n_query: int,
                       width: int = 640, height: int = 480, K: np.ndarray | None = None,
                       seed: int = 0, grey: bool = False, image_ext: str = ".png",
                       with_depth: bool = True) -> Path:
    """Render a trajectory (``random_camera_path``) into the layout ``dataset.SceneDataset``
    reads: rgb/<name>.color<ext>, depth/<name>.depth.png (uint16 mm), poses/<name>.pose.txt,
    intrinsics.txt, splits/mapping.txt and splits/query.txt. Names are frame-000000, ...; the
    query frames come in blocks along the trajectory. Deterministic in ``seed``."""
    poses = random_camera_path(scene, n_mapping + n_query, seed)
    return _write_frames(scene, out_dir, poses, query_mask(n_mapping, n_query), width=width,
                         height=height, K=K, grey=grey, image_ext=image_ext, with_depth=with_depth)


def write_revisit_folder(scene: Scene, out_dir: str | Path, *, n_mapping: int, n_query: int,
                         width: int = 640, height: int = 480, K: np.ndarray | None = None,
                         seed: int = 0, grey: bool = False, image_ext: str = ".png",
                         with_depth: bool = True, **revisit) -> Path:
    """A mapping trajectory (``random_camera_path``, seed ``seed``) and a query drive that passes
    again along a stretch of it (``revisit_path``, seed ``seed + 1``; ``revisit``: its keyword
    options), in the layout of ``write_scene_folder``: so every query frame sees a mapped place
    from a new pose. The mapping frames come first (frame-000000, ...), then the query drive's
    in its order."""
    mapping = random_camera_path(scene, n_mapping, seed)
    query = revisit_path(scene, mapping, n_query, seed + 1, **revisit) if n_query else []
    is_query = np.arange(n_mapping + n_query) >= n_mapping
    return _write_frames(scene, out_dir, mapping + query, is_query, width=width, height=height,
                         K=K, grey=grey, image_ext=image_ext, with_depth=with_depth)


def write_drive_folder(scene: Scene, out_dir: str | Path, *, n_mapping: int, n_query: int,
                       width: int = 640, height: int = 480, K: np.ndarray | None = None,
                       seed: int = 0, query_lateral_m: float = 0.3, grey: bool = False,
                       image_ext: str = ".png", with_depth: bool = False) -> Path:
    """Two forward drives down a ``corridor_scene`` (``drive_path``) in the layout of
    ``write_scene_folder``: the mapping frames from one drive on the centre line (seed
    ``seed``), the query frames from a second one ``query_lateral_m`` to the side with its own
    sway and heading jitter (seed ``seed + 1``). Frames are named in order along the corridor,
    so the query frames lie interleaved with the mapping ones. No depth/ by default."""
    mapping = drive_path(scene, n_mapping, seed=seed)
    query = drive_path(scene, n_query, lateral_m=query_lateral_m, seed=seed + 1) if n_query else []
    poses = mapping + query
    order = np.argsort([T[0, 3] for T in poses], kind="stable")
    is_query = np.arange(len(poses)) >= n_mapping
    return _write_frames(scene, out_dir, [poses[i] for i in order], is_query[order], width=width,
                         height=height, K=K, grey=grey, image_ext=image_ext, with_depth=with_depth)


def _write_frames(scene: Scene, out_dir: str | Path, poses: list[np.ndarray],
                  is_query: np.ndarray, *, width: int, height: int, K: np.ndarray | None,
                  grey: bool, image_ext: str, with_depth: bool, progress: bool = False) -> Path:
    """Render ``poses`` as frame-000000, ... into a scene folder; ``is_query`` (N,) bool picks
    each frame's split; ``progress``: a tqdm bar."""
    if image_ext not in (".png", ".jpg"):
        raise ValueError(f"image_ext must be '.png' or '.jpg', got {image_ext!r}")
    out = Path(out_dir)
    for sub in ("rgb", "poses", "splits") + (("depth",) if with_depth else ()):
        (out / sub).mkdir(parents=True, exist_ok=True)
    K = default_intrinsics(width, height) if K is None else np.asarray(K, float)
    names = [f"frame-{i:06d}" for i in range(len(poses))]
    frames = zip(names, poses)
    if progress:
        from tqdm import tqdm
        frames = tqdm(frames, total=len(names), desc="render", unit="img", dynamic_ncols=True)
    for name, T in frames:
        rgb, depth = render(scene, K, T, width, height)
        img = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY if grey else cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(out / "rgb" / f"{name}.color{image_ext}"), img,
                    [cv2.IMWRITE_JPEG_QUALITY, 95] if image_ext == ".jpg" else [])
        if with_depth:
            mm = np.clip(np.round(depth * 1000), 0, 65535).astype(np.uint16)
            cv2.imwrite(str(out / "depth" / f"{name}.depth.png"), mm)
        np.savetxt(out / "poses" / f"{name}.pose.txt", T, fmt="%.9f")
    np.savetxt(out / "intrinsics.txt", K, fmt="%.9f")
    for split, names_ in (("mapping", [n for n, q in zip(names, is_query) if not q]),
                          ("query", [n for n, q in zip(names, is_query) if q])):
        (out / "splits" / f"{split}.txt").write_text("".join(f"{n}\n" for n in names_))
    return out
