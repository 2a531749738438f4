"""Vectorised ray casting of a ``Scene``: first hits (``cast_rays``), the distance to the
nearest surface (``clearance``) and rendered views (``render``: exact depth, mip-mapped
texturing, Lambertian shading).

Cameras use OpenCV axes (x right, y down, z forward); poses are 4x4 float64 ``map_from_cam``;
units are metres.
"""
from __future__ import annotations

import math

import numpy as np

from ..geometry import invert_pose, pixel_rays
from .scene import Lighting, Scene
from .textures import TEX

_LEVELS = TEX.bit_length()  # mip levels 256, 128, ..., 1


def _rotate_in(cos, sin, x, y):
    """Map-frame (x, y) to a box frame rotated by yaw (given by cos, sin)."""
    return cos * x + sin * y, cos * y - sin * x


def _slabs(o, d, half):
    """Per axis (t_min, t_max) of the ray's parameter between the box's two planes."""
    out = []
    for oi, di, hi in zip(o, d, half):
        inv = 1.0 / di
        ta, tb = (-hi - oi) * inv, (hi - oi) * inv
        out.append((np.minimum(ta, tb), np.maximum(ta, tb)))
    return out


def _cast(scene: Scene, origin: np.ndarray, d: tuple, regions=None):
    """Nearest hit of rays ``origin + t * d`` (d: three float32 arrays of one shape) with the
    scene: (t, box index), both of d's shape. ``regions[i]`` is the index expression of the rays
    that can hit box i (None: none)."""
    P = scene.packed()
    with np.errstate(divide="ignore", invalid="ignore"):
        o = [float(x) for x in origin - P["centre"][0]]
        slabs = _slabs(o, d, P["half"][0])
        t = np.minimum(np.minimum(slabs[0][1], slabs[1][1]), slabs[2][1])  # leave the room
        idx = np.zeros(t.shape, np.int16)
        for i in range(1, len(scene.boxes)):
            sl = Ellipsis if regions is None else regions[i]
            if sl is None:
                continue
            c, s = P["cos"][i], P["sin"][i]
            q = [float(x) for x in origin - P["centre"][i]]
            o = (*_rotate_in(c, s, q[0], q[1]), q[2])
            dz = d[2][sl]
            (a0, b0), (a1, b1), (a2, b2) = _slabs(o, (*_rotate_in(c, s, d[0][sl], d[1][sl]), dz),
                                                  P["half"][i])
            near = np.maximum(np.maximum(a0, a1), a2)
            far = np.minimum(np.minimum(b0, b1), b2)
            tv = t[sl]
            hit = (near <= far) & (near > 0) & (near < tv)
            np.copyto(tv, near, where=hit)
            np.copyto(idx[sl], i, where=hit)
    return t, idx


def cast_rays(scene: Scene, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Parameter t (N,) of the first surface hit by rays ``origin + t * dirs`` (dirs (N, 3),
    map frame; origin (3,) inside the room)."""
    dirs = np.asarray(dirs, np.float32).reshape(-1, 3)
    return _cast(scene, np.asarray(origin, float), tuple(dirs.T.copy()))[0]


def clearance(scene: Scene, points: np.ndarray) -> np.ndarray:
    """Distance (N,) in metres from points (N, 3) to the nearest surface; negative inside an
    object or outside the room."""
    p = np.atleast_2d(np.asarray(points, float))
    half = scene.size / 2
    lo, hi = np.array([-half[0], -half[1], 0.0]), np.array([half[0], half[1], scene.size[2]])
    dist = np.minimum((p - lo).min(1), (hi - p).min(1))
    for b in scene.boxes[1:]:
        q = p - b.centre
        c, s = math.cos(b.yaw), math.sin(b.yaw)
        e = np.abs(np.stack([*_rotate_in(c, s, q[:, 0], q[:, 1]), q[:, 2]], 1)) - b.half
        dist = np.minimum(dist, np.linalg.norm(np.maximum(e, 0), axis=1) + np.minimum(e.max(1), 0))
    return dist


def _regions(scene: Scene, cam_from_map: np.ndarray, K: np.ndarray, width: int, height: int):
    """Per box, the pixel rectangle (index expression) its projection may cover, or None."""
    pc = scene.packed()["corners"] @ cam_from_map[:3, :3].T + cam_from_map[:3, 3]  # (B, 8, 3)
    z = pc[..., 2]
    uv = pc[..., :2] / np.maximum(z, 1e-3)[..., None] @ K[:2, :2].T + K[:2, 2]
    lo = np.maximum(np.floor(uv.min(1)).astype(int) - 1, 0)
    hi = np.minimum(np.ceil(uv.max(1)).astype(int) + 2, (width, height))
    out = [Ellipsis]
    for i in range(1, len(scene.boxes)):
        if np.all(z[i] <= 0):
            out.append(None)
        elif np.any(z[i] < 1e-3):
            out.append(Ellipsis)
        elif np.all(hi[i] > lo[i]):
            out.append((slice(lo[i, 1], hi[i, 1]), slice(lo[i, 0], hi[i, 0])))
        else:
            out.append(None)
    return out


# ------------------------------------------------------------------------- texturing, shading

def _edge_coords(x: np.ndarray, mirrored: np.ndarray) -> np.ndarray:
    """Level-0 texel coordinates (texel centres at integers) wrapped into [0, TEX] edge units
    (texel i spans [i, i + 1)), by mirrored or plain repetition; valid at every mip level."""
    x = x + 0.5
    return np.where(mirrored, TEX - np.abs(np.mod(x, 2 * TEX) - TEX), np.mod(x, TEX))


def _taps(P: dict, tex, xe, ye, mirrored, level):
    """The 4 bilinear taps (pyramid index (N,), weight (N,)) at wrapped edge coordinates
    (xe, ye) in mip ``level`` (N,): mirrored textures clamp at the edge, others wrap around."""
    size = (TEX >> level).astype(np.int32)
    inv = 1.0 / (1 << level).astype(np.float32)
    xl, yl = xe * inv - 0.5, ye * inv - 0.5
    x0, y0 = np.floor(xl), np.floor(yl)
    fx, fy = xl - x0, yl - y0
    x0, y0 = x0.astype(np.int32), y0.astype(np.int32)
    top = size - 1

    def wrap(i):  # i in [-1, size]
        return np.where(mirrored, np.clip(i, 0, top), i & top)

    i0, i1 = wrap(x0), wrap(x0 + 1)
    base = P["level_offset"][level] + tex * size * size
    r0, r1 = base + wrap(y0) * size, base + wrap(y0 + 1) * size
    return ((r0 + i0, (1 - fx) * (1 - fy)), (r0 + i1, fx * (1 - fy)),
            (r1 + i0, (1 - fx) * fy), (r1 + i1, fx * fy))


def _sample(P: dict, tex, x, y, lod):
    """Trilinear (mip-mapped) RGB (N, 3) in [0, 255] of textures ``tex`` (N,) at level-0 texel
    coordinates (x, y), repeated beyond the texture, at mip level ``lod``."""
    mirrored = P["mirrored"][tex]
    xe, ye = _edge_coords(x, mirrored), _edge_coords(y, mirrored)
    l0 = np.floor(lod).astype(np.int32)
    w = lod - l0.astype(np.float32)
    out = np.zeros((len(x), 4), np.float32)
    for level, lw in ((l0, 1 - w), (np.minimum(l0 + 1, _LEVELS - 1), w)):
        for index, weight in _taps(P, tex, xe, ye, mirrored, level):
            rgba = P["pyramid"].take(index).view(np.uint8).reshape(-1, 4).astype(np.float32)
            rgba *= (weight * lw)[:, None]
            out += rgba
    return out[:, :3]


def _surface(P: dict, idx, p):
    """Face index, visible normal (3 arrays) and face (u, v) in metres of hit points ``p``."""
    c, s = P["cos"][idx], P["sin"][idx]
    q = [p[k] - P["centre"][idx, k] for k in range(3)]
    lx, ly = _rotate_in(c, s, q[0], q[1])
    lz = q[2]
    ex, ey, ez = (np.abs(v) - P["half"][idx, k] for k, v in enumerate((lx, ly, lz)))
    a = np.where(ex >= ey, np.where(ex >= ez, 0, 2), np.where(ey >= ez, 1, 2))
    coord = np.choose(a, (lx, ly, lz))
    positive = coord > 0
    face = idx.astype(np.int32) * 6 + a * 2 + positive
    sn = np.where(positive ^ (idx == 0), 1.0, -1.0).astype(np.float32)  # the room shows inside
    nlx, nly, nz = sn * (a == 0), sn * (a == 1), sn * (a == 2)
    n = (c * nlx - s * nly, s * nlx + c * nly, nz)
    u = np.where(a == 0, sn * ly, np.where(a == 1, -sn * lx, lx))  # upright, not mirrored
    v = np.where(a == 2, ly, -lz)
    return face, n, u, v


def _light(lighting: Lighting, p, n):
    """Irradiance (N, 3) at points p with normals n (tuples of three (N,) arrays)."""
    out = lighting.ambient.astype(np.float32) * (0.9 + 0.1 * n[2])[:, None]
    for light in lighting.lights:
        vec = [float(x) for x in light.vector]
        if light.directional:
            lam = -(n[0] * vec[0] + n[1] * vec[1] + n[2] * vec[2])
            fall = 1.0
        else:
            L = [vec[k] - p[k] for k in range(3)]
            dist = np.sqrt(L[0] ** 2 + L[1] ** 2 + L[2] ** 2)
            lam = (n[0] * L[0] + n[1] * L[1] + n[2] * L[2]) / dist
            fall = 1.0 / (1.0 + (dist / float(light.falloff_m)) ** 2)
        out += (np.maximum(lam, 0) * fall)[:, None] * light.colour.astype(np.float32)
    return out * float(lighting.gain)


def render(scene: Scene, K: np.ndarray, map_from_cam: np.ndarray, width: int, height: int, *,
           lighting: Lighting | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Ray-cast one view: (rgb HxWx3 uint8, depth HxW float32 metres, camera-frame z).

    K: 3x3 intrinsics, pixel (u, v)'s centre at (u, v). map_from_cam: 4x4, camera inside the
    room. lighting: replaces ``scene.lighting`` (see ``vary_lighting``)."""
    K, T = np.asarray(K, float), np.asarray(map_from_cam, float)
    uv = np.stack(np.meshgrid(np.arange(width), np.arange(height)), -1)
    rays = pixel_rays(K, uv) @ T[:3, :3].T  # map-frame rays (H, W, 3), camera z = 1
    d = tuple(rays[..., k].astype(np.float32) for k in range(3))
    origin = T[:3, 3]
    t, idx = _cast(scene, origin, d, _regions(scene, invert_pose(T), K, width, height))
    depth = t.astype(np.float32)

    P = scene.packed()
    t, idx = t.ravel(), idx.ravel()
    d = tuple(x.ravel() for x in d)
    p = tuple((origin[k] + t * d[k]).astype(np.float32) for k in range(3))
    face, n, fu, fv = _surface(P, idx, p)
    scale = P["scale"][face]
    x = (fu + P["offset"][face, 0]) * scale
    y = (fv + P["offset"][face, 1]) * scale
    dn = np.sqrt(d[0] ** 2 + d[1] ** 2 + d[2] ** 2)
    cos_in = np.abs(n[0] * d[0] + n[1] * d[1] + n[2] * d[2]) / dn
    # texture footprint of a pixel, between its narrow and its stretched (grazing) extent
    texels_per_px = scale * t / (math.sqrt(K[0, 0] * K[1, 1]) * dn)
    texels_per_px /= np.maximum(cos_in, 0.05) ** 0.7
    lod = np.clip(np.log2(np.maximum(texels_per_px, 1e-6)) + 0.25, 0, _LEVELS - 1)
    albedo = _sample(P, P["tex"][face], x, y, lod) * P["tint"][face]
    rgb = albedo * _light(lighting or scene.lighting, p, n)
    rgb = np.clip(rgb + 0.5, 0, 255).astype(np.uint8).reshape(height, width, 3)
    return rgb, depth
