"""Cameras in a ``Scene``: ``look_pose``, handheld-like trajectories (``random_camera_path``),
second passes along a trajectory (``revisit_path``), overlapping view pairs
(``random_view_pair``), forward drives down a ``corridor_scene`` (``drive_path``) and
Kinect-like intrinsics (``default_intrinsics``).

Cameras use OpenCV axes (x right, y down, z forward); poses are 4x4 float64 ``map_from_cam``;
units are metres.
"""
from __future__ import annotations

import math

import numpy as np

from ..geometry import make_pose, pose_error
from .raycast import cast_rays, clearance
from .scene import Scene


def default_intrinsics(width: int, height: int) -> np.ndarray:
    """Kinect-like K (focal 525 px at 640 wide), principal point at the image centre."""
    f = 525.0 * width / 640
    return np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]])


def look_pose(position: np.ndarray, yaw: float, pitch: float, roll: float = 0.0) -> np.ndarray:
    """map_from_cam of a camera at ``position`` looking along heading ``yaw`` (rad, from map x
    towards y), tilted up by ``pitch`` and rolled by ``roll`` (clockwise as seen from behind)."""
    cp = math.cos(pitch)
    f = np.array([cp * math.cos(yaw), cp * math.sin(yaw), math.sin(pitch)])
    right = np.cross(f, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(f, right)
    c, s = math.cos(roll), math.sin(roll)
    return make_pose(np.stack([c * right + s * down, c * down - s * right, f], 1), position)


def _free_point(rng, scene, margin, height):
    """A random point (3,) at least ``margin`` from every surface, its z within ``height``."""
    for _ in range(1000):
        p = np.array([*(rng.uniform(-0.5, 0.5, 2) * scene.size[:2]), rng.uniform(*height)])
        if clearance(scene, p)[0] >= margin:
            return p
    raise RuntimeError("no free space for a camera in this scene")


def _segment_clear(scene, a, b, margin) -> bool:
    """Whether the segment a-b stays ``margin`` away from every surface (2 cm sampling)."""
    n = max(2, int(np.linalg.norm(b - a) / 0.02) + 1)
    return bool(clearance(scene, np.linspace(a, b, n)).min() >= margin)


def _look_target(rng, scene, p, prev_yaw):
    """(yaw, pitch) towards a random point of the room at least 1.5 m away, turning at most
    100 degrees from ``prev_yaw`` when one is given."""
    best = None
    for _ in range(12):
        q = np.array([*(rng.uniform(-0.45, 0.45, 2) * scene.size[:2]), rng.uniform(0.2, 1.6)])
        v = q - p
        dist = math.hypot(v[0], v[1])
        yaw = math.atan2(v[1], v[0])
        if prev_yaw is not None:
            yaw = prev_yaw + (yaw - prev_yaw + np.pi) % (2 * np.pi) - np.pi
            if abs(yaw - prev_yaw) > np.radians(100):
                continue
        if best is None or dist > best[0]:
            best = (dist, yaw, math.atan2(v[2], max(dist, 1e-6)))
        if dist >= 1.5:
            break
    if best is None:
        return prev_yaw, 0.0
    return best[1], float(np.clip(best[2], -0.35, 0.15))


def _waypoints(rng, scene, n, margin, height):
    """(n, 6) control points x, y, z, yaw, pitch, roll of a collision-free walk, or None."""
    p = _free_point(rng, scene, margin, height)
    heading = rng.uniform(-np.pi, np.pi)
    yaw, pitch = _look_target(rng, scene, p, None)
    rows = [[*p, yaw, pitch, 0.0]]
    for _ in range(n - 1):
        for k in range(40):
            h = heading + rng.uniform(-1, 1) * (1.2 if k < 20 else np.pi)
            step = rng.uniform(0.4, 1.0)
            q = p + [step * math.cos(h), step * math.sin(h), rng.normal(0, 0.15)]
            q[2] = np.clip(q[2], *height)
            if _segment_clear(scene, p, q, margin):
                break
        else:
            return None
        p, heading = q, h
        yaw, pitch = _look_target(rng, scene, p, yaw)
        rows.append([*p, yaw, pitch + rng.normal(0, 0.04), rng.normal(0, 0.04)])
    return np.array(rows)


def _bspline(ctrl: np.ndarray, per_segment: int) -> np.ndarray:
    """Uniform cubic B-spline through control rows (n, k): dense samples (m, k)."""
    t = np.linspace(0, 1, per_segment, endpoint=False)
    B = np.stack([(1 - t) ** 3, 3 * t ** 3 - 6 * t ** 2 + 4,
                  -3 * t ** 3 + 3 * t ** 2 + 3 * t + 1, t ** 3], 1) / 6
    return np.concatenate([B @ ctrl[i:i + 4] for i in range(len(ctrl) - 3)])


def random_camera_path(scene: Scene, n_frames: int, seed: int, *, step_m: float = 0.07,
                       step_deg: float = 4.0, min_clearance: float = 0.3,
                       height: tuple[float, float] = (0.8, 1.9)) -> list[np.ndarray]:
    """A smooth handheld-like trajectory: ``n_frames`` map_from_cam poses, each about
    ``step_m`` / ``step_deg`` (scaled by a slowly varying speed, 0.65-1.35) from the last,
    at least ``min_clearance`` from every surface, heights in ``height``, small pitch and roll."""
    if n_frames < 1:
        raise ValueError(f"n_frames must be positive, got {n_frames}")
    rng = np.random.default_rng(seed)
    k = np.arange(n_frames)
    speed = 1 + 0.35 * np.sin(2 * np.pi * k / rng.uniform(40, 120) + rng.uniform(0, 2 * np.pi))
    targets = np.concatenate([[0.0], np.cumsum(speed[:-1])])
    n_way = int(math.ceil(n_frames * step_m * 1.35 / 0.5)) + 4
    for _ in range(100):
        ctrl = _waypoints(rng, scene, n_way, min_clearance + 0.1, height)
        if ctrl is None:
            continue
        dense = _bspline(ctrl, 60)
        diff = np.diff(dense, axis=0)
        motion = np.hypot(np.linalg.norm(diff[:, :3], axis=1) / step_m,
                          np.linalg.norm(diff[:, 3:], axis=1) / np.radians(step_deg))
        arc = np.concatenate([[0.0], np.cumsum(motion)])
        if arc[-1] >= targets[-1] and clearance(scene, dense[:, :3]).min() >= min_clearance:
            break
    else:
        raise RuntimeError("could not fit a collision-free camera path in this scene")
    samples = np.stack([np.interp(targets, arc, dense[:, j]) for j in range(6)], 1)
    return [look_pose(s[:3], *s[3:]) for s in samples]


def look_angles(map_from_cam: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) of a camera pose, the inverse of ``look_pose`` (up to its position)."""
    f = map_from_cam[:3, 2]
    right = np.cross(f, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(f, right)
    x = map_from_cam[:3, 0]
    return (math.atan2(f[1], f[0]), math.asin(float(np.clip(f[2], -1, 1))),
            math.atan2(float(x @ down), float(x @ right)))


def _smooth_wobble(rng, n: int, wavelengths: tuple[float, float]) -> np.ndarray:
    """(n,) a smooth function of the frame index, peak magnitude 1 (three sines)."""
    k = np.arange(n)[:, None]
    lam, phase = rng.uniform(*wavelengths, 3), rng.uniform(0, 2 * np.pi, 3)
    f = (rng.uniform(0.5, 1, 3) * np.sin(2 * np.pi * k / lam + phase)).sum(1)
    return f / max(np.abs(f).max(), 1e-9)


def revisit_path(scene: Scene, path: list[np.ndarray], n_frames: int, seed: int, *,
                 stride: tuple[float, float] = (0.8, 1.25), offset_m: float = 0.12,
                 offset_deg: float = 5.0, min_clearance: float = 0.25) -> list[np.ndarray]:
    """A second pass along a stretch of ``path`` (map_from_cam poses a few cm apart, e.g. a
    mapping drive from ``random_camera_path``), as a robot driving again through a mapped
    region: ``n_frames`` poses in the same direction, at a slowly varying speed (``stride``
    times the spacing of ``path``'s poses per frame, starting between two of them), wandering
    smoothly off it by up to ``offset_m`` sideways and a third of it up or down, and by up to
    ``offset_deg`` in heading (pitch and roll by half of it), over wavelengths of 12-40 frames:
    new poses near the path, none a copy of its poses. At least ``min_clearance`` from every
    surface; deterministic in ``seed``."""
    if n_frames < 1:
        raise ValueError(f"n_frames must be positive, got {n_frames}")
    params = np.array([[*T[:3, 3], *look_angles(T)] for T in path])
    params[:, 3:] = np.unwrap(params[:, 3:], axis=0)
    rng = np.random.default_rng(seed)
    for _ in range(100):
        steps = rng.uniform(*stride) * (1 + 0.2 * _smooth_wobble(rng, n_frames, (15, 40)))
        u = np.concatenate([[0.0], np.cumsum(steps[:-1])])
        if u[-1] > len(path) - 3:
            raise ValueError(f"path has {len(path)} poses: too short for {n_frames} frames "
                             f"at strides {stride}")
        u += rng.uniform(1, len(path) - 2 - u[-1])
        s = np.stack([np.interp(u, np.arange(len(path)), params[:, j]) for j in range(6)], 1)
        side = np.stack([-np.sin(s[:, 3]), np.cos(s[:, 3]), np.zeros(n_frames)], 1)
        s[:, :3] += offset_m * _smooth_wobble(rng, n_frames, (12, 40))[:, None] * side
        s[:, 2] += offset_m / 3 * _smooth_wobble(rng, n_frames, (12, 40))
        for j, k in ((3, 1.0), (4, 0.5), (5, 0.5)):
            s[:, j] += math.radians(offset_deg) * k * _smooth_wobble(rng, n_frames, (12, 40))
        if clearance(scene, s[:, :3]).min() >= min_clearance:
            return [look_pose(r[:3], *r[3:]) for r in s]
    raise RuntimeError("could not fit a collision-free second pass along this path")


def random_view_pair(scene: Scene, seed: int, *, baseline: tuple[float, float] = (0.05, 1.0),
                     max_angle_deg: float = 30.0, min_clearance: float = 0.3,
                     height: tuple[float, float] = (0.8, 1.9)) -> tuple[np.ndarray, np.ndarray]:
    """Two map_from_cam poses that see a common surface point near both image centres, with
    camera centres ``baseline`` metres apart and relative rotation below ``max_angle_deg``."""
    rng = np.random.default_rng(seed)
    for _ in range(500):
        pa = _free_point(rng, scene, min_clearance, height)
        Ta = look_pose(pa, rng.uniform(-np.pi, np.pi), rng.uniform(-0.4, 0.15), rng.normal(0, 0.05))
        ray = Ta[:3, :3] @ [rng.normal(0, 0.15), rng.normal(0, 0.1), 1.0]
        depth = float(cast_rays(scene, pa, ray)[0])
        if depth < 0.8:
            continue
        target = pa + depth * ray
        step = rng.normal(size=3) * [1, 1, 0.3]
        pb = pa + rng.uniform(*baseline) * step / np.linalg.norm(step)
        if not (height[0] <= pb[2] <= height[1] and _segment_clear(scene, pa, pb, min_clearance)):
            continue
        v = target - pb
        Tb = look_pose(pb, math.atan2(v[1], v[0]) + rng.normal(0, 0.08),
                       math.atan2(v[2], math.hypot(v[0], v[1])) + rng.normal(0, 0.06),
                       rng.normal(0, 0.1))
        if pose_error(Ta, Tb)[1] > max_angle_deg:
            continue
        if cast_rays(scene, pb, v)[0] >= 1 - 0.01 / np.linalg.norm(v):  # target seen from b
            return Ta, Tb
    raise RuntimeError("could not find an overlapping view pair in this scene")


def drive_path(scene: Scene, n_frames: int, *, lateral_m: float = 0.0, height_m: float = 1.4,
               seed: int = 0, sway_m: float = 0.05, yaw_deg: float = 3.0) -> list[np.ndarray]:
    """``n_frames`` map_from_cam poses of a camera driven forward down a ``corridor_scene``
    (along +x, looking along +x), from 1 m after its -x end to 4 m before its +x end, at a
    slowly varying speed (+-15 %). The camera sways smoothly sideways around y = ``lateral_m``
    by up to ``sway_m`` (and bobs by a third of that around z = ``height_m``); its heading
    wanders by up to ``yaw_deg`` (pitch by a third, roll by a sixth of it), all over wavelengths
    of 3-12 m. Deterministic in ``seed``; raises ValueError where the path comes within 0.2 m
    of a surface."""
    if n_frames < 1:
        raise ValueError(f"n_frames must be positive, got {n_frames}")
    rng = np.random.default_rng(seed)
    length = float(scene.size[0])
    start, end = -length / 2 + 1.0, length / 2 - 4.0
    u = np.linspace(0.0, 1.0, n_frames)
    speed = 1 + 0.15 * np.sin(2 * np.pi * u * rng.uniform(1, 3) + rng.uniform(0, 2 * np.pi))
    s = np.concatenate([[0.0], np.cumsum(speed[:-1])])
    x = start + (end - start) * (s / s[-1] if n_frames > 1 else s)

    def wobble() -> np.ndarray:
        """A smooth function of x with peak magnitude 1 (three sines, wavelengths 3-12 m)."""
        lam, phase, amp = rng.uniform(3, 12, 3), rng.uniform(0, 2 * np.pi, 3), rng.uniform(0.5, 1, 3)
        f = (amp * np.sin(2 * np.pi * x[:, None] / lam + phase)).sum(1)
        return f / max(np.abs(f).max(), 1e-9)

    y = lateral_m + sway_m * wobble()
    z = height_m + sway_m / 3 * wobble()
    yaw, pitch, roll = (math.radians(yaw_deg) * k * wobble() for k in (1, 1 / 3, 1 / 6))
    centres = np.stack([x, y, z], 1)
    if clearance(scene, centres).min() < 0.2:
        raise ValueError("the drive comes within 0.2 m of a surface: is this a corridor_scene "
                         "with a free centre line?")
    return [look_pose(c, a, b, r) for c, a, b, r in zip(centres, yaw, pitch, roll)]
