"""The multi-room site of ``synthetic.site``: layout, connectivity, camera paths, folders."""
import math

import numpy as np
import pytest

from marepo_ros.io.dataset import SceneDataset
from marepo_ros.synthetic.paths import default_intrinsics, look_pose
from marepo_ros.synthetic.raycast import clearance, render
from marepo_ros.synthetic.site import (make_site, min_clearance, room_width, site_paths,
                                       write_site_folder)


@pytest.fixture(scope="module")
def site():
    return make_site(4 * 8.8, 3)


def test_layout_has_the_area_and_rooms_asked_for(site):
    assert len(site.rooms) == 4
    assert site.area_m2 == pytest.approx(4 * 8.8)
    for n in (1, 3):
        other = make_site(n * 8.8, 1)
        assert len(other.rooms) == n and other.area_m2 == pytest.approx(n * 8.8)
    w = room_width(16 * 8.8, 16, 3.0, 1.3)
    assert 16 * w * 3.0 + 8 * w * 1.3 == pytest.approx(16 * 8.8)
    half = site.scene.size / 2
    for room in site.rooms:        # rooms inside the shell, on either side of the corridor
        assert np.all(np.abs(room.centre) + room.size / 2 <= half[:2] + 1e-9)
        assert abs(room.centre[1] - site.corridor.centre[1]) > 1.3 / 2 + room.size[1] / 2 - 1e-6
    a, b = make_site(4 * 8.8, 3), site     # deterministic in the seed
    assert all(np.allclose(x.centre, y.centre) and np.allclose(x.half, y.half)
               for x, y in zip(a.scene.boxes, b.scene.boxes))


def _segment_min_clearance(site, a, b) -> float:
    return float(clearance(site.scene, np.linspace(a, b, 60)).min())


def test_every_room_opens_on_the_corridor_through_its_doorway_only(site):
    cy = site.corridor.centre[1]
    for room in site.rooms:
        door = room.doors[0]
        side = np.sign(room.centre[1] - cy)
        inside = np.array([door[0], door[1] + side * 0.6, 1.2])
        corridor = np.array([door[0], cy, 1.2])
        assert _segment_min_clearance(site, inside, corridor) > 0.2      # through the doorway
        left, right = room.centre[0] - room.size[0] / 2, room.centre[0] + room.size[0] / 2
        x = left + 0.2 if door[0] - left > right - door[0] else right - 0.2   # beside the door
        assert _segment_min_clearance(site, np.array([x, inside[1], 1.2]),
                                      np.array([x, cy, 1.2])) < 0          # through the wall


def test_a_camera_in_the_corridor_sees_into_a_room_through_the_door(site):
    room = site.rooms[1]
    door = room.doors[0]
    cy = site.corridor.centre[1]
    side = np.sign(room.centre[1] - cy)
    eye = np.array([door[0], cy - side * 0.3, 1.4])
    K = default_intrinsics(64, 48)
    _, depth = render(site.scene, K, look_pose(eye, math.atan2(side, 0.0), 0.0), 64, 48)
    assert depth[24, 32] > abs(door[1] - eye[1]) + 0.3    # beyond the corridor's wall


def test_paths_stay_in_free_space_and_map_every_room(site):
    mapping, query, where = site_paths(site, mapping_per_room=30, query_per_room=8, seed=2,
                                       corridor_query_per_col=4)
    assert len(query) == len(where) == 4 * 8 + 8
    assert min_clearance(site, mapping) > 0.2 and min_clearance(site, query) > 0.15
    centres = np.stack([T[:3, 3] for T in mapping])
    for i, room in enumerate(site.rooms):
        in_room = np.all(np.abs(centres[:, :2] - room.centre) < room.size / 2, axis=1)
        assert in_room.sum() == 30
        q = np.stack([T[:3, 3] for T, w in zip(query, where) if w == f"room {i}"])
        assert np.all(np.abs(q[:, :2] - room.centre) < room.size / 2)
        # a second pass: every query within 40 cm of a mapping pose of its room
        d = np.linalg.norm(q[:, None] - centres[in_room][None], axis=2).min(1)
        assert d.max() < 0.4
    in_corridor = np.abs(centres[:, 1] - site.corridor.centre[1]) < site.corridor.size[1] / 2
    assert in_corridor.sum() == len(mapping) - 4 * 30


def test_site_folder_is_a_scene_folder(tmp_path):
    site = make_site(2 * 8.8, 5)
    out = write_site_folder(site, tmp_path / "site", mapping_per_room=12, query_per_room=4,
                            width=64, height=48, corridor_query_per_col=2)
    ds = SceneDataset(out)
    mapping, query = ds.frames("mapping"), ds.frames("query")
    assert len(query) == 2 * 4 + 2
    assert len((out / "where.txt").read_text().split("\n")) - 1 == len(query)
    depth = query[0].load_depth()
    assert depth.shape == (48, 64) and (depth > 0).mean() > 0.99
    assert len(mapping) > 2 * 12
