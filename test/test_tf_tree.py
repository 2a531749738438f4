"""TransformTree: chained, interpolated TF lookups and their errors (pure numpy, fast)."""
import time

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from marepo_ros.geometry import invert_pose, make_pose
from marepo_ros.io.tf_tree import TransformError, TransformTree

T0 = 1_700_000_000_000_000_000  # a realistic epoch stamp (ns)
SEC = 1_000_000_000


def rotation_about(axis, angle):
    axis = np.asarray(axis, float)
    return Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle).as_matrix()


R_TILT = Rotation.from_euler("xyz", [0.3, -0.2, 0.7]).as_matrix()


def map_from_odom(s):
    """Slow drift: linear interpolation and slerp reproduce it exactly between samples."""
    return make_pose(rotation_about([0, 0, 1], 0.005 * s) @ R_TILT, [0.2 + 0.01 * s, -0.1 + 0.002 * s, 0.05])


def odom_from_base(s):
    """Constant velocity and constant-rate rotation about one (tilted) axis."""
    return make_pose(rotation_about([0.2, 0.1, 1.0], 0.8 * s) @ R_TILT.T, [1.0 * s, -0.5 * s, 0.1 * s + 0.3])


BASE_FROM_CAMERA = make_pose(rotation_about([0, 1, 0], 0.1), [0.1, 0.02, 0.4])
CAMERA_FROM_OPTICAL = make_pose(np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float), [0, 0.015, 0])
BASE_FROM_IMU = make_pose(rotation_about([1, 0, 0], np.pi), [-0.05, 0, 0.1])
MAP_FROM_DOCK = make_pose(rotation_about([0, 0, 1], 1.2), [3.0, 4.0, 0.0])

ODOM_STAMPS = T0 + np.arange(0, 20 * SEC + 1, SEC)  # 1 Hz, 0 .. 20 s
BASE_STAMPS = T0 + 13_000_000 + np.arange(0, 19 * SEC, 20_000_000)  # 50 Hz, 0.013 .. 18.993 s


def seconds(stamp_ns):
    return (int(stamp_ns) - T0) / SEC


def map_from_optical(stamp_ns):
    s = seconds(stamp_ns)
    return map_from_odom(s) @ odom_from_base(s) @ BASE_FROM_CAMERA @ CAMERA_FROM_OPTICAL


def make_tree(**kwargs):
    tree = TransformTree(**kwargs)
    rng = np.random.default_rng(0)
    tree.add("base_link", "camera_link", BASE_FROM_CAMERA, None)
    tree.add("/camera_link", "camera_color_optical_frame", CAMERA_FROM_OPTICAL, None)
    tree.add("base_link", "imu_link", BASE_FROM_IMU, None)
    tree.add("map", "dock", MAP_FROM_DOCK, None)
    for stamp in rng.permutation(ODOM_STAMPS):  # out of order, as merged bag topics can be
        tree.add("/map", "odom", map_from_odom(seconds(stamp)), int(stamp))
    for stamp in rng.permutation(BASE_STAMPS):
        tree.add("odom", "base_link", odom_from_base(seconds(stamp)), int(stamp))
    return tree


@pytest.fixture(scope="module")
def tree():
    return make_tree()


def test_lookup_on_samples_is_the_product_of_the_chain(tree):
    for stamp in BASE_STAMPS[[0, 7, 500, -1]]:
        np.testing.assert_allclose(tree.lookup("map", "camera_color_optical_frame", stamp),
                                   map_from_optical(stamp), atol=1e-9)


def test_lookup_between_samples_interpolates_exactly_for_constant_rates(tree):
    image_stamps = T0 + 100_000_000 + np.arange(0, 18 * SEC, 33_333_333) + 7_100  # 30 Hz, off the samples
    for stamp in image_stamps:
        np.testing.assert_allclose(tree.lookup("map", "camera_color_optical_frame", stamp),
                                   map_from_optical(stamp), atol=1e-9)


def test_inverse_direction(tree):
    stamp = T0 + 5 * SEC + 123_456_789
    map_from_opt = tree.lookup("map", "camera_color_optical_frame", stamp)
    np.testing.assert_allclose(tree.lookup("camera_color_optical_frame", "map", stamp),
                               invert_pose(map_from_opt), atol=1e-12)
    np.testing.assert_allclose(map_from_opt, map_from_optical(stamp), atol=1e-9)


def test_leaves_of_different_branches(tree):
    stamp = T0 + 9 * SEC + 555_555_555
    np.testing.assert_allclose(tree.lookup("imu_link", "camera_color_optical_frame", stamp),
                               invert_pose(BASE_FROM_IMU) @ BASE_FROM_CAMERA @ CAMERA_FROM_OPTICAL,
                               atol=1e-12)
    np.testing.assert_allclose(tree.lookup("dock", "camera_color_optical_frame", stamp),
                               invert_pose(MAP_FROM_DOCK) @ map_from_optical(stamp), atol=1e-9)
    np.testing.assert_allclose(tree.lookup("odom", "odom", stamp), np.eye(4))


def test_slashed_ids_equal_plain_ones(tree):
    stamp = T0 + 3 * SEC
    np.testing.assert_array_equal(tree.lookup("/map", "/camera_color_optical_frame", stamp),
                                  tree.lookup("map", "camera_color_optical_frame", stamp))
    assert "camera_link" in tree.frames() and "/camera_link" not in tree.frames()
    assert ("map", "odom") in tree.edges() and ("camera_link", "camera_color_optical_frame") in tree.edges()


def test_unknown_frame_lists_known_frames(tree):
    with pytest.raises(TransformError, match="unknown frame 'camera_optical'.*known frames: .*camera_link"):
        tree.lookup("map", "camera_optical", T0 + SEC)
    assert not tree.can_transform("map", "camera_optical", T0 + SEC)


def test_disconnected_frames():
    t = make_tree()
    t.add("world", "gps", np.eye(4), None)
    with pytest.raises(TransformError, match="gps and map are not connected.*known frames: .*world"):
        t.lookup("gps", "map", T0 + SEC)


def test_stamp_outside_an_edge_names_the_edge_and_its_span(tree):
    first, last = int(BASE_STAMPS[0]), int(BASE_STAMPS[-1])
    assert tree.can_transform("map", "camera_color_optical_frame", first)  # exact ends are allowed
    assert tree.can_transform("map", "camera_color_optical_frame", last)
    assert not tree.can_transform("map", "camera_color_optical_frame", first - 1)
    with pytest.raises(TransformError, match=r"odom -> base_link at t=1700000018\.993000001 s.*"
                                             r"span 1700000000\.013000000 \.\. 1700000018\.993000000 s"):
        tree.lookup("map", "camera_color_optical_frame", last + 1)
    with pytest.raises(TransformError, match="map -> odom"):
        tree.lookup("map", "odom", T0 + 21 * SEC)
    # static edges hold at any time
    np.testing.assert_array_equal(tree.lookup("base_link", "imu_link", 0), BASE_FROM_IMU)


def test_max_extrapolation_holds_the_end_sample():
    t = make_tree(max_extrapolation_ns=5_000_000)
    last = int(BASE_STAMPS[-1])
    np.testing.assert_array_equal(t.lookup("odom", "base_link", last + 5_000_000),
                                  t.lookup("odom", "base_link", last))
    assert not t.can_transform("odom", "base_link", last + 5_000_001)


def test_reparenting_loops_and_mixed_static_dynamic_are_rejected():
    t = make_tree()
    with pytest.raises(TransformError, match="camera_link has parent base_link.*child of odom"):
        t.add("odom", "/camera_link", np.eye(4), T0)
    with pytest.raises(TransformError, match="loop"):
        t.add("camera_color_optical_frame", "map", np.eye(4), None)
    with pytest.raises(TransformError, match="odom -> base_link is dynamic"):
        t.add("odom", "base_link", np.eye(4), None)
    with pytest.raises(TransformError, match="4x4"):
        t.add("a", "b", np.eye(3), None)
    t.add("/base_link", "camera_link", BASE_FROM_CAMERA, None)  # the same parent again is fine


def test_adds_after_lookups_merge_and_repeated_stamps_keep_the_first():
    t = TransformTree()
    t.add("odom", "base_link", make_pose(np.eye(3), [0, 0, 0]), 0)
    t.add("odom", "base_link", make_pose(np.eye(3), [2, 0, 0]), 20)
    np.testing.assert_allclose(t.lookup("odom", "base_link", 5)[:3, 3], [0.5, 0, 0])
    t.add("odom", "base_link", make_pose(np.eye(3), [1, 0, 0]), 10)
    t.add("odom", "base_link", make_pose(np.eye(3), [9, 9, 9]), 10)
    np.testing.assert_allclose(t.lookup("odom", "base_link", 5)[:3, 3], [0.5, 0, 0])
    np.testing.assert_allclose(t.lookup("odom", "base_link", 10)[:3, 3], [1, 0, 0])
    t.add("map", "odom", make_pose(np.eye(3), [0, 0, 1]), None)
    t.add("map", "odom", make_pose(np.eye(3), [0, 0, 2]), None)  # a newer static one replaces it
    np.testing.assert_allclose(t.lookup("map", "base_link", 15)[:3, 3], [1.5, 0, 2])


def test_slerp_takes_the_shorter_arc():
    t = TransformTree()
    t.add("a", "b", make_pose(rotation_about([0, 0, 1], 3.0), [0, 0, 0]), 0)
    t.add("a", "b", make_pose(rotation_about([0, 0, 1], -3.0), [0, 0, 0]), 10)  # 2pi - 6 rad apart
    np.testing.assert_allclose(t.lookup("a", "b", 5)[:3, :3], rotation_about([0, 0, 1], np.pi), atol=1e-12)


def test_many_lookups_in_a_long_recording_are_fast():
    t = TransformTree()
    n = 20_000
    poses = np.tile(np.eye(4), (n, 1, 1))
    poses[:, :3, :3] = Rotation.from_rotvec(np.outer(1e-3 * np.arange(n), [0, 0, 1])).as_matrix()
    poses[:, 0, 3] = 1e-2 * np.arange(n)
    for i, pose in enumerate(poses):
        t.add("odom", "base_link", pose, i * 10_000_000)
        t.add("map", "odom", pose, i * 10_000_000)
    t.add("base_link", "camera", np.eye(4), None)
    start = time.perf_counter()
    for stamp in np.linspace(0, (n - 1) * 10_000_000, 3000).astype(np.int64)[:-1] + 3:
        t.lookup("map", "camera", int(stamp))
    assert time.perf_counter() - start < 3.0
