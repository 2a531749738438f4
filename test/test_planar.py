"""Planar (2D) output: the map's up axis, the level frame, poses and covariances projected
(runtime.planar)."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from marepo_ros.geometry import invert_pose, make_pose
from marepo_ros.runtime.planar import (FIXED_VARIANCE, OPTICAL_BODY_AXES, base_axes, level_frame,
                                       map_up, parse_up, planar_covariance, planar_pose)


def random_unit(rng) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def random_pose(rng) -> np.ndarray:
    return make_pose(Rotation.random(random_state=rng).as_matrix(), rng.normal(0, 3, 3))


def ypr_z(level_from_x: np.ndarray, axes=np.eye(3)) -> tuple[float, float, float, float]:
    """(yaw, pitch, roll, z) of a pose in the level frame (ZYX angles of its body axes)."""
    yaw, pitch, roll = Rotation.from_matrix(level_from_x[:3, :3] @ axes).as_euler("ZYX")
    return yaw, pitch, roll, level_from_x[2, 3]


def test_parse_up():
    assert parse_up("auto") is None
    assert np.allclose(parse_up("0 0 2"), [0, 0, 1])
    assert np.allclose(parse_up(" 1, -1,0 "), np.array([1, -1, 0]) / np.sqrt(2))
    for bad in ("", "up", "0 0", "0 0 0", "nan 0 1", "1 2 3 4"):
        with pytest.raises(ValueError, match="map_up"):
            parse_up(bad)


@pytest.mark.parametrize("seed", range(4))
def test_the_level_frame_turns_z_to_up(seed):
    rng = np.random.default_rng(seed)
    for up in (random_unit(rng), np.array([0, 0, 1.0]), np.array([0, 0, -1.0])):
        R = level_frame(up)[:3, :3]
        assert np.allclose(R @ [0, 0, 1], up) and np.allclose(R.T @ R, np.eye(3))
        assert np.isclose(np.linalg.det(R), 1.0)


def level_cameras(rng, map_from_level, n, *, tilt_deg=3.0, base_from_cam=np.eye(4)) -> np.ndarray:
    """n keyframe poses (map_from_cam) of bases standing level (up to ``tilt_deg`` of roll and
    pitch noise) at random headings, the camera mounted by ``base_from_cam``."""
    axes = base_axes(base_from_cam)
    out = []
    for _ in range(n):
        yaw, pitch, roll = rng.uniform(-np.pi, np.pi), *np.radians(rng.normal(0, tilt_deg, 2))
        level_from_body = make_pose(Rotation.from_euler("ZYX", [yaw, pitch, roll]).as_matrix(),
                                    [*rng.normal(0, 2, 2), 0.3])
        level_from_base = level_from_body @ make_pose(axes.T, np.zeros(3))
        out.append(map_from_level @ level_from_base @ base_from_cam)
    return np.stack(out)


@pytest.mark.parametrize("mount", ["hand-held", "robot"])
def test_auto_up_is_the_keyframes_mean_up_axis(mount):
    rng = np.random.default_rng(3)
    up = random_unit(rng)
    # a robot's camera pitched 20 degrees down, 0.5 m up and 0.2 m forward of the base
    base_from_cam = (np.eye(4) if mount == "hand-held" else make_pose(
        Rotation.from_euler("y", 20, degrees=True).as_matrix() @ OPTICAL_BODY_AXES.T, [0.2, 0.0, 0.5]))
    poses = level_cameras(rng, level_frame(up), 40, base_from_cam=base_from_cam)
    found, note, fallback = map_up("auto", poses, base_from_cam)
    assert not fallback and np.degrees(np.arccos(np.clip(found @ up, -1, 1))) < 1.5
    assert "40 keyframes" in note
    # given: taken as it is; no keyframes or keyframes that disagree: +z, said
    assert np.allclose(map_up("0 2 0", poses, base_from_cam)[0], [0, 1, 0])
    found, note, fallback = map_up("auto", None, base_from_cam)
    assert fallback and np.allclose(found, [0, 0, 1]) and "no keyframe poses" in note
    tumbling = np.stack([random_pose(rng) for _ in range(40)])
    found, note, fallback = map_up("auto", tumbling, base_from_cam)
    assert fallback and np.allclose(found, [0, 0, 1]) and "disagree" in note


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("axes", [np.eye(3), OPTICAL_BODY_AXES], ids=["body", "optical"])
def test_a_planar_pose_keeps_x_y_yaw_and_zeroes_z_roll_pitch(seed, axes):
    rng = np.random.default_rng(seed)
    map_from_level = level_frame(random_unit(rng))
    level_from_x = make_pose(Rotation.from_euler("ZYX", [rng.uniform(-3, 3), *rng.normal(0, 0.3, 2)]
                                                 ).as_matrix() @ axes.T, rng.normal(0, 3, 3))
    flat = planar_pose(map_from_level @ level_from_x, map_from_level, axes)
    level_flat = invert_pose(map_from_level) @ flat
    yaw, pitch, roll, z = ypr_z(level_flat, axes)
    assert np.allclose([pitch, roll, z], 0, atol=1e-9)
    assert np.isclose(yaw, ypr_z(level_from_x, axes)[0])
    assert np.allclose(level_flat[:2, 3], level_from_x[:2, 3])
    assert np.allclose(planar_pose(flat, map_from_level, axes), flat)  # already planar: unchanged


@pytest.mark.parametrize("seed", range(4))
def test_a_planar_covariance_keeps_x_y_yaw_and_fixes_the_rest(seed):
    rng = np.random.default_rng(seed)
    map_from_level = level_frame(random_unit(rng))
    A = rng.normal(size=(6, 6))
    cov = A @ A.T
    out = planar_covariance(cov, map_from_level)
    G = np.kron(np.eye(2), map_from_level[:3, :3].T)  # map axes -> level axes
    level, level_out = G @ cov @ G.T, G @ out @ G.T
    keep, fixed = [0, 1, 5], [2, 3, 4]
    assert np.allclose(level_out[np.ix_(keep, keep)], level[np.ix_(keep, keep)])
    assert np.allclose(level_out[np.ix_(fixed, fixed)], FIXED_VARIANCE * np.eye(3))
    assert np.allclose(level_out[np.ix_(keep, fixed)], 0)
    assert np.allclose(out, out.T) and np.all(np.linalg.eigvalsh(out) > 0)
    # a z-up map: exactly AMCL's layout (x, y, yaw entries), the rest fixed
    flat = planar_covariance(cov, np.eye(4))
    assert np.allclose(flat[np.ix_(keep, keep)], cov[np.ix_(keep, keep)])
    assert np.allclose(np.diag(flat)[fixed], FIXED_VARIANCE)
