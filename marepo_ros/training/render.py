"""Synthetic textured rooms with exact depth and poses, rendered by vectorised ray casting.

Map frame: z up, floor at z = 0, the room centred on the origin in x and y. Cameras use OpenCV
axes (x right, y down, z forward); poses are 4x4 float64 ``map_from_cam``; units are metres.

``random_scene`` furnishes a room of 3-8 m; ``corridor_scene`` builds a 40 m corridor along x,
driven forward by ``drive_path`` (``write_drive_folder``: a mapping and a query drive, no depth).

A scene is a list of boxes, each rotated about z only: ``boxes[0]`` is the room, seen from
inside; the others (furniture, shelves, pictures, small items) are seen from outside. Faces are
ordered -x, +x, -y, +y, -z, +z in the box's own axes; each face has its own texture, texture
scale, offset and tint. Textures are RGB float32 in [0, 1]: crops of the photographs shipped
inside scikit-image's wheel, and procedural ones (plaster, wood, tiles, wallpaper, fabric,
speckle, abstract shapes, cabinet doors), each kind giving a new variant for every seed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ..geometry import invert_pose, make_pose, pixel_rays, pose_error

TEX = 256  # texture side in texels
_LEVELS = TEX.bit_length()  # mip levels 256, 128, ..., 1

# --------------------------------------------------------------------------------- textures

_PICTURES = ("astronaut", "coffee", "chelsea", "rocket", "camera", "clock", "stereo_motorcycle",
             "hubble_deep_field", "immunohistochemistry", "text", "page", "coins")
_SURFACES = ("brick", "grass", "gravel", "moon")

_WALL = ((0.93, 0.91, 0.86), (0.86, 0.86, 0.83), (0.78, 0.82, 0.86), (0.80, 0.84, 0.76),
         (0.92, 0.82, 0.70), (0.70, 0.72, 0.74), (0.96, 0.96, 0.95), (0.66, 0.58, 0.52))
_WOOD = ((0.55, 0.36, 0.20), (0.72, 0.52, 0.32), (0.42, 0.27, 0.16), (0.82, 0.68, 0.50),
         (0.32, 0.21, 0.13))
_ACCENT = ((0.62, 0.16, 0.13), (0.16, 0.26, 0.46), (0.22, 0.42, 0.30), (0.86, 0.66, 0.22),
           (0.14, 0.14, 0.15), (0.46, 0.46, 0.50), (0.76, 0.46, 0.36), (0.30, 0.50, 0.62),
           (0.92, 0.92, 0.90), (0.50, 0.30, 0.45))
_ANY = _WALL + _WOOD + _ACCENT


@lru_cache(maxsize=None)
def _photos(group: str) -> tuple[np.ndarray, ...]:
    """The scikit-image sample images of a group that load offline, RGB float32 in [0, 1]."""
    from skimage import data

    out = []
    for name in _PICTURES if group == "photo" else _SURFACES:
        try:
            img = getattr(data, name)()
        except Exception:  # noqa: BLE001 - images that need a download (or are absent) are skipped
            continue
        img = np.asarray(img[0] if isinstance(img, tuple) else img)
        img = img.astype(np.float32) / (255.0 if img.dtype == np.uint8 else 1.0)
        out.append(np.repeat(img[..., None], 3, 2) if img.ndim == 2 else img[..., :3])
    return tuple(out)


def _noise(rng: np.random.Generator, beta: float = 2.0, aspect: float = 1.0) -> np.ndarray:
    """Tileable fractal noise (TEX x TEX), zero mean, unit std, power spectrum 1/f^beta.

    ``aspect`` > 1 damps variation along x, giving streaks along x (wood grain, brushing)."""
    fy = np.fft.fftfreq(TEX)[:, None]
    fx = np.fft.rfftfreq(TEX)[None, :] * aspect
    f = np.hypot(fx, fy)
    f[0, 0] = 1.0
    spec = np.fft.rfft2(rng.standard_normal((TEX, TEX))) / f ** (beta / 2)
    spec[0, 0] = 0.0
    n = np.fft.irfft2(spec, s=(TEX, TEX))
    return (n / n.std()).astype(np.float32)


def _colour(rng: np.random.Generator, palette=_ANY) -> np.ndarray:
    """A palette colour (3,) with per-channel and brightness jitter."""
    c = np.asarray(palette[rng.integers(len(palette))], np.float32)
    return np.clip(c * rng.uniform(0.88, 1.12, 3) * rng.uniform(0.85, 1.1), 0.02, 1.0)


def _shade(colour: np.ndarray, n: np.ndarray, amount: float) -> np.ndarray:
    """``colour`` (3,) modulated by noise ``n`` (HxW): HxWx3."""
    return colour * (1.0 + amount * n[..., None])


_CEILING = ((0.97, 0.97, 0.96), (0.95, 0.94, 0.90), (0.90, 0.90, 0.90))


def _plaster(rng, palette=_WALL):
    img = _shade(_colour(rng, palette), _noise(rng, 2.6), rng.uniform(0.02, 0.08))
    img *= 1.0 + rng.uniform(0.01, 0.04) * _noise(rng, 0.3)[..., None]
    if rng.random() < 0.4:  # faint stains and scuffs
        stain = np.clip(_noise(rng, 3.0) - rng.uniform(1.2, 2.0), 0, None)
        img *= 1.0 - rng.uniform(0.05, 0.2) * np.minimum(stain, 1)[..., None]
    return img


def _wood(rng, planks=True):
    base = _colour(rng, _WOOD)
    warp = _noise(rng, 3.0, aspect=rng.uniform(4, 10))
    grain = _noise(rng, 1.4, aspect=rng.uniform(15, 40))  # fine streaks along x
    y = np.arange(TEX, dtype=np.float32)[:, None] / TEX
    rings = 0.5 + 0.5 * np.sin(2 * np.pi * (y * rng.integers(6, 20) + 0.25 * warp))
    t = np.clip(0.55 * rings ** 3 + 0.15 * grain + 0.25, 0, 1)
    img = base * (0.7 + 0.5 * t[..., None])
    n_planks = int(rng.integers(1, 6)) if planks else 1
    if n_planks > 1:  # floorboards: per-plank shift and brightness, dark seams
        edges = np.linspace(0, TEX, n_planks + 1).astype(int)
        for a, b in zip(edges[:-1], edges[1:]):
            img[a:b] = np.roll(img[a:b], int(rng.integers(TEX)), axis=1) * rng.uniform(0.85, 1.15)
            img[a:a + 2] *= 0.55
            img[a:b, int(rng.integers(TEX)):][:, :2] *= 0.55
    return img


def _tiles(rng):
    n = 2 * int(rng.integers(1, 5))  # even, so that the pattern tiles
    size = TEX / n
    grout = rng.uniform(1.0, 5.0)
    yy, xx = np.mgrid[0:TEX, 0:TEX].astype(np.float32)
    row = (yy // size).astype(int)
    xs = xx + (row % 2) * size / 2 * (rng.random() < 0.3)  # optional brick bond
    col = (xs // size).astype(int) % n
    c1 = _colour(rng)
    c2 = _colour(rng) if rng.random() < 0.35 else c1  # checkerboard tiling
    tile = np.where(((row + col) % 2 == 0)[..., None], c1, c2)
    tile *= rng.uniform(0.9, 1.1, (n, n))[row, col][..., None]
    tile = tile * (1.0 + 0.04 * _noise(rng, 1.5)[..., None])
    fx, fy = xs % size, yy % size
    in_grout = (np.minimum(fx, size - fx) < grout / 2) | (np.minimum(fy, size - fy) < grout / 2)
    return np.where(in_grout[..., None], _colour(rng, _WALL) * rng.uniform(0.4, 1.0), tile)


def _stripes(rng):
    colours = [_colour(rng) for _ in range(int(rng.integers(2, 4)))]
    widths = rng.uniform(0.3, 1.0, int(rng.integers(4, 17)))
    edges = np.cumsum(widths) / widths.sum() * TEX
    band = np.searchsorted(edges, np.arange(TEX) + 0.5)
    line = np.stack([colours[b % len(colours)] for b in band])  # TEX x 3
    img = np.broadcast_to(line[None], (TEX, TEX, 3)) * (1 + 0.03 * _noise(rng, 1.0))[..., None]
    return img.transpose(1, 0, 2) if rng.random() < 0.3 else img


def _speckle(rng):
    img = np.ascontiguousarray(_shade(_colour(rng), _noise(rng, 2.0), 0.06))
    for _ in range(int(rng.integers(150, 900))):
        x, y, r = (int(v) for v in rng.integers((0, 0, 1), (TEX, TEX, 4)))
        colour = _colour(rng).tolist()
        for dx in (-TEX, 0, TEX):  # wrap dots across the edges so the texture tiles
            for dy in (-TEX, 0, TEX):
                if -r <= x + dx < TEX + r and -r <= y + dy < TEX + r:
                    cv2.circle(img, (x + dx, y + dy), r, colour, -1, cv2.LINE_AA)
    return img


def _blobs(rng):
    img = np.ascontiguousarray(_shade(_colour(rng), _noise(rng, 2.5), 0.08))
    for _ in range(int(rng.integers(5, 40))):
        c, p = _colour(rng).tolist(), rng.integers(0, TEX, 4)
        shape = rng.integers(3)
        if shape == 0:
            axes = tuple(int(a) for a in rng.integers(4, 60, 2))
            cv2.ellipse(img, (int(p[0]), int(p[1])), axes, float(rng.uniform(0, 180)), 0, 360,
                        c, -1, cv2.LINE_AA)
        elif shape == 1:
            cv2.line(img, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), c,
                     int(rng.integers(1, 7)), cv2.LINE_AA)
        else:
            cv2.rectangle(img, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), c, -1)
    return cv2.GaussianBlur(img, (0, 0), 0.7)


def _panel(rng):
    """A cabinet door: frame, bevelled inner panel, handle."""
    img = np.ascontiguousarray(_wood(rng, planks=False) if rng.random() < 0.5 else
                               _shade(_colour(rng), _noise(rng, 2.5), 0.04))
    m = int(rng.integers(18, 60))
    light, dark = (1.25, 1.25, 1.25), (0.6, 0.6, 0.6)
    img[m:TEX - m, m:TEX - m] *= rng.uniform(0.9, 1.05)
    img[m:m + 3, m:TEX - m] *= light
    img[m:TEX - m, m:m + 3] *= light
    img[TEX - m - 3:TEX - m, m:TEX - m] *= dark
    img[m:TEX - m, TEX - m - 3:TEX - m] *= dark
    img[:3] *= 0.4
    img[:, :3] *= 0.4
    x = int(rng.integers(8, max(9, m - 12)))
    cv2.rectangle(img, (x, TEX // 2 - 30), (x + 6, TEX // 2 + 30),
                  (_colour(rng, _ACCENT) * 0.5).tolist(), -1, cv2.LINE_AA)
    return img


def _fabric(rng):
    yy, xx = np.mgrid[0:TEX, 0:TEX].astype(np.float32)
    p = TEX / rng.integers(32, 86)
    weave = np.sin(2 * np.pi * xx / p) * np.sin(2 * np.pi * yy / p)
    img = _shade(_colour(rng), weave + 0.8 * _noise(rng, 1.2), rng.uniform(0.06, 0.14))
    if rng.random() < 0.5:  # tartan: two translucent stripe sets
        period = TEX / rng.integers(2, 6)
        for coord in (xx, yy):
            stripe = ((coord % period) < period * rng.uniform(0.15, 0.4))[..., None]
            img = np.where(stripe, 0.5 * img + 0.5 * _colour(rng), img)
    return img


def _photo(rng, group):
    imgs = _photos(group)
    if not imgs:  # scikit-image without its sample images: fall back to a procedural texture
        return _blobs(rng)
    img = imgs[rng.integers(len(imgs))]
    short = min(img.shape[:2])
    side = int(rng.integers(min(96, short), short + 1))
    y0 = int(rng.integers(img.shape[0] - side + 1))
    x0 = int(rng.integers(img.shape[1] - side + 1))
    crop = cv2.resize(img[y0:y0 + side, x0:x0 + side], (TEX, TEX),
                      interpolation=cv2.INTER_AREA if side > TEX else cv2.INTER_CUBIC)
    if np.allclose(crop[..., 0], crop[..., 1]):  # grey photo: tint it
        crop = crop * (0.45 + 0.55 * _colour(rng))
    return crop * rng.uniform(0.88, 1.12, 3)


_KINDS = {"plaster": _plaster, "ceiling": lambda rng: _plaster(rng, _CEILING), "wood": _wood,
          "tiles": _tiles, "stripes": _stripes,
          "speckle": _speckle, "blobs": _blobs, "panel": _panel, "fabric": _fabric,
          "photo": lambda rng: _photo(rng, "photo"), "surface": lambda rng: _photo(rng, "surface")}
TEXTURE_KINDS = tuple(_KINDS)
_MIRRORED = ("blobs", "panel", "photo", "surface")  # not tileable: repeated mirrored

_ROLES = {  # which kinds of texture a surface gets, with weights
    "wall": {"plaster": 5, "stripes": 1.5, "tiles": 0.8, "surface": 1, "fabric": 0.5,
             "speckle": 0.5, "blobs": 0.7},
    "floor": {"wood": 4, "tiles": 3, "speckle": 1.2, "surface": 1.8},
    "ceiling": {"ceiling": 1},
    "furniture": {"wood": 3, "panel": 1, "plaster": 1, "fabric": 1.5, "photo": 0.7, "blobs": 0.5,
                  "tiles": 0.6, "speckle": 0.6, "surface": 0.4},
    "door": {"panel": 1},
    "top": {"tiles": 1, "speckle": 1, "wood": 1, "surface": 0.8, "plaster": 0.5},
    "picture": {"photo": 4, "blobs": 1},
    "item": {"photo": 3, "blobs": 2, "stripes": 1, "fabric": 1, "speckle": 0.5},
    "rug": {"fabric": 3, "stripes": 1.5, "speckle": 0.5},
}


@lru_cache(maxsize=128)
def make_texture(kind: str, seed: int) -> np.ndarray:
    """Texture ``kind`` (one of ``TEXTURE_KINDS``) variant ``seed``: TEX x TEX x 3 float32 in
    [0, 1], read-only (cached)."""
    rng = np.random.default_rng([seed, TEXTURE_KINDS.index(kind)])
    img = np.clip(_KINDS[kind](rng), 0.0, 1.0).astype(np.float32)
    img.setflags(write=False)
    return img


# ------------------------------------------------------------------------------------ scene

@dataclass(eq=False)
class Box:
    """A box rotated by ``yaw`` (rad) about map z; per-face arrays in order -x, +x, -y, +y, -z, +z.

    centre (3,), half (3,): metres. tex (6,): indices into ``Scene.textures``. scale (6,):
    texels per metre. offset (6, 2): metres added to the face's (u, v) before scaling.
    tint (6, 3): RGB multipliers."""
    centre: np.ndarray
    half: np.ndarray
    yaw: float
    tex: np.ndarray
    scale: np.ndarray
    offset: np.ndarray
    tint: np.ndarray


@dataclass(eq=False)
class Light:
    """A point light at ``vector`` (map frame, metres) with intensity / (1 + (d / falloff_m)^2),
    or a directional one shining along ``vector``. colour: (3,) RGB intensity."""
    vector: np.ndarray
    colour: np.ndarray
    directional: bool = False
    falloff_m: float = 3.0


@dataclass(eq=False)
class Lighting:
    """Shading = gain * (ambient * (0.9 + 0.1 n_z) + sum of Lambertian lights); ambient (3,)."""
    ambient: np.ndarray
    lights: tuple[Light, ...]
    gain: float = 1.0


@dataclass(eq=False)
class Scene:
    """A room of ``size`` (3,) metres (x, y, height) with ``boxes`` (``boxes[0]``: the room) and
    ``textures`` as (kind, seed) pairs for ``make_texture``."""
    size: np.ndarray
    boxes: list[Box]
    textures: list[tuple[str, int]]
    lighting: Lighting
    seed: int = 0
    _packed: dict | None = field(default=None, init=False, repr=False)

    def packed(self) -> dict:
        """Box parameters as arrays and the textures' mip pyramids, built once."""
        if self._packed is None:
            self._packed = _pack(self)
        return self._packed


def _pack(scene: Scene) -> dict:
    b = scene.boxes
    levels, offsets, n = [], [], 0
    for lvl in range(_LEVELS):
        s = TEX >> lvl
        stack = np.stack([cv2.resize(make_texture(*t), (s, s), interpolation=cv2.INTER_AREA)
                          for t in scene.textures])
        offsets.append(n)
        n += stack.shape[0] * s * s
        rgba = np.zeros((stack.shape[0] * s * s, 4), np.uint8)
        rgba[:, :3] = stack.reshape(-1, 3) * 255 + 0.5
        levels.append(rgba.view(np.uint32).ravel())  # one 32-bit gather per texel
    return {
        "centre": np.stack([x.centre for x in b]).astype(np.float32),
        "half": np.stack([x.half for x in b]).astype(np.float32),
        "cos": np.cos([x.yaw for x in b]).astype(np.float32),
        "sin": np.sin([x.yaw for x in b]).astype(np.float32),
        "tex": np.concatenate([x.tex for x in b]).astype(np.int32),
        "mirrored": np.array([k in _MIRRORED for k, _ in scene.textures]),
        "scale": np.concatenate([x.scale for x in b]).astype(np.float32),
        "offset": np.concatenate([x.offset for x in b]).astype(np.float32),
        "tint": np.concatenate([x.tint for x in b]).astype(np.float32),
        "corners": np.stack([_corners(x) for x in b]),
        "pyramid": np.concatenate(levels), "level_offset": np.array(offsets, np.int32),
    }


def _corners(box: Box) -> np.ndarray:
    """The 8 corners (8, 3) of a box in the map frame."""
    signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
    c, s = math.cos(box.yaw), math.sin(box.yaw)
    return (signs * box.half) @ np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]]) + box.centre


def _material(rng: np.random.Generator, textures: list, role: str) -> int:
    """Append a random texture for ``role`` to ``textures``; its index."""
    kinds = _ROLES[role]
    w = np.array(list(kinds.values()), float)
    textures.append((list(kinds)[rng.choice(len(w), p=w / w.sum())], int(rng.integers(2 ** 31))))
    return len(textures) - 1


_SPAN = {"plaster": (1.5, 4.0), "ceiling": (1.5, 4.0), "wood": (0.8, 2.5), "tiles": (0.5, 2.0),
         "stripes": (0.8, 2.5), "speckle": (0.6, 2.0), "blobs": (0.5, 1.5), "panel": (0.5, 1.0),
         "fabric": (0.3, 1.0), "photo": (0.3, 1.2), "surface": (0.5, 2.0)}  # metres per texture


def _scales(rng, textures, tex, span=None) -> np.ndarray:
    """Texels per metre (6,) of faces with textures ``tex``: a span from ``span`` or, by
    default, from the texture kind's typical size."""
    return np.array([TEX / rng.uniform(*(span or _SPAN[textures[i][0]])) for i in tex])


def _box(rng, textures, centre, half, yaw, role, *, span=None, faces=None) -> Box:
    """A box textured for ``role``; ``faces`` maps a face index to a role of its own."""
    tex = np.full(6, _material(rng, textures, role))
    for f, r in (faces or {}).items():
        tex[f] = _material(rng, textures, r)
    return Box(np.asarray(centre, float), np.asarray(half, float), float(yaw), tex,
               _scales(rng, textures, tex, span), rng.uniform(-2, 2, (6, 2)),
               rng.uniform(0.92, 1.08, (6, 3)))


def _fit_face(box: Box, face: int) -> None:
    """Scale and shift the texture of a wall-facing +y/-y ``face`` so it spans the face once."""
    hx, hz = box.half[0], box.half[2]
    box.scale[face] = TEX / (2 * max(hx, hz))
    box.offset[face] = (hx, hz)


def _room(rng, textures, size) -> Box:
    wall = _material(rng, textures, "wall")
    tex = np.array([wall] * 4 + [_material(rng, textures, "floor"),
                                 _material(rng, textures, "ceiling")])
    if rng.random() < 0.4:  # an accent wall
        tex[rng.integers(4)] = _material(rng, textures, "wall")
    scale = _scales(rng, textures, tex)
    return Box(np.array([0, 0, size[2] / 2]), size / 2, 0.0, tex, scale,
               rng.uniform(-3, 3, (6, 2)), np.ones((6, 3)) * rng.uniform(0.95, 1.05, (6, 1)))


def _overlaps(a: tuple, b: tuple, gap: float) -> bool:
    """Whether two z-rotated boxes (centre, half, yaw) come within ``gap`` (separating axes)."""
    (ca, ha, ya), (cb, hb, yb) = a, b
    if abs(ca[2] - cb[2]) >= ha[2] + hb[2] + gap:
        return False
    axes = [np.array([math.cos(y), math.sin(y)]) for y in (ya, ya + np.pi / 2, yb, yb + np.pi / 2)]
    d = np.asarray(cb[:2]) - np.asarray(ca[:2])
    for ax in axes:
        ra = sum(h * abs(ax @ axes[k]) for h, k in ((ha[0], 0), (ha[1], 1)))
        rb = sum(h * abs(ax @ axes[k]) for h, k in ((hb[0], 2), (hb[1], 3)))
        if abs(ax @ d) >= ra + rb + gap:
            return False
    return True


def _against_wall(rng, size, width, depth, walls=None):
    """(centre xy, yaw, width) of a ``width`` x ``depth`` footprint backed onto a random wall
    (one of ``walls``: 0 / 1 the -y / +y walls, 2 / 3 the -x / +x ones; default any); the box's
    local +y points into the room."""
    wall = int(rng.integers(4)) if walls is None else int(walls[rng.integers(len(walls))])
    yaw = (0.0, np.pi, -np.pi / 2, np.pi / 2)[wall]
    length, dist = (size[0], size[1] / 2) if wall < 2 else (size[1], size[0] / 2)
    width = min(width, length - 0.2)
    along = rng.uniform(-(length - width) / 2, (length - width) / 2)
    xdir = np.array([math.cos(yaw), math.sin(yaw)])
    inward = np.array([-math.sin(yaw), math.cos(yaw)])
    return along * xdir - inward * (dist - depth / 2 - 1e-3), yaw, width


def _free_spot(rng, size, hx, hy):
    """(centre xy, yaw) of a footprint anywhere on the floor, away from the walls."""
    yaw = rng.uniform(-np.pi, np.pi)
    r = math.hypot(hx, hy) + 0.05
    return np.array([rng.uniform(-size[0] / 2 + r, size[0] / 2 - r),
                     rng.uniform(-size[1] / 2 + r, size[1] / 2 - r)]), yaw


def _items_on(rng, textures, top_centre, half_xy, yaw) -> list[Box]:
    """0-3 small objects standing on a horizontal surface centred at ``top_centre``."""
    out = []
    for _ in range(int(rng.integers(0, 4))):
        h = np.array([rng.uniform(0.04, 0.15), rng.uniform(0.03, 0.12), rng.uniform(0.04, 0.2)])
        lx, ly = (rng.uniform(-1, 1) * max(s - 0.15, 0) for s in half_xy)
        c, s = math.cos(yaw), math.sin(yaw)
        centre = top_centre + np.array([c * lx - s * ly, s * lx + c * ly, h[2]])
        out.append(_box(rng, textures, centre, h, yaw + rng.uniform(-0.5, 0.5), "item",
                        span=(0.15, 0.5)))
    return out


def _cabinet(rng, textures, size, walls=None):
    h = np.array([rng.uniform(0.2, 0.8), rng.uniform(0.18, 0.33), rng.uniform(0.25, 1.05)])
    xy, yaw, width = _against_wall(rng, size, 2 * h[0], 2 * h[1], walls)
    h[0] = width / 2
    box = _box(rng, textures, [*xy, h[2]], h, yaw, "furniture", faces={3: "door", 5: "top"})
    _fit_face(box, 3)
    items = _items_on(rng, textures, box.centre + [0, 0, h[2]], h[:2], yaw) if h[2] < 0.7 else []
    return [box], items


def _table(rng, textures, size):
    h = np.array([rng.uniform(0.4, 0.9), rng.uniform(0.3, 0.5), rng.uniform(0.015, 0.03)])
    xy, yaw = _free_spot(rng, size, h[0], h[1])
    top_z = rng.uniform(0.7, 0.8)
    top = _box(rng, textures, [*xy, top_z - h[2]], h, yaw, "furniture")
    legs, c, s = [], math.cos(yaw), math.sin(yaw)
    for sx in (-1, 1):
        for sy in (-1, 1):
            lx, ly = sx * (h[0] - 0.06), sy * (h[1] - 0.06)
            centre = [xy[0] + c * lx - s * ly, xy[1] + s * lx + c * ly, (top_z - 2 * h[2]) / 2]
            legs.append(Box(np.asarray(centre), np.array([0.025, 0.025, centre[2]]), yaw,
                            top.tex.copy(), top.scale.copy(), top.offset.copy(), top.tint.copy()))
    return [top] + legs, _items_on(rng, textures, np.array([*xy, top_z]), h[:2], yaw)


def _block(rng, textures, size):
    """A free-standing floor object (sofa, crate, appliance)."""
    h = np.array([rng.uniform(0.2, 0.6), rng.uniform(0.2, 0.5), rng.uniform(0.15, 0.6)])
    xy, yaw = _free_spot(rng, size, h[0], h[1])
    box = _box(rng, textures, [*xy, h[2]], h, yaw, "furniture")
    return [box], _items_on(rng, textures, box.centre + [0, 0, h[2]], h[:2], yaw)


def _shelf(rng, textures, size, walls=None):
    h = np.array([rng.uniform(0.3, 0.75), rng.uniform(0.1, 0.17), rng.uniform(0.012, 0.03)])
    xy, yaw, width = _against_wall(rng, size, 2 * h[0], 2 * h[1], walls)
    h[0] = width / 2
    box = _box(rng, textures, [*xy, rng.uniform(0.9, min(2.1, size[2] - 0.3))], h, yaw,
               "furniture")
    return [box], _items_on(rng, textures, box.centre + [0, 0, h[2]], h[:2], yaw)


def _picture(rng, textures, size, walls=None):
    h = np.array([rng.uniform(0.15, 0.6), rng.uniform(0.008, 0.02), rng.uniform(0.15, 0.45)])
    xy, yaw, width = _against_wall(rng, size, 2 * h[0], 2 * h[1], walls)
    h[0] = width / 2
    z = rng.uniform(1.0 + h[2], size[2] - 0.15 - h[2])
    box = _box(rng, textures, [*xy, z], h, yaw, "furniture", faces={3: "picture"})
    _fit_face(box, 3)
    return [box], []


_OBJECTS = ((_cabinet, 4.0), (_table, 1.5), (_block, 2.0), (_shelf, 1.5), (_picture, 2.0))


def random_scene(seed: int, *, n_objects: tuple[int, int] = (6, 14)) -> Scene:
    """A random furnished room, deterministic in ``seed``; ``n_objects`` (min, max) counts
    furniture, shelves and pictures (small items on top of them come extra)."""
    rng = np.random.default_rng(seed)
    size = np.array([rng.uniform(3, 8), rng.uniform(3, 8), rng.uniform(2.4, 3.2)])
    textures: list[tuple[str, int]] = []
    boxes = [_room(rng, textures, size)]
    # keep the middle of the room free for cameras
    taken = [(np.array([0.0, 0.0, 1.0]), np.array([0.6, 0.6, 1.0]), 0.0)]
    w = np.array([p for _, p in _OBJECTS])
    for _ in range(int(rng.integers(n_objects[0], n_objects[1] + 1))):
        make = _OBJECTS[rng.choice(len(w), p=w / w.sum())][0]
        for _try in range(20):
            n_tex = len(textures)
            parts, items = make(rng, textures, size)
            bound = (parts[0].centre.copy(), parts[0].half.copy(), parts[0].yaw)
            if len(parts) > 1:  # a table: its bound reaches the floor
                bound[1][2] = bound[0][2] = bound[0][2] / 2 + bound[1][2] / 2
            if not any(_overlaps(bound, t, 0.05) for t in taken):
                taken.append(bound)
                boxes += parts + items
                break
            del textures[n_tex:]
    return Scene(size, boxes, textures, _random_lighting(rng, size), seed)


def _random_lighting(rng, size) -> Lighting:
    def point():
        pos = np.array([*(rng.uniform(-0.4, 0.4, 2) * size[:2]), size[2] - rng.uniform(0.1, 0.5)])
        return Light(pos, rng.uniform(0.6, 1.0) * _warm(rng), False, rng.uniform(1.5, 3.5))

    lights = [point()]
    if rng.random() < 0.5:
        lights.append(point())
    else:  # daylight through a window
        d = np.array([*rng.normal(size=2), -rng.uniform(0.3, 1.0)])
        lights.append(Light(d / np.linalg.norm(d), rng.uniform(0.2, 0.45) * _warm(rng), True))
    return Lighting(rng.uniform(0.25, 0.45) * _warm(rng), tuple(lights))


def _warm(rng) -> np.ndarray:
    """A white of random colour temperature (3,)."""
    t = rng.uniform(-1, 1)
    return np.array([1 + 0.08 * t, 1.0, 1 - 0.12 * t])


def vary_lighting(lighting: Lighting, seed: int, *, gain: tuple[float, float] = (0.6, 1.4),
                  move_m: float = 0.5) -> Lighting:
    """``lighting`` with a random global gain, point lights moved up to ``move_m`` and
    directional ones turned slightly; pass it to ``render(..., lighting=...)``."""
    rng = np.random.default_rng(seed)
    lights = []
    for light in lighting.lights:
        step = rng.normal(size=3)
        if light.directional:
            v = light.vector + 0.2 * step
            lights.append(replace(light, vector=v / np.linalg.norm(v)))
        else:
            step *= move_m * rng.random() ** (1 / 3) / np.linalg.norm(step)
            lights.append(replace(light, vector=light.vector + step))
    return replace(lighting, lights=tuple(lights), gain=lighting.gain * rng.uniform(*gain))


# -------------------------------------------------------------------------------- corridor

_CORRIDOR_OBJECTS = ((_cabinet, 4.0), (_shelf, 2.0), (_picture, 3.0))


def _place(rng, textures, boxes, taken, make, size, walls, dx) -> None:
    """Add one wall-backed object from ``make`` (up to 10 tries), built in a room of ``size``
    against one of ``walls`` and shifted by ``dx`` metres along x; skipped where it would come
    within 5 cm of an object in ``taken``."""
    for _try in range(10):
        n_tex = len(textures)
        parts, items = make(rng, textures, size, walls)
        for b in parts + items:
            b.centre = b.centre + [dx, 0.0, 0.0]
        bound = (parts[0].centre.copy(), parts[0].half.copy(), parts[0].yaw)
        if not any(_overlaps(bound, t, 0.05) for t in taken):
            taken.append(bound)
            boxes += parts + items
            return
        del textures[n_tex:]


def _sections(rng, length, lo, hi):
    """(start, length) of consecutive sections of ``lo``-``hi`` metres covering [-length/2,
    length/2] (the last one stretched rather than left shorter than ``lo``)."""
    x, out = -length / 2, []
    while x < length / 2 - 1e-6:
        seg = rng.uniform(lo, hi)
        if length / 2 - (x + seg) < lo:
            seg = length / 2 - x
        out.append((x, seg))
        x += seg
    return out


def corridor_scene(seed: int, *, length_m: float = 40.0, width_m: float = 4.0,
                   height_m: float = 3.0) -> Scene:
    """A long corridor along map x (``length_m`` x ``width_m`` x ``height_m``, centred on the
    origin like ``random_scene``'s rooms), deterministic in ``seed``.

    Its long walls are re-clad in sections of 2-6 m (full-height or dado panels of other wall
    textures) and have doors; the floor changes covering every few metres; cabinets, shelves and
    pictures stand against both long walls every 1.5-3 m along the whole length (1-2 per
    section) and against the end walls; ceiling lights every 4-6 m. Objects reach about
    0.7 m from a wall, so a corridor 2.6 m wide or more keeps a free lane along its centre line
    (y = 0) for ``drive_path``."""
    rng = np.random.default_rng(seed)
    size = np.array([length_m, width_m, height_m], float)
    L, W, H = (float(v) for v in size)
    textures: list[tuple[str, int]] = []
    boxes = [_room(rng, textures, size)]
    taken: list[tuple] = []
    t = 0.003  # half thickness of a wall or floor covering
    for side, yaw in ((-1, 0.0), (1, np.pi)):  # the long walls: -y, +y; local +y into the room
        for x, seg in _sections(rng, L, 2.0, 6.0):
            if rng.random() < 0.55:  # re-clad: a full-height or a dado panel
                top = H if rng.random() < 0.5 else rng.uniform(0.8, 1.3)
                boxes.append(_box(rng, textures, [x + seg / 2, side * (W / 2 - t), top / 2],
                                  [seg / 2, t, top / 2], yaw, "wall"))
            if rng.random() < 0.35 and seg > 1.4:  # a door, protruding 4 cm
                half = np.array([rng.uniform(0.4, 0.5), 0.02, rng.uniform(1.0, 1.1)])
                dx = rng.uniform(-(seg / 2 - half[0] - 0.1), seg / 2 - half[0] - 0.1)
                door = _box(rng, textures, [x + seg / 2 + dx, side * (W / 2 - half[1]), half[2]],
                            half, yaw, "door")
                _fit_face(door, 3)
                boxes.append(door)
                taken.append((door.centre.copy(), half.copy(), yaw))
    for x, seg in _sections(rng, L, 2.5, 8.0):  # floor coverings and runners
        r = rng.random()
        if r < 0.7:
            half_y = W / 2 - 0.01 if r < 0.5 else rng.uniform(0.5, W / 2 - 0.8)
            boxes.append(_box(rng, textures, [x + seg / 2, 0.0, t], [seg / 2, half_y, t], 0.0,
                              "floor" if r < 0.5 else "rug"))
    w = np.array([p for _, p in _CORRIDOR_OBJECTS])
    for wall in (0, 1):
        for x, seg in _sections(rng, L, 1.5, 3.0):
            for _ in range(int(rng.integers(1, 3))):
                make = _CORRIDOR_OBJECTS[rng.choice(len(w), p=w / w.sum())][0]
                _place(rng, textures, boxes, taken, make, np.array([seg, W, H]), (wall,),
                       x + seg / 2)
    for wall in (2, 3):  # the end walls
        for _ in range(int(rng.integers(1, 3))):
            make = _CORRIDOR_OBJECTS[rng.choice(len(w), p=w / w.sum())][0]
            _place(rng, textures, boxes, taken, make, size, (wall,), 0.0)
    lights = []
    x = -L / 2 + rng.uniform(1.0, 3.0)
    while x < L / 2:
        lights.append(Light(np.array([x, rng.uniform(-0.2, 0.2), H - 0.15]),
                            rng.uniform(0.5, 0.8) * _warm(rng), False, rng.uniform(2.5, 3.5)))
        x += rng.uniform(4.0, 6.0)
    lighting = Lighting(rng.uniform(0.3, 0.4) * _warm(rng), tuple(lights))
    return Scene(size, boxes, textures, lighting, seed)


# ---------------------------------------------------------------------------- ray casting

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


# -------------------------------------------------------------------------------- cameras

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


# ---------------------------------------------------------------------------- scene folder

def default_intrinsics(width: int, height: int) -> np.ndarray:
    """Kinect-like K (focal 525 px at 640 wide), principal point at the image centre."""
    f = 525.0 * width / 640
    return np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]])


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
                  grey: bool, image_ext: str, with_depth: bool) -> Path:
    """Render ``poses`` as frame-000000, ... into a scene folder; ``is_query`` (N,) bool picks
    each frame's split."""
    if image_ext not in (".png", ".jpg"):
        raise ValueError(f"image_ext must be '.png' or '.jpg', got {image_ext!r}")
    out = Path(out_dir)
    for sub in ("rgb", "poses", "splits") + (("depth",) if with_depth else ()):
        (out / sub).mkdir(parents=True, exist_ok=True)
    K = default_intrinsics(width, height) if K is None else np.asarray(K, float)
    names = [f"frame-{i:06d}" for i in range(len(poses))]
    for name, T in zip(names, poses):
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
