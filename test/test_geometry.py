import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from marepo_ros.geometry import (backproject, check_intrinsics, invert_pose, is_valid_pose, make_pose,
                                 nearest_rotation, pixel_rays, pose_error, pose_from_quat, project, quat_from_pose, scale_intrinsics,
                                 transform_points)

RNG = np.random.default_rng(0)


def random_pose():
    return make_pose(Rotation.random(random_state=RNG.integers(1 << 30)).as_matrix(), RNG.normal(0, 3, 3))


def test_invert_compose_round_trip():
    map_from_cam = random_pose()
    np.testing.assert_allclose(map_from_cam @ invert_pose(map_from_cam), np.eye(4), atol=1e-12)
    pts = RNG.normal(size=(10, 3))
    back = transform_points(invert_pose(map_from_cam), transform_points(map_from_cam, pts))
    np.testing.assert_allclose(back, pts, atol=1e-12)


def test_quaternion_round_trip_ros_order():
    T = random_pose()
    t, q = quat_from_pose(T)
    np.testing.assert_allclose(pose_from_quat(t, q), T, atol=1e-12)
    # ROS orders quaternions (x, y, z, w): identity rotation has w = 1 last
    _, q_id = quat_from_pose(np.eye(4))
    np.testing.assert_allclose(q_id, [0, 0, 0, 1])


@pytest.mark.parametrize("skew", [0.0, 3.5])
def test_project_backproject_round_trip_opencv_axes(skew):
    K = np.array([[500.0, skew, 319.5], [0, 480.0, 239.5], [0, 0, 1]])
    uv = RNG.uniform(0, 640, (5, 10, 2))
    z = RNG.uniform(0.5, 5, (5, 10))
    pts = backproject(K, uv, z)
    assert pts.shape == (5, 10, 3)
    np.testing.assert_allclose(pts[..., 2], z, rtol=1e-15)
    np.testing.assert_allclose(project(K, pts), uv, atol=1e-9)
    np.testing.assert_allclose(pixel_rays(K, uv), pts / z[..., None], rtol=1e-12)
    # x right, y down, z forward: a point right of and below the principal point
    assert np.all(backproject(K, np.array([[400.0, 300.0]]), np.array([1.0]))[0] > 0)


def test_scale_intrinsics_keeps_pixel_geometry():
    K = np.array([[525.0, 0, 320], [0, 525, 240], [0, 0, 1]])
    K2 = scale_intrinsics(K, 0.5)
    # the ray through a point is the same before and after resizing by 1/2 (pixel-centre aware)
    pt = np.array([[0.3, -0.2, 2.0]])
    uv, uv2 = project(K, pt)[0], project(K2, pt)[0]
    np.testing.assert_allclose(uv2, (uv + 0.5) * 0.5 - 0.5, atol=1e-12)


def test_pose_error_and_validity():
    T = random_pose()
    d = make_pose(Rotation.from_euler("z", 3, degrees=True).as_matrix(), [0.03, 0.04, 0])
    dt, dr = pose_error(T @ d, T)
    assert dt == pytest.approx(0.05) and dr == pytest.approx(3.0)
    assert is_valid_pose(T)
    bad = T.copy()
    bad[0, 0] = np.nan
    assert not is_valid_pose(bad)
    assert not is_valid_pose(np.diag([1, 1, -1, 1.0]))


def test_rotation_error_is_exact_for_small_angles_and_rounded_matrices():
    """7-Scenes stores rotations with singular values ~0.99993: arccos of the trace turned
    that into a false ~1.5 deg error between a pose and itself."""
    T = random_pose()
    rounded = T.copy()
    rounded[:3, :3] *= 0.99993
    assert pose_error(rounded, T)[1] < 1e-6
    np.testing.assert_allclose(nearest_rotation(rounded[:3, :3]), T[:3, :3], atol=1e-12)
    for deg in (1e-4, 0.01, 1.0, 90.0, 179.0):
        d = make_pose(Rotation.from_rotvec([0, deg * np.pi / 180, 0]).as_matrix(), [0, 0, 0])
        assert pose_error(T @ d, T)[1] == pytest.approx(deg, rel=1e-6)


@pytest.mark.parametrize("K, words", [
    (np.zeros((3, 3)), "focal"), (np.array([[500, 0, 320], [0, 500, 240], [0, 1, 1.0]]), "form"),
    (np.array([[500, 0, 900], [0, 500, 240], [0, 0, 1.0]]), "outside"),
    (np.array([[np.nan, 0, 0], [0, 1, 0], [0, 0, 1.0]]), "NaN")])
def test_check_intrinsics_explains(K, words):
    assert words in check_intrinsics(K, 640, 480)
