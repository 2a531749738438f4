"""REP-105 transform algebra (runtime.rep105)."""
import numpy as np
import pytest

from marepo_ros.geometry import invert_pose, make_pose, pose_error
from marepo_ros.runtime.rep105 import map_from_base, map_from_odom, odom_from_cam


def random_pose(rng) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return make_pose(q * np.sign(np.linalg.det(q)), rng.normal(0, 3, 3))


@pytest.mark.parametrize("seed", range(5))
def test_map_from_odom_puts_the_camera_where_the_estimate_says(seed):
    rng = np.random.default_rng(seed)
    map_from_cam, odom_from_base, base_from_cam = (random_pose(rng) for _ in range(3))
    correction = map_from_odom(map_from_cam, odom_from_cam(odom_from_base, base_from_cam))
    assert np.allclose(correction @ odom_from_base @ base_from_cam, map_from_cam)
    # the base in the map, with and without odometry, is the same place
    assert np.allclose(correction @ odom_from_base, map_from_base(map_from_cam, base_from_cam))


def test_no_drift_gives_identity_and_drift_gives_its_inverse():
    rng = np.random.default_rng(7)
    map_from_cam = random_pose(rng)
    assert np.allclose(map_from_odom(map_from_cam, map_from_cam), np.eye(4))
    drift = make_pose(np.eye(3), [0.5, -0.2, 0.0])  # odometry thinks the camera is 0.5 m further
    t_err, r_err = pose_error(map_from_odom(map_from_cam, drift @ map_from_cam), invert_pose(drift))
    assert t_err < 1e-9 and r_err < 1e-6


def test_identity_mounting_makes_the_base_the_camera():
    rng = np.random.default_rng(3)
    map_from_cam = random_pose(rng)
    assert np.allclose(map_from_base(map_from_cam, np.eye(4)), map_from_cam)


@pytest.mark.parametrize("seed", range(5))
def test_the_base_covariance_carries_the_lever_arm(seed):
    """base_covariance = J cov J^T with J the base pose's response to small camera pose errors
    (position in the map, rotation about the map's axes), found here by finite differences."""
    from scipy.spatial.transform import Rotation

    from marepo_ros.runtime.rep105 import base_covariance
    rng = np.random.default_rng(seed)
    map_from_cam, base_from_cam = random_pose(rng), random_pose(rng)
    base = map_from_base(map_from_cam, base_from_cam)
    eps, J = 1e-6, np.zeros((6, 6))
    for i in range(6):
        d = np.zeros(6)
        d[i] = eps
        moved = make_pose(Rotation.from_rotvec(d[3:]).as_matrix() @ map_from_cam[:3, :3],
                          map_from_cam[:3, 3] + d[:3])
        moved_base = map_from_base(moved, base_from_cam)
        J[:3, i] = (moved_base[:3, 3] - base[:3, 3]) / eps
        J[3:, i] = Rotation.from_matrix(moved_base[:3, :3] @ base[:3, :3].T).as_rotvec() / eps
    A = rng.normal(size=(6, 6))
    cov = A @ A.T
    assert np.allclose(base_covariance(cov, map_from_cam, base_from_cam), J @ cov @ J.T, rtol=1e-4, atol=1e-4)
    # no lever arm (the base at the camera): the same covariance
    assert np.allclose(base_covariance(cov, map_from_cam, make_pose(base_from_cam[:3, :3], [0, 0, 0])), cov)
