"""Tests of the rendered forward-motion scene: a corridor driven forward (``corridor_scene``,
``drive_path``, ``write_drive_folder``), the scene of ``benchmarks/forward_motion.py``."""
import numpy as np
import pytest

from marepo_ros.geometry import backproject, transform_points
from marepo_ros.io.dataset import SceneDataset
from marepo_ros.synthetic import folders, paths, raycast, scene as S

W, H = 160, 120
K = paths.default_intrinsics(W, H)


@pytest.fixture(scope="module")
def corridor():
    return S.corridor_scene(3)


def test_corridor_is_furnished_along_its_length_with_a_free_centre_line(corridor):
    assert np.allclose(corridor.size, [40.0, 4.0, 3.0])
    objects = [b for b in corridor.boxes[1:] if b.half.min() > 0.005]  # not wall/floor coverings
    xs = np.array([b.centre[0] for b in objects])
    counts = np.histogram(xs, bins=8, range=(-20, 20))[0]
    assert counts.min() >= 3  # furniture all along the corridor
    for side in (-1, 1):  # ... and against both long walls
        assert sum(np.sign(b.centre[1]) == side for b in objects) > 20
    line = np.stack([np.linspace(-17, 17, 400), np.zeros(400), np.full(400, 1.4)], 1)
    assert raycast.clearance(corridor, line).min() > 1.0  # nothing within 1 m of the centre line
    centres = np.array([T[:3, 3] for T in paths.drive_path(corridor, 50)])
    assert raycast.clearance(corridor, centres).min() > 0.3


def test_drive_moves_forward_looking_down_the_corridor(corridor):
    path = paths.drive_path(corridor, 50)
    assert len(path) == 50
    centres = np.array([T[:3, 3] for T in path])
    assert np.all(np.diff(centres[:, 0]) > 0)  # forward along +x
    assert centres[0, 0] < -18 and centres[-1, 0] > 15
    assert np.abs(centres[:, 1]).max() <= 0.05 + 1e-9 and np.abs(centres[:, 2] - 1.4).max() < 0.05
    for T in path:
        assert T[:3, 2] @ [1, 0, 0] > np.cos(np.radians(5))  # camera z (forward) along map +x
        assert T[:3, 1] @ [0, 0, -1] > np.cos(np.radians(3))  # camera y (down) along map -z
    assert np.allclose(np.array(paths.drive_path(corridor, 50)), np.array(path))  # deterministic
    side = paths.drive_path(corridor, 50, lateral_m=0.3, seed=1)
    y = np.array([T[1, 3] for T in side])
    assert np.all(np.abs(y - 0.3) <= 0.05 + 1e-9)
    assert not np.allclose(np.array([T[:3, :3] for T in side]), np.array([T[:3, :3] for T in path]))


def test_a_frame_mid_drive_sees_both_walls_and_depth_grows_to_the_centre(corridor):
    T = paths.drive_path(corridor, 50)[25]
    rgb, depth = raycast.render(corridor, K, T, W, H)
    assert rgb.shape == (H, W, 3) and rgb.std() > 10
    assert np.all(np.isfinite(depth)) and depth.min() > 0.3 and depth.max() < 40
    row = slice(H // 2 - 5, H // 2 + 5)
    u, v = np.meshgrid(np.arange(W, dtype=float), np.arange(H, dtype=float))
    pts = transform_points(T, backproject(K, np.stack([u, v], -1), depth.astype(float)))
    left, right = pts[row, :10].reshape(-1, 3), pts[row, -10:].reshape(-1, 3)
    assert np.all(left[:, 1] > 1.0) and np.all(right[:, 1] < -1.0)  # camera right = map -y
    assert depth[row, :10].max() < 6 and depth[row, -10:].max() < 6  # walls / objects close by
    bands = [np.median(depth[row, a:a + 10]) for a in (0, 35, 65, W - 45, W - 10)]
    assert bands[0] < bands[1] < bands[2] and bands[4] < bands[3] < bands[2]
    assert bands[2] > 3 * max(bands[0], bands[4])  # far down the corridor in the middle


def test_write_drive_folder_reads_back_without_depth(corridor, tmp_path):
    out = folders.write_drive_folder(corridor, tmp_path / "scene", n_mapping=8, n_query=4,
                               width=64, height=48)
    assert not (out / "depth").exists()
    ds = SceneDataset(out)
    mapping, query = ds.frames("mapping"), ds.frames("query")
    assert len(mapping) == 8 and len(query) == 4 and ds.image_size == (64, 48)
    assert all(f.depth_path is None and f.load_depth() is None for f in mapping + query)
    assert np.allclose(ds.K, paths.default_intrinsics(64, 48))
    names = ds.names
    assert len(names) == 12 and names == sorted(names)
    xs = [ds.frame(n).map_from_cam[0, 3] for n in names]
    assert np.all(np.diff(xs) >= 0)  # named in order along the corridor
    at = [names.index(f.name) for f in query]
    assert at[-1] - at[0] > 4  # interleaved with the mapping frames, not in one block
    assert abs(np.mean([f.map_from_cam[1, 3] for f in query]) - 0.3) < 0.06  # the side drive
    assert abs(np.mean([f.map_from_cam[1, 3] for f in mapping])) < 0.06
    drive = paths.drive_path(corridor, 8)
    assert np.allclose(mapping[0].map_from_cam, drive[0], atol=1e-6)
    img = mapping[3].load_image()
    assert img.shape == (48, 64, 3) and img.std() > 5
