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
