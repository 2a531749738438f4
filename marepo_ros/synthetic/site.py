"""A multi-room site: furnished rooms on both sides of a corridor, joined to it by doorways.

Map frame as in ``scene``: z up, floor at z = 0, the site centred on the origin in x and y,
metres. The corridor runs along x at y in [-corridor_m / 2, corridor_m / 2]; room ``i`` lies
in column ``i // 2`` on the -y side (even ``i``) or the +y side (odd ``i``), ``depth_m`` deep;
every room's wall towards the corridor has a doorway. ``make_site`` sizes the rooms so that the
floor (rooms + corridor, between the wall centre lines) has a given area.

``site_paths`` gives a mapping path (one handheld walk per room, ``paths.random_camera_path``,
and a walk along the corridor in each direction looking at its walls) and a query path that
revisits every room and the corridor (``paths.revisit_path``); ``write_site_folder`` renders
them into a scene folder.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .folders import _write_frames
from .paths import _smooth_wobble, look_pose, random_camera_path, revisit_path
from .raycast import clearance
from .scene import (_OBJECTS, Box, Light, Lighting, Scene, _material, _picture,
                    _scales, _warm, place_object)

WALL_M = 0.05            # thickness of a wall slab; a wall between two spaces is two slabs
DOOR_M = (0.9, 2.1)      # doorway width and height


@dataclass(eq=False)
class Space:
    """A room or the corridor. centre (2,): map-frame xy of its cell; size (2,): inner xy
    (metres, inside its wall slabs); local: a ``Scene`` of the space alone (its walls closed,
    doorways too) centred on the origin, for planning camera paths; doors (M, 2): doorway
    centres, map frame xy."""
    centre: np.ndarray
    size: np.ndarray
    local: Scene
    doors: np.ndarray

    def local_from_map(self, xy_N2: np.ndarray) -> np.ndarray:
        """Map-frame xy (N, 2) in the frame of ``local``."""
        return np.asarray(xy_N2, float) - self.centre


@dataclass(eq=False)
class Site:
    """scene: every box of the site (``boxes[0]``: its outer shell; with an odd number of rooms
    above 1 the cell opposite the last room is closed off, outside the floor); rooms and
    corridor as ``Space``; area_m2: floor area of rooms and corridor between the wall centre
    lines."""
    scene: Scene
    rooms: list[Space]
    corridor: Space
    area_m2: float


def _slab(rng, textures, tex: int, centre, half) -> Box:
    """An axis-aligned box with texture ``tex`` on every face."""
    t = np.full(6, tex)
    return Box(np.asarray(centre, float), np.asarray(half, float), 0.0, t,
               _scales(rng, textures, t), rng.uniform(-2, 2, (6, 2)),
               rng.uniform(0.95, 1.05, (6, 3)))


def _wall_x(rng, textures, tex, x0, x1, y, height, door_x=None) -> list[Box]:
    """Slabs of a wall along x from ``x0`` to ``x1`` centred at ``y``, with a doorway centred
    at ``door_x`` (None: none): left and right parts and a lintel."""
    h = WALL_M / 2
    if door_x is None:
        return [_slab(rng, textures, tex, [(x0 + x1) / 2, y, height / 2],
                      [(x1 - x0) / 2, h, height / 2])]
    a, b = door_x - DOOR_M[0] / 2, door_x + DOOR_M[0] / 2
    lintel = (height - DOOR_M[1]) / 2
    return [_slab(rng, textures, tex, [(x0 + a) / 2, y, height / 2], [(a - x0) / 2, h, height / 2]),
            _slab(rng, textures, tex, [(b + x1) / 2, y, height / 2], [(x1 - b) / 2, h, height / 2]),
            _slab(rng, textures, tex, [door_x, y, DOOR_M[1] + lintel], [DOOR_M[0] / 2, h, lintel])]


def _shell(size, tex, rng, textures) -> Box:
    """A space's enclosing box (seen from inside) of ``size`` (3,) centred on the origin."""
    t = np.array(tex)
    return Box(np.array([0, 0, size[2] / 2]), np.asarray(size, float) / 2, 0.0, t,
               _scales(rng, textures, t), rng.uniform(-3, 3, (6, 2)), np.ones((6, 3)))


def _furnish(rng, textures, size, keep_out, n_objects, objects=_OBJECTS) -> list[Box]:
    """Objects for a space of inner ``size`` (3,) centred on the origin, away from the boxes
    ``keep_out`` ((centre, half, yaw) tuples)."""
    taken, boxes = list(keep_out), []
    w = np.array([p for _, p in objects])
    for _ in range(n_objects):
        make = objects[rng.choice(len(w), p=w / w.sum())][0]
        for _try in range(20):
            n_tex = len(textures)
            try:
                if place_object(rng, textures, size, make, taken, boxes):
                    break
            except ValueError:                      # too large for this space
                del textures[n_tex:]
    return boxes


def _shifted(boxes: list[Box], dx: float, dy: float) -> list[Box]:
    """Copies of ``boxes`` moved by (dx, dy) metres (the originals stay in a local scene)."""
    return [replace(b, centre=b.centre + [dx, dy, 0.0]) for b in boxes]


def room_width(area_m2: float, n_rooms: int, depth_m: float, corridor_m: float) -> float:
    """Width (metres, along x) of every room cell so that ``n_rooms`` rooms ``depth_m`` deep
    in ceil(n / 2) columns plus the corridor along them cover ``area_m2``."""
    cols = math.ceil(n_rooms / 2)
    return area_m2 / (n_rooms * depth_m + cols * corridor_m)


def make_site(area_m2: float, seed: int, *, n_rooms: int | None = None, depth_m: float = 3.0,
              corridor_m: float = 1.3, height_m: float = 2.6) -> Site:
    """A site of ``n_rooms`` furnished rooms (default: one per 8.8 m², at least 1) along a
    corridor, floor area ``area_m2`` (rooms and corridor cells, between wall centre lines);
    deterministic in ``seed``. Rooms get their own wall, floor and object textures and a
    ceiling light; the corridor gets pictures and a light per room column."""
    n_rooms = n_rooms or max(1, round(area_m2 / 8.8))
    rng = np.random.default_rng(seed)
    cols = math.ceil(n_rooms / 2)
    w = room_width(area_m2, n_rooms, depth_m, corridor_m)
    if w < 1.6:
        raise ValueError(f"rooms of {w:.2f} m are too narrow: give fewer rooms or more area")
    length, half_c = cols * w, corridor_m / 2
    plus_side = n_rooms > 1
    y_lo, y_hi = -half_c - depth_m, half_c + (depth_m if plus_side else 0.0)
    textures: list[tuple[str, int]] = []
    shell = _shell([length, y_hi - y_lo, height_m],
                   [_material(rng, textures, "wall")] * 4
                   + [_material(rng, textures, "floor"), _material(rng, textures, "ceiling")],
                   rng, textures)
    shell.centre[1] = (y_lo + y_hi) / 2
    boxes, lights, rooms, doors = [shell], [], [], []
    inner_d = depth_m - 2 * WALL_M
    for i in range(n_rooms):
        col, side = i // 2, (-1 if i % 2 == 0 else 1)
        x0 = -length / 2 + col * w
        cx, cy = x0 + w / 2, side * (half_c + depth_m / 2)
        size = np.array([w - 2 * WALL_M, inner_d, height_m])
        margin = WALL_M + DOOR_M[0] / 2 + 0.15
        door_x = rng.uniform(x0 + margin, x0 + w - margin)
        doors.append([door_x, side * half_c])
        wall, floor = _material(rng, textures, "wall"), _material(rng, textures, "floor")
        local_door = np.array([door_x - cx, -side * (inner_d / 2 - 0.5), 1.2])
        keep_out = [(np.array([0.0, 0.0, 1.0]), np.array([0.5, 0.5, 1.0]), 0.0),
                    (local_door, np.array([DOOR_M[0] / 2 + 0.15, 0.6, 1.2]), 0.0)]
        area = size[0] * size[1]
        furniture = _furnish(rng, textures, size, keep_out,
                             int(rng.integers(max(3, area / 1.2), max(4, area / 0.8) + 1)))
        local = Scene(size, [_shell(size, [wall] * 4 + [floor, shell.tex[5]], rng, textures)]
                      + furniture, textures, Lighting(np.ones(3), ()), seed)
        near, far = side * half_c, side * (half_c + depth_m)   # y of the corridor / outer wall
        slabs = (_wall_x(rng, textures, wall, x0, x0 + w, near + side * WALL_M / 2, height_m, door_x)
                 + _wall_x(rng, textures, wall, x0, x0 + w, far - side * WALL_M / 2, height_m))
        for x in (x0 + WALL_M / 2, x0 + w - WALL_M / 2):        # side walls along y
            slabs.append(_slab(rng, textures, wall, [x, cy, height_m / 2],
                               [WALL_M / 2, depth_m / 2, height_m / 2]))
        slabs.append(_slab(rng, textures, floor, [cx, cy, 0.005], [w / 2, depth_m / 2, 0.005]))
        boxes += slabs + _shifted(furniture, cx, cy)
        lights.append(Light(np.array([cx + rng.uniform(-0.3, 0.3) * w, cy, height_m - 0.2]),
                            rng.uniform(0.45, 0.7) * _warm(rng), False, rng.uniform(1.5, 2.5)))
        rooms.append(Space(np.array([cx, cy]), size[:2].copy(), local, np.array([doors[-1]])))
    corridor = _corridor(rng, textures, boxes, lights, length, w, cols, corridor_m, height_m,
                         doors, n_rooms, shell.tex[5])
    shift = np.array([0.0, -(y_lo + y_hi) / 2])       # centre the site on the origin
    for b in boxes:
        b.centre = b.centre + [*shift, 0.0]
    for light in lights:
        light.vector = light.vector + [*shift, 0.0]
    lighting = Lighting(rng.uniform(0.2, 0.3) * _warm(rng), tuple(lights))
    scene = Scene(np.array([length, y_hi - y_lo, height_m]), boxes, textures, lighting, seed)
    for space in rooms + [corridor]:
        space.local.lighting = lighting
        space.centre, space.doors = space.centre + shift, space.doors + shift
    return Site(scene, rooms, corridor, float(w * (n_rooms * depth_m + cols * corridor_m)))


def _corridor(rng, textures, boxes, lights, length, w, cols, corridor_m, height_m, doors,
              n_rooms, ceiling) -> Space:
    """Add the corridor's wall slabs (doorways where rooms open), floor, pictures and lights
    to ``boxes`` / ``lights``; the corridor as a ``Space``."""
    half_c = corridor_m / 2
    wall, floor = _material(rng, textures, "wall"), _material(rng, textures, "floor")
    inner = np.array([length - 2 * WALL_M, corridor_m - 2 * WALL_M, height_m])
    for col in range(cols):
        x0 = -length / 2 + col * w
        for side, i in ((-1, 2 * col), (1, 2 * col + 1)):
            door_x = doors[i][0] if i < n_rooms else None
            boxes += _wall_x(rng, textures, wall, x0, x0 + w, side * (half_c - WALL_M / 2),
                             height_m, door_x)
        lights.append(Light(np.array([x0 + w / 2, 0.0, height_m - 0.15]),
                            rng.uniform(0.35, 0.55) * _warm(rng), False, rng.uniform(1.5, 2.5)))
    for x in (-length / 2 + WALL_M / 2, length / 2 - WALL_M / 2):          # the two ends
        boxes.append(_slab(rng, textures, wall, [x, 0, height_m / 2],
                           [WALL_M / 2, half_c, height_m / 2]))
    boxes.append(_slab(rng, textures, floor, [0, 0, 0.005], [length / 2, half_c, 0.005]))
    keep_out = [(np.array([d[0], d[1], 1.2]), np.array([DOOR_M[0] / 2 + 0.2, 0.3, 1.2]), 0.0)
                for d in doors]
    pictures = _furnish(rng, textures, inner, keep_out, max(1, int(1.5 * cols)),
                        ((_picture, 1.0),))
    local = Scene(inner, [_shell(inner, [wall] * 4 + [floor, ceiling], rng, textures)] + pictures,
                  textures, Lighting(np.ones(3), ()), 0)
    boxes += _shifted(pictures, 0.0, 0.0)      # the corridor's cell is centred on the origin
    return Space(np.zeros(2), inner[:2].copy(), local, np.array(doors, float).reshape(-1, 2))


def _shift_poses(poses: list[np.ndarray], centre: np.ndarray) -> list[np.ndarray]:
    out = []
    for T in poses:
        T = T.copy()
        T[:2, 3] += centre
        out.append(T)
    return out


def corridor_walk(corridor: Space, step_m: float, seed: int, *, height_m: float = 1.4,
                  look_deg: float = 50.0, margin_m: float = 0.5) -> list[np.ndarray]:
    """map_from_cam poses walking along the corridor's centre line (+x, then back along -x),
    ``step_m`` apart, ``margin_m`` from its ends, the heading swinging smoothly up to
    ``look_deg`` towards either wall (wavelengths of 20-60 frames), with a little sway."""
    rng = np.random.default_rng(seed)
    half = corridor.size[0] / 2 - margin_m
    n = max(2, int(round(2 * half / step_m)) + 1)
    poses = []
    for direction in (1, -1):
        x = direction * np.linspace(-half, half, n)
        y = 0.08 * _smooth_wobble(rng, n, (20, 60)) * min(1.0, corridor.size[1] / 1.2)
        z = height_m + 0.05 * _smooth_wobble(rng, n, (20, 60))
        yaw = (0.0 if direction > 0 else np.pi) + math.radians(look_deg) * _smooth_wobble(
            rng, n, (20, 60))
        pitch = math.radians(6) * _smooth_wobble(rng, n, (20, 60))
        poses += [look_pose(np.array([a, b, c]), t, p) for a, b, c, t, p in zip(x, y, z, yaw, pitch)]
    return poses


def site_paths(site: Site, *, mapping_per_room: int, query_per_room: int, seed: int,
               corridor_step_m: float = 0.1, corridor_query_per_col: int = 6
               ) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """(mapping poses, query poses, the space of each query: "room 3", "corridor"), map frame.

    Mapping: per room a handheld walk of ``mapping_per_room`` frames (``random_camera_path``),
    then the corridor in both directions (``corridor_walk``). Queries: per room a second pass
    of ``query_per_room`` frames along part of its walk (``revisit_path``), and
    ``corridor_query_per_col`` frames per room column along the corridor walk."""
    mapping, query, where = [], [], []
    for i, room in enumerate(site.rooms):
        walk = random_camera_path(room.local, mapping_per_room, seed + 10 * i,
                                  min_clearance=0.25, height=(0.9, 1.8))
        again = revisit_path(room.local, walk, query_per_room, seed + 10 * i + 1) \
            if query_per_room else []
        mapping += _shift_poses(walk, room.centre)
        query += _shift_poses(again, room.centre)
        where += [f"room {i}"] * len(again)
    walk = _shift_poses(corridor_walk(site.corridor, corridor_step_m, seed + 5),
                        site.corridor.centre)
    n_q = corridor_query_per_col * math.ceil(len(site.rooms) / 2)
    if n_q:
        half = len(walk) // 2                       # one revisit per direction
        for k, part in enumerate((walk[:half], walk[half:])):
            m = n_q // 2 + (n_q % 2 if k == 0 else 0)
            if m:
                local = _shift_poses(part, -site.corridor.centre)
                query += _shift_poses(revisit_path(
                    site.corridor.local, local, m, seed + 7 + k, min_clearance=0.2,
                    stride=(0.8, min(1.25, (len(part) - 4) / m))), site.corridor.centre)
                where += ["corridor"] * m
    mapping += walk
    return mapping, query, where


def write_site_folder(site: Site, out_dir: str | Path, *, mapping_per_room: int,
                      query_per_room: int, seed: int = 0, width: int = 320, height: int = 240,
                      corridor_query_per_col: int = 6, progress: bool = False) -> Path:
    """Render ``site_paths`` into a scene folder (``folders.write_scene_folder``'s layout, with
    depth): the mapping frames first, then the queries; also where.txt, the space of each
    query frame in order."""
    mapping, query, where = site_paths(site, mapping_per_room=mapping_per_room,
                                       query_per_room=query_per_room, seed=seed,
                                       corridor_query_per_col=corridor_query_per_col)
    is_query = np.arange(len(mapping) + len(query)) >= len(mapping)
    out = _write_frames(site.scene, out_dir, mapping + query, is_query, width=width, height=height,
                        K=None, grey=False, image_ext=".png", with_depth=True, progress=progress)
    (out / "where.txt").write_text("".join(f"{w}\n" for w in where))
    return out


def min_clearance(site: Site, poses: list[np.ndarray]) -> float:
    """Smallest distance (metres) of the camera centres of ``poses`` to any surface."""
    return float(clearance(site.scene, np.stack([T[:3, 3] for T in poses])).min())
