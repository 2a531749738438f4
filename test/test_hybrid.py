"""The ``hybrid`` estimator's two-source decision, keyframes by pose, and ``ransac`` on poselib."""
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from marepo_ros.geometry import invert_pose, make_pose, pose_error, project, transform_points
from marepo_ros.localization.estimate import Estimate
from marepo_ros.localization.registry import make_estimator
from marepo_ros.localization.hybrid import HybridEstimator, pixels_between
from marepo_ros.localization.pnp import PoselibRansacEstimator
from marepo_ros.localization.ransac import RansacEstimator
from marepo_ros.localization.retrieval import nearest_keyframes

K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])


def _estimate(x_m: float, confidence: float) -> Estimate:
    return Estimate(make_pose(np.eye(3), [x_m, 0, 0]), np.eye(6), 100, 0.5, confidence)


@pytest.fixture
def hybrid():
    return HybridEstimator(scr=None, points=None, joint=False)


def test_agreeing_sources_give_the_feature_pose_with_the_higher_confidence(hybrid):
    est = hybrid._decide(_estimate(0.03, 0.9), _estimate(0.0, 0.6), None, None, None, K)
    assert est.map_from_cam[0, 3] == 0.0 and est.confidence == 0.9


def test_disagreeing_sources_the_better_supported_wins_with_less_confidence(hybrid):
    est = hybrid._decide(_estimate(1.0, 0.5), _estimate(0.0, 0.8), None, None, None, K)
    assert est.map_from_cam[0, 3] == 0.0 and est.confidence == pytest.approx(0.8 * 0.5)
    est = hybrid._decide(_estimate(1.0, 0.9), _estimate(0.0, 0.2), None, None, None, K)
    assert est.map_from_cam[0, 3] == 1.0 and est.confidence == pytest.approx(0.9 * 0.8)


def test_a_frame_no_source_supports_gets_no_pose_and_one_source_alone_is_less_sure(hybrid):
    assert hybrid._decide(None, None, None, None, None, K) is None
    assert hybrid._decide(None, _estimate(0.0, 0.0), None, None, None, K) is None
    assert hybrid._decide(None, _estimate(0.0, 0.7), None, None, None, K).confidence == 0.35
    assert hybrid._decide(_estimate(0.0, 0.08), None, None, None, None, K).confidence == 0.04


def test_keyframes_by_pose_weigh_distance_and_viewing_direction():
    turn = lambda deg: Rotation.from_euler("y", deg, degrees=True).as_matrix()  # noqa: E731
    poses = np.stack([make_pose(np.eye(3), [0.5, 0, 0]), make_pose(turn(90), [0.05, 0, 0]),
                      make_pose(np.eye(3), [0.1, 0, 0]), make_pose(turn(9), [0.0, 0, 0])])  # scores 0.5, 0.05 + 3, 0.1, 0.3
    assert nearest_keyframes(poses, np.eye(4), 3).tolist() == [2, 3, 0]
    assert len(nearest_keyframes(poses, np.eye(4), 10)) == 4


def test_pixels_between_a_shrunk_image_and_the_full_one():
    K_small = K.copy()
    K_small[:2] *= 0.5
    full = np.array([[10.0, 20.0], [600.0, 400.0]])
    small = pixels_between(K, K_small, full)
    assert np.allclose(small, full * 0.5) and np.allclose(pixels_between(K_small, K, small), full)


def test_ransac_backends_agree_on_scene_coordinates_with_outliers():
    """poselib (CPU default) and the batched torch RANSAC find the same pose; the default
    backend follows the device."""
    rng = np.random.default_rng(0)
    map_from_cam = make_pose(Rotation.from_rotvec([0.1, -0.2, 0.05]).as_matrix(), [0.3, -0.1, 0.2])
    X = transform_points(map_from_cam, rng.uniform([-1, -1, 1.5], [1, 1, 4], (1200, 3)))
    x = project(K, transform_points(invert_pose(map_from_cam), X)) + rng.normal(0, 0.5, (1200, 2))
    X[:400] += rng.normal(0, 1.0, (400, 3))                       # a third are wrong coordinates
    coords, pixels = torch.from_numpy(X).float(), torch.from_numpy(x).float()
    for est in (PoselibRansacEstimator(), RansacEstimator()):
        e = est.estimate(coords, pixels, K)
        t, r = pose_error(e.map_from_cam, map_from_cam)
        assert t < 0.01 and r < 0.2 and 750 < e.n_inliers < 850, type(est).__name__
        assert 0.6 < e.confidence < 0.72
    assert isinstance(make_estimator("ransac"), PoselibRansacEstimator)
    assert isinstance(make_estimator("ransac", device="cuda"), RansacEstimator)  # built, not run
    assert isinstance(make_estimator("ransac", backend="torch"), RansacEstimator)


def test_published_poses_count_the_wrong_ones_a_node_would_publish():
    from marepo_ros.evaluation.metrics import published_poses
    t_cm = np.array([1.0, 60.0, 2.0, 80.0, np.inf])
    r_deg = np.array([0.5, 1.0, 12.0, 1.0, np.inf])
    got = published_poses(t_cm, r_deg, np.array([0.9, 0.8, 0.3, 0.01, 0.0]), 0.05)
    assert got == {"min_confidence": 0.05, "n_published": 3, "n_wrong_published": 2}
