"""Tests of the synthetic room renderer: exact depth, poses, determinism, scene folders."""
import cv2
import numpy as np
import pytest

from marepo_ros.io.dataset import SceneDataset
from marepo_ros.synthetic import folders, paths, raycast, scene as S, textures
from marepo_ros.geometry import (backproject, invert_pose, is_valid_pose, pose_error, project,
                                 transform_points)

W, H = 160, 120
K = paths.default_intrinsics(W, H)


@pytest.fixture(scope="module")
def scene():
    return S.random_scene(7)


def pixel_grid(width=W, height=H):
    u, v = np.meshgrid(np.arange(width, dtype=float), np.arange(height, dtype=float))
    return np.stack([u, v], -1)


def map_points(depth, T):
    """Map-frame points (H, W, 3) of a depth image seen from map_from_cam T."""
    return transform_points(T, backproject(K, pixel_grid(*depth.shape[::-1]), depth.astype(float)))


@pytest.mark.parametrize("kind", textures.TEXTURE_KINDS)
def test_textures(kind):
    tex = textures.make_texture(kind, 3)
    assert tex.shape == (textures.TEX, textures.TEX, 3) and tex.dtype == np.float32
    assert 0 <= tex.min() and tex.max() <= 1 and tex.std() > 0.005
    assert not np.array_equal(tex, textures.make_texture(kind, 4))


def test_photos_load_offline():
    assert len(textures._photos("photo")) >= 5 and len(textures._photos("surface")) >= 2


def test_empty_room_depth_is_exact():
    room = S.random_scene(1, n_objects=(0, 0))
    assert len(room.boxes) == 1
    Kc = paths.default_intrinsics(W + 1, H + 1)  # odd size: the centre pixel looks straight ahead
    T = paths.look_pose(np.array([0.3, -0.2, 1.5]), yaw=0.0, pitch=0.0)
    _, depth = raycast.render(room, Kc, T, W + 1, H + 1)
    assert depth[H // 2, W // 2] == pytest.approx(room.size[0] / 2 - 0.3, abs=1e-5)
    pts = transform_points(T, backproject(Kc, pixel_grid(W + 1, H + 1), depth.astype(float)))
    lo = np.array([-room.size[0] / 2, -room.size[1] / 2, 0])
    hi = np.array([room.size[0] / 2, room.size[1] / 2, room.size[2]])
    to_plane = np.minimum(np.abs(pts - lo), np.abs(pts - hi)).min(-1)
    assert to_plane.max() < 1e-4  # every pixel lies on a wall, the floor or the ceiling
    assert np.all(pts > lo - 1e-4) and np.all(pts < hi + 1e-4)


def test_depth_lies_on_surfaces(scene):
    on_objects = 0
    for T in paths.random_camera_path(scene, 40, 0)[::8]:
        _, depth = raycast.render(scene, K, T, W, H)
        pts = map_points(depth, T).reshape(-1, 3)
        assert np.abs(raycast.clearance(scene, pts)).max() < 1e-4
        on_objects += np.sum(raycast.clearance(S.Scene(scene.size, scene.boxes[:1], scene.textures,
                                                 scene.lighting), pts) > 1e-3)
    assert on_objects > 100  # the views see furniture, not only walls


def test_two_views_agree(scene):
    Ta, Tb = paths.random_view_pair(scene, 5)
    _, da = raycast.render(scene, K, Ta, W, H)
    _, db = raycast.render(scene, K, Tb, W, H)
    pb = transform_points(invert_pose(Tb), map_points(da, Ta)).reshape(-1, 3)
    z = pb[:, 2]
    uv = project(K, np.where(z[:, None] > 0.05, pb, [0, 0, 1.0]))
    inside = (z > 0.05) & np.all((uv >= 0) & (uv <= [W - 1.001, H - 1.001]), 1)
    assert inside.mean() > 0.2  # the views overlap
    # inverse depth is affine in the pixel coordinates on a plane: bilinear interpolation is exact
    uv, z = uv[inside], z[inside]
    i, j = np.floor(uv).astype(int).T
    fu, fv = (uv - np.floor(uv)).T
    inv = 1 / db
    inv_b = ((inv[j, i] * (1 - fu) + inv[j, i + 1] * fu) * (1 - fv)
             + (inv[j + 1, i] * (1 - fu) + inv[j + 1, i + 1] * fu) * fv)
    ratio = z * inv_b  # 1 where b sees the same point, > 1 where something occludes it
    assert np.mean(np.abs(ratio - 1) < 1e-4) > 0.6
    assert np.mean(ratio < 0.98) < 0.03  # b never sees through a surface that a sees


def test_deterministic_and_seeds_differ():
    a, b, c = S.random_scene(3), S.random_scene(3), S.random_scene(4)
    Ta = paths.random_camera_path(a, 5, 1)
    assert all(np.array_equal(x, y) for x, y in zip(Ta, paths.random_camera_path(b, 5, 1)))
    rgb_a, depth_a = raycast.render(a, K, Ta[2], W, H)
    rgb_b, depth_b = raycast.render(b, K, Ta[2], W, H)
    assert np.array_equal(rgb_a, rgb_b) and np.array_equal(depth_a, depth_b)
    assert not np.allclose(a.size, c.size)
    rgb_c, _ = raycast.render(c, K, paths.random_camera_path(c, 5, 1)[2], W, H)
    assert np.abs(rgb_a.astype(int) - rgb_c).mean() > 10


def test_lighting_changes_colour_not_depth(scene):
    T = paths.random_camera_path(scene, 3, 2)[1]
    rgb, depth = raycast.render(scene, K, T, W, H)
    rgb2, depth2 = raycast.render(scene, K, T, W, H, lighting=S.vary_lighting(scene.lighting, 1))
    assert np.array_equal(depth, depth2) and not np.array_equal(rgb, rgb2)
    assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8 and depth.dtype == np.float32
    assert 30 < rgb.mean() < 220 and rgb.std() > 10


def test_camera_path_is_smooth_and_clear(scene):
    poses = paths.random_camera_path(scene, 120, 4)
    assert len(poses) == 120 and all(is_valid_pose(T) for T in poses)
    centres = np.array([T[:3, 3] for T in poses])
    assert raycast.clearance(scene, centres).min() >= 0.3
    assert centres[:, 2].min() >= 0.8 - 1e-9 and centres[:, 2].max() <= 1.9 + 1e-9
    steps = np.array([pose_error(a, b) for a, b in zip(poses[:-1], poses[1:])])
    assert steps[:, 0].max() < 0.12 and steps[:, 1].max() < 7.0
    assert 0.03 < np.median(steps[:, 0]) < 0.08 or 1.5 < np.median(steps[:, 1]) < 5
    down = np.array([T[:3, 1] for T in poses]) @ [0, 0, -1]  # camera y is image down
    assert down.min() > np.cos(np.radians(35))


def test_look_angles_invert_look_pose():
    rng = np.random.default_rng(0)
    for _ in range(20):
        p, (yaw, pitch, roll) = rng.normal(size=3), rng.uniform([-3, -1, -0.5], [3, 1, 0.5])
        T = paths.look_pose(p, yaw, pitch, roll)
        np.testing.assert_allclose(paths.look_angles(T), (yaw, pitch, roll), atol=1e-9)


def test_revisit_path_follows_the_path_from_new_poses(scene):
    path = paths.random_camera_path(scene, 80, 4)
    again = paths.revisit_path(scene, path, 25, 5)
    assert len(again) == 25 and all(is_valid_pose(T) for T in again)
    assert raycast.clearance(scene, np.array([T[:3, 3] for T in again])).min() >= 0.25
    nearest = []
    for T in again:
        e = np.array([pose_error(T, P) for P in path])
        assert not any((e[:, 0] < 1e-3) & (e[:, 1] < 0.1))  # no copy of a path pose
        nearest.append(np.argmin(e[:, 0]))
        assert e[:, 0].min() < 0.2 and e[:, 1].min() < 8.0  # but close to the path
    assert np.all(np.diff(nearest) >= -1) and nearest[-1] - nearest[0] >= 10  # forward along it
    steps = np.array([pose_error(a, b) for a, b in zip(again[:-1], again[1:])])
    assert steps[:, 0].max() < 0.15 and steps[:, 1].max() < 8.0
    assert all(np.array_equal(a, b) for a, b in zip(again, paths.revisit_path(scene, path, 25, 5)))
    with pytest.raises(ValueError, match="too short"):
        paths.revisit_path(scene, path[:10], 25, 5)


def test_write_revisit_folder(tmp_path, scene):
    root = folders.write_revisit_folder(scene, tmp_path / "scene", n_mapping=30, n_query=8,
                                        width=80, height=60, seed=3, with_depth=False)
    ds = SceneDataset(root)
    mapping, query = ds.frames("mapping"), ds.frames("query")
    assert [f.name for f in mapping] == [f"frame-{i:06d}" for i in range(30)]
    assert [f.name for f in query] == [f"frame-{i:06d}" for i in range(30, 38)]
    expected = paths.random_camera_path(scene, 30, 3)
    for f, T in zip(mapping, expected):
        np.testing.assert_allclose(f.map_from_cam, T, atol=1e-8)
    for f, T in zip(query, paths.revisit_path(scene, expected, 8, 4)):
        np.testing.assert_allclose(f.map_from_cam, T, atol=1e-8)
    assert not (root / "depth").exists()


def test_view_pair(scene):
    for seed in range(5):
        Ta, Tb = paths.random_view_pair(scene, seed)
        dt, dr = pose_error(Ta, Tb)
        assert 0.05 - 1e-9 <= dt <= 1.0 + 1e-9 and dr <= 30.0
        assert raycast.clearance(scene, np.array([Ta[:3, 3], Tb[:3, 3]])).min() >= 0.3


def test_query_mask():
    m = folders.query_mask(750, 250)
    assert m.sum() == 250 and len(m) == 1000 and not m[0] and not m[-1]
    starts = np.flatnonzero(np.diff(m.astype(int)) == 1)
    assert 5 <= len(starts) <= 20  # query blocks interleaved along the trajectory
    assert folders.query_mask(5, 0).sum() == 0 and folders.query_mask(0, 3).sum() == 3


@pytest.mark.parametrize("grey,ext,with_depth", [(False, ".png", True), (True, ".png", False),
                                                 (False, ".jpg", True)])
def test_write_scene_folder(tmp_path, scene, grey, ext, with_depth):
    w, h = 80, 60
    root = folders.write_scene_folder(scene, tmp_path / "scene", n_mapping=6, n_query=4, width=w,
                                height=h, seed=2, grey=grey, image_ext=ext,
                                with_depth=with_depth)
    ds = SceneDataset(root)
    mapping, query = ds.frames("mapping"), ds.frames("query")
    assert len(mapping) == 6 and len(query) == 4
    assert {f.name for f in mapping} | {f.name for f in query} == set(ds.names)
    assert ds.names[0] == "frame-000000"
    np.testing.assert_allclose(ds.K, paths.default_intrinsics(w, h), atol=1e-9)
    assert (root / "depth").is_dir() == with_depth
    expected = paths.random_camera_path(scene, 10, 2)
    for f in mapping + query:
        i = int(f.name.split("-")[1])
        np.testing.assert_allclose(f.map_from_cam, expected[i], atol=1e-8)
        assert f.load_image().shape == ((h, w) if grey else (h, w, 3))
        raw = cv2.imread(str(f.image_path), cv2.IMREAD_UNCHANGED)
        assert raw.ndim == (2 if grey else 3) and f.image_path.name.endswith(f".color{ext}")
        if with_depth:
            _, depth = raycast.render(scene, ds.K, f.map_from_cam, w, h)
            np.testing.assert_allclose(f.load_depth(), depth, atol=1e-3)
        else:
            assert f.depth_path is None

