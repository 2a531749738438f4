"""Scenes made of textured boxes, their lighting, and random layouts: rooms and a corridor.

Map frame: z up, floor at z = 0, the room centred on the origin in x and y; units are metres.
``random_scene`` furnishes a room of 3-8 m; ``corridor_scene`` builds a 40 m corridor along x
(driven forward by ``paths.drive_path``); ``vary_lighting`` perturbs a scene's lighting.

A scene is a list of boxes, each rotated about z only: ``boxes[0]`` is the room, seen from
inside; the others (furniture, shelves, pictures, small items) are seen from outside. Faces are
ordered -x, +x, -y, +y, -z, +z in the box's own axes; each face has its own texture
(``textures.make_texture``), texture scale, offset and tint.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from .textures import TEX, make_texture

_LEVELS = TEX.bit_length()  # mip levels 256, 128, ..., 1


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


_MIRRORED = ("blobs", "panel", "photo", "surface")  # not tileable: repeated mirrored


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


def place_object(rng, textures, size, make, taken: list, boxes: list) -> bool:
    """One try at an object ``make(rng, textures, size)`` -> (parts, items): placed (its boxes
    appended to ``boxes``, its bound to ``taken``) unless it overlaps a bound in ``taken``;
    False (and its new textures dropped) when it does."""
    n_tex = len(textures)
    parts, items = make(rng, textures, size)
    bound = (parts[0].centre.copy(), parts[0].half.copy(), parts[0].yaw)
    if len(parts) > 1:  # a table: its bound reaches the floor
        bound[1][2] = bound[0][2] = bound[0][2] / 2 + bound[1][2] / 2
    if any(_overlaps(bound, t, 0.05) for t in taken):
        del textures[n_tex:]
        return False
    taken.append(bound)
    boxes += parts + items
    return True


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
            if place_object(rng, textures, size, make, taken, boxes):
                break
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
