"""Tests of the DSAC*-style RANSAC estimator on synthetic correspondences."""
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from marepo_ros.geometry import (backproject, invert_pose, is_valid_pose, make_pose, pose_error,
                                 transform_points)
from marepo_ros.localization.p3p import p3p
from marepo_ros.localization.ransac import (RansacEstimator, _apply_update, _residuals_jacobian,
                                            rays_from_pixels, reprojection_errors)

K = np.array([[525.0, 0.0, 319.5], [0.0, 525.0, 239.5], [0.0, 0.0, 1.0]])
W, H = 640, 480
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def make_scene(n, outlier_fraction=0.0, noise_px=0.0, seed=0):
    """(map_from_cam, coords (n, 3), pixels (n, 2)): points 1-8 m in front of the camera; the
    first ``outlier_fraction`` of them get the coordinates of an unrelated pixel and depth."""
    rng = np.random.default_rng(seed)
    map_from_cam = make_pose(Rotation.random(random_state=seed).as_matrix(), rng.uniform(-5, 5, 3))
    pixels = rng.uniform([0, 0], [W, H], (n, 2))
    coords = transform_points(map_from_cam, backproject(K, pixels, rng.uniform(1, 8, n)))
    n_out = int(round(n * outlier_fraction))
    coords[:n_out] = transform_points(map_from_cam, backproject(
        K, rng.uniform([0, 0], [W, H], (n_out, 2)), rng.uniform(1, 8, n_out)))
    return map_from_cam, coords, pixels + rng.normal(0.0, noise_px, pixels.shape)


def run(estimator, coords, pixels, dtype=torch.float64, device="cpu"):
    return estimator.estimate(torch.tensor(coords, dtype=dtype, device=device),
                              torch.tensor(pixels, dtype=dtype, device=device), K)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("noise_px", [0.0, 0.2])
def test_recovers_pose_with_half_outliers(dtype, device, noise_px):
    gt, coords, pixels = make_scene(2000, outlier_fraction=0.5, noise_px=noise_px, seed=1)
    est = run(RansacEstimator(), coords, pixels, dtype, device)
    assert est is not None and is_valid_pose(est.map_from_cam, tol=1e-9)
    dt, dr = pose_error(est.map_from_cam, gt)
    assert dt < 1e-3 and dr < 0.01
    assert abs(est.inlier_ratio - 0.5) < 0.01 and est.n_inliers == round(est.inlier_ratio * 2000)
    assert 0.0 <= est.confidence <= 1.0
    assert set(est.timings_ms) == {"hypotheses", "scoring", "refine"}


@pytest.mark.parametrize("device", DEVICES)
def test_p3p_contains_true_pose(device):
    g = torch.Generator().manual_seed(0)
    B = 500
    cam_from_map = [invert_pose(make_scene(1, seed=s)[0]) for s in range(B)]
    R = torch.tensor(np.stack([T[:3, :3] for T in cam_from_map]))
    t = torch.tensor(np.stack([T[:3, 3] for T in cam_from_map]))
    pixels = torch.rand(B, 3, 2, generator=g, dtype=torch.float64) * torch.tensor([W, H])
    depth = 1 + 7 * torch.rand(B, 3, 1, generator=g, dtype=torch.float64)
    rays = rays_from_pixels(pixels, torch.tensor(K))
    points_cam = rays / rays[..., 2:] * depth
    points_map = (points_cam - t[:, None]) @ R                               # R^T (P - t)
    Rs, ts, valid = p3p(rays.to(device), points_map.to(device))
    err = (Rs.cpu() - R[:, None]).flatten(-2).norm(dim=-1) + (ts.cpu() - t[:, None]).norm(dim=-1)
    best = torch.where(valid.cpu(), err, torch.inf).min(1).values
    assert (best < 1e-8).all()


def test_p3p_rejects_collinear_points():
    rays = torch.nn.functional.normalize(torch.randn(8, 3, 3, dtype=torch.float64)
                                         + torch.tensor([0.0, 0.0, 4.0]), dim=-1)
    direction = torch.randn(8, 1, 3, dtype=torch.float64)
    points = torch.linspace(0, 1, 3, dtype=torch.float64)[None, :, None] * direction
    assert not p3p(rays, points)[2].any()


def test_points_behind_camera_get_max_error():
    coords = torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, -2.0]], dtype=torch.float64)
    pixels = torch.tensor([[319.5, 239.5], [319.5, 239.5]], dtype=torch.float64)
    R, t = torch.eye(3, dtype=torch.float64)[None], torch.zeros(1, 3, dtype=torch.float64)
    err = reprojection_errors(R, t, coords, pixels, torch.tensor(K), max_error=100.0)
    assert err[0, 0] < 1e-9 and err[0, 1] == 100.0


def test_jacobian_matches_finite_differences():
    gt, coords, pixels = make_scene(50, noise_px=1.0, seed=8)
    cam_from_map = torch.tensor(invert_pose(gt))
    R, t = cam_from_map[:3, :3], cam_from_map[:3, 3]
    X, x, K64 = torch.tensor(coords), torch.tensor(pixels), torch.tensor(K)
    _, J = _residuals_jacobian(R, t, X, x, K64)
    h = 1e-6
    for i in range(6):
        xi = torch.zeros(6, dtype=torch.float64)
        xi[i] = h
        plus = _residuals_jacobian(*_apply_update(R, t, xi), X, x, K64)[0]
        minus = _residuals_jacobian(*_apply_update(R, t, -xi), X, x, K64)[0]
        assert torch.allclose((plus - minus) / (2 * h), J[:, i], rtol=1e-5, atol=1e-4)


def test_ignores_non_finite_correspondences():
    gt, coords, pixels = make_scene(500, outlier_fraction=0.2, seed=9)
    coords[:10] = np.nan
    est = run(RansacEstimator(), coords, pixels)
    dt, dr = pose_error(est.map_from_cam, gt)
    assert dt < 1e-3 and dr < 0.01 and est.inlier_ratio == pytest.approx(0.8, abs=0.01)


def test_same_seed_same_output():
    _, coords, pixels = make_scene(1000, outlier_fraction=0.5, noise_px=1.0, seed=2)
    a = run(RansacEstimator(seed=7), coords, pixels)
    b = run(RansacEstimator(seed=7), coords, pixels)
    assert np.array_equal(a.map_from_cam, b.map_from_cam)
    assert np.array_equal(a.covariance, b.covariance) and a.n_inliers == b.n_inliers


def test_returns_none_without_a_pose():
    _, coords, pixels = make_scene(10, seed=3)
    assert run(RansacEstimator(), coords[:3], pixels[:3]) is None
    assert run(RansacEstimator(), coords[:0], pixels[:0]) is None
    same_point = np.repeat(coords[:1], 10, axis=0)                           # no P3P solution
    assert run(RansacEstimator(), same_point, pixels) is None


def test_pure_outliers_give_low_confidence():
    _, coords, pixels = make_scene(1000, outlier_fraction=1.0, seed=4)
    est = run(RansacEstimator(max_minimal_sets=1024), coords, pixels)
    assert est is None or est.confidence < 0.05


def test_rejects_bad_shapes():
    with pytest.raises(ValueError):
        RansacEstimator().estimate(torch.zeros(10, 2), torch.zeros(10, 2), K)


@pytest.mark.parametrize("outlier_fraction", [0.0, 0.3])
def test_inlier_ratio_matches_truth(outlier_fraction):
    _, coords, pixels = make_scene(1000, outlier_fraction=outlier_fraction, noise_px=1.0, seed=5)
    est = run(RansacEstimator(), coords, pixels)
    assert abs(est.inlier_ratio - (1 - outlier_fraction)) < 0.01
    assert est.confidence == pytest.approx(est.inlier_ratio)


def test_covariance_is_psd_and_shrinks_with_more_inliers():
    covs = []
    for n in (100, 1000):
        _, coords, pixels = make_scene(n, noise_px=1.0, seed=6)
        cov = run(RansacEstimator(), coords, pixels).covariance
        assert cov.shape == (6, 6) and np.allclose(cov, cov.T, rtol=0, atol=1e-15)
        assert np.linalg.eigvalsh(cov).min() >= 0
        covs.append(cov)
    assert np.trace(covs[1][:3, :3]) < 0.3 * np.trace(covs[0][:3, :3])
    assert np.trace(covs[1][3:, 3:]) < 0.3 * np.trace(covs[0][3:, 3:])


def test_covariance_matches_the_errors():
    """Map-frame (position, rotation vector) errors have Mahalanobis^2 ~ chi^2(6), mean 6."""
    m2 = []
    for seed in range(20):
        gt, coords, pixels = make_scene(300, outlier_fraction=0.2, noise_px=1.0, seed=100 + seed)
        est = run(RansacEstimator(), coords, pixels)
        rot = Rotation.from_matrix(est.map_from_cam[:3, :3] @ gt[:3, :3].T).as_rotvec()
        e = np.r_[est.map_from_cam[:3, 3] - gt[:3, 3], rot]
        m2.append(e @ np.linalg.solve(est.covariance, e))
    assert 3.5 < np.mean(m2) < 9.0
