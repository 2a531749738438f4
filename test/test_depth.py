"""Tests of depth registration and the SIFT + PnP baseline."""
import os
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from marepo_ros.geometry import make_pose, pose_error
from marepo_ros.io.dataset import SceneDataset
from marepo_ros.io.depth import register_depth

DEPTH_K = np.array([[585.0, 0, 320], [0, 585, 240], [0, 0, 1]])  # 7-Scenes depth camera
RGB_K = np.array([[525.0, 0, 320], [0, 525, 240], [0, 0, 1]])    # 7-Scenes RGB camera
REDKITCHEN = Path(os.environ.get(
    "MAREPO_REDKITCHEN",
    Path(__file__).resolve().parents[1].parent / "shared/data/7scenes-redkitchen"))


def plane_depth(K, size, normal, offset, du=0.0, dv=0.0):
    """(H, W) z-depth of the plane {X : normal . X = offset} seen by a camera with K, at the
    pixel centres shifted by (du, dv) pixels."""
    W, H = size
    u, v = np.meshgrid(np.arange(W) + du, np.arange(H) + dv)
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K).T  # z = 1
    return (offset / (rays @ normal)).astype(np.float32)


def tilted_normal(deg_x, deg_y):
    return Rotation.from_euler("xy", [deg_x, deg_y], degrees=True).apply([0.0, 0.0, 1.0])


def assert_plane(out, K, size, normal, offset, half_px):
    """Every valid pixel of ``out`` holds the plane's depth at a point within ``half_px``
    pixels of its centre (a plane's depth is monotone along lines, so the corners bound it)."""
    corners = np.stack([plane_depth(K, size, normal, offset, du, dv)
                        for du in (-half_px, half_px) for dv in (-half_px, half_px)])
    valid = out > 0
    assert np.all(out[valid] >= corners.min(0)[valid] - 1e-5)
    assert np.all(out[valid] <= corners.max(0)[valid] + 1e-5)


@pytest.mark.parametrize("fill_holes", [False, True])
def test_same_camera_is_identity(fill_holes):
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 4.0, (48, 64)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.1] = 0.0
    out = register_depth(depth, DEPTH_K, DEPTH_K, (64, 48), fill_holes=fill_holes)
    assert out.dtype == np.float32 and out.shape == depth.shape
    valid = depth > 0
    np.testing.assert_array_equal(out[valid], depth[valid])
    if not fill_holes:
        assert np.all(out[~valid] == 0)


SCALED = [
    (RGB_K, (640, 480)),                                                  # 7-Scenes pair
    (np.array([[700.0, 0, 330], [0, 690, 250], [0, 0, 1]]), (640, 480)),  # up-sampling: gaps
    (RGB_K / [[2], [2], [1]], (320, 240)),                                # half-size RGB image
]


@pytest.mark.parametrize("rgb_K, rgb_size", SCALED)
@pytest.mark.parametrize("fill_holes", [False, True])
def test_fronto_parallel_plane(rgb_K, rgb_size, fill_holes):
    depth = np.full((480, 640), 2.0, np.float32)
    out = register_depth(depth, DEPTH_K, rgb_K, rgb_size, fill_holes=fill_holes)
    # where the centres of the depth camera's corner pixels land in the RGB image
    W, H = rgb_size
    (u0, v0), (u1, v1) = (np.array([[0, 0, 1], [639, 479, 1]]) @ np.linalg.inv(DEPTH_K).T
                          @ rgb_K.T)[:, :2]
    u, v = np.meshgrid(np.arange(W), np.arange(H))
    outer = (u >= np.rint(u0)) & (u <= np.rint(u1)) & (v >= np.rint(v0)) & (v <= np.rint(v1))
    inner = (u >= np.ceil(u0)) & (u <= np.floor(u1)) & (v >= np.ceil(v0)) & (v <= np.floor(v1))
    valid = out > 0
    np.testing.assert_allclose(out[valid], 2.0, atol=1e-3)
    if not fill_holes:
        assert not valid[~outer].any()
    if fill_holes or rgb_K[0, 0] <= DEPTH_K[0, 0]:  # without filling, up-sampling leaves gaps
        assert valid[inner].all()


SKEWED = (np.array([[525.0, 6.0, 320], [0, 525, 240], [0, 0, 1]]), (640, 480))


@pytest.mark.parametrize("rgb_K, rgb_size", SCALED + [SKEWED])
@pytest.mark.parametrize("fill_holes", [False, True])
def test_tilted_plane(rgb_K, rgb_size, fill_holes):
    n, d = tilted_normal(12.0, -8.0), 2.0
    depth = plane_depth(DEPTH_K, (640, 480), n, d)
    out = register_depth(depth, DEPTH_K, rgb_K, rgb_size, fill_holes=fill_holes)
    # nearest splatting is exact up to half a pixel; a filled pixel copies a neighbour
    assert_plane(out, rgb_K, rgb_size, n, d, 1.5 if fill_holes else 0.5)
    W, H = rgb_size
    assert (out[H // 4: 3 * H // 4, W // 4: 3 * W // 4] > 0).mean() > (0.999 if fill_holes else 0.7)


def test_plane_with_extrinsics():
    rgb_from_depth = make_pose(Rotation.from_euler("y", 3, degrees=True).as_matrix(),
                               [0.025, -0.01, 0.005])
    n, d = tilted_normal(5.0, 10.0), 1.5
    depth = plane_depth(DEPTH_K, (640, 480), n, d)
    out = register_depth(depth, DEPTH_K, RGB_K, (640, 480), rgb_from_depth, fill_holes=False)
    n_rgb = rgb_from_depth[:3, :3] @ n
    assert (out > 0).mean() > 0.6
    assert_plane(out, RGB_K, (640, 480), n_rgb, d + n_rgb @ rgb_from_depth[:3, 3], 0.5)


def test_nearest_surface_wins():
    K = np.array([[60.0, 0, 31.5], [0, 60, 23.5], [0, 0, 1]])
    depth = np.full((48, 64), 3.0, np.float32)
    depth[20:30, 20:30] = 1.0  # a box 1 m away in front of a wall 3 m away
    # 5 cm to the side the box moves 3 px and the wall 1 px: the box must hide the wall
    out = register_depth(depth, K, K, (64, 48), make_pose(np.eye(3), [0.05, 0, 0]),
                         fill_holes=False)
    assert np.all(out[20:30, 23:33] == 1.0) and (out == 1.0).sum() == 100
    assert np.all(out[20:30, 21:23] == 0)  # the wall behind the box's left edge is unseen
    assert np.all(np.isin(out, [0.0, 1.0, 3.0]))


@pytest.mark.skipif(not REDKITCHEN.is_dir(),
                    reason=f"7-Scenes redkitchen data not found at {REDKITCHEN} "
                           "(set MAREPO_REDKITCHEN)")
def test_sift_baseline_localizes_real_frames():
    import cv2
    from marepo_ros.evaluation.sift_baseline import SiftPnPBaseline

    cv2.setNumThreads(1)
    ds = SceneDataset(REDKITCHEN)
    base = SiftPnPBaseline()
    base.build([ds.frame(f"frame-{i:06d}") for i in range(150, 162)], ds.K, ds.depth_K,
               progress=False)
    assert base.n_points > 1000
    for i in range(162, 165):
        frame = ds.frame(f"frame-{i:06d}")
        est = base.localize(frame.load_image(), ds.K)
        assert est is not None
        dt, dr = pose_error(est.map_from_cam, frame.map_from_cam)
        assert dt < 0.10 and dr < 5.0, (frame.name, dt, dr)
        assert est.n_inliers >= base.min_inliers and 0 < est.inlier_ratio <= 1
        assert 0 < est.confidence <= 1
        assert est.covariance.shape == (6, 6) and np.all(np.linalg.eigvalsh(est.covariance) > 0)
        assert set(est.timings_ms) >= {"sift", "match", "pnp", "total"}


def test_scene_depth_of_65535_is_invalid_as_zero(redkitchen):
    """7-Scenes marks missing depth with 65535 (mm), not 0; read as 0, never as a point 65.5 m
    away. The real frames have such pixels."""
    from marepo_ros.io.dataset import SceneDataset
    import cv2
    frame = SceneDataset(redkitchen).frame("frame-000033")
    raw = cv2.imread(str(frame.depth_path), cv2.IMREAD_UNCHANGED)
    depth = frame.load_depth()
    assert (raw == 65535).any() and not (depth > 60).any()
    assert np.array_equal(depth[raw == 65535], np.zeros((raw == 65535).sum(), np.float32))
    assert np.array_equal(depth[raw < 65535], raw[raw < 65535].astype(np.float32) / 1000)


def test_shared_pose_fast_path_equals_the_general_splat():
    """With no extrinsic the cached pixel map gives what back-projecting every pixel gives."""
    rng = np.random.default_rng(4)
    depth = rng.uniform(0.5, 4.0, (48, 64)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.2] = 0.0
    depth_K = np.array([[57.3, 0.0, 31.7], [0.0, 57.1, 24.2], [0.0, 0.0, 1.0]])   # no rounding ties
    rgb_K = np.array([[50.0, 0.0, 33.0], [0.0, 52.0, 23.0], [0.0, 0.0, 1.0]])
    for size in [(64, 48), (80, 60)]:
        fast = register_depth(depth, depth_K, rgb_K, size)
        general = register_depth(depth, depth_K, rgb_K, size, np.eye(4))
        np.testing.assert_array_equal(fast, general)
        assert (fast > 0).mean() > 0.5
