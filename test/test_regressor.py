"""The marepo regressor, its training data, the marepo estimators and marepo_S."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import jittered_views
from scipy.spatial.transform import Rotation

from marepo_ros.geometry import invert_pose, is_valid_pose, pose_error, rotation_angle, transform_points
from marepo_ros.io.mapfile import SceneMap, load_map, read_header, save_map
from marepo_ros.localization.registry import ESTIMATORS, make_estimator
from marepo_ros.models.identity import state_dict_hash
from marepo_ros.models.networks import Encoder, Head
from marepo_ros.models.regressor import (CONFIGS, PoseRegressor, RegressorConfig, gram_schmidt,
                                         nerf_encoding, ray_encoding, regress_pose, robust_centre,
                                         rotation_angles, weak_perspective_rotation)
from marepo_ros.models.regressor_file import load_regressor, regressor_from_dict
from marepo_ros.synthetic.raycast import render
from marepo_ros.synthetic.scene import random_scene
from marepo_ros.training.regressor_data import (VALIDATION_SEEDS, Corruption, SampleStream, corrupt,
                                       random_intrinsics, random_rigid, random_view, rigid_jitter)

# The shipped small regressor on exact coordinates of held-out views: regression alone is
# coarse (REGRESSOR_CARD.md: median 9.6 cm / 2.7° on 100 held-out views; these four views: 9-34 cm,
# 1.9-3.6°); refined on the coordinates that agree with it, the pose is exact.
REGRESSION_TOL = (0.5, 8.0)    # metres, degrees: marepo
REFINED_TOL = (0.01, 0.2)      # metres, degrees: marepo+refine


@pytest.fixture(scope="module")
def scene():
    return random_scene(VALIDATION_SEEDS[-1])


@pytest.fixture(scope="module")
def views(scene):
    return jittered_views(scene, 7, 4)


def tensors(sample):
    return torch.from_numpy(sample.coords_N3), torch.from_numpy(sample.pixels_N2)


def test_rigid_jitter_moves_coordinates_and_pose_together(scene):
    rng = np.random.default_rng(0)
    K, w, h = random_intrinsics(rng)
    s = random_view(scene, rng, K, w, h)
    J = random_rigid(rng)
    j = rigid_jitter(s, J)
    np.testing.assert_allclose(j.coords_N3, transform_points(J, s.coords_N3.astype(np.float64)),
                               atol=1e-5)
    np.testing.assert_array_equal(j.map_from_cam, J @ s.map_from_cam)
    # every coordinate keeps its place in the camera frame: it still projects to its pixel
    cam = transform_points(invert_pose(j.map_from_cam), j.coords_N3.astype(np.float64))
    uv = cam[:, :2] / cam[:, 2:] @ K[:2, :2].T + K[:2, 2]
    np.testing.assert_allclose(uv, s.pixels_N2, atol=1e-3)
    np.testing.assert_allclose(cam[:, 2], s.depth_N, rtol=1e-5)


def test_rigid_jitter_ranges():
    rng = np.random.default_rng(1)
    Js = [random_rigid(rng) for _ in range(400)]
    angles = [pose_error(J, np.eye(4))[1] for J in Js]
    assert max(angles) > 150 and max(angles) <= 180
    assert np.abs(np.stack([J[:3, 3] for J in Js])).max() <= 1.0
    small = [pose_error(random_rigid(rng, max_rotation_deg=15), np.eye(4))[1] for _ in range(100)]
    assert max(small) <= 15 + 1e-9


def test_rendered_coordinates_are_exact(scene):
    rng = np.random.default_rng(3)
    K, w, h = random_intrinsics(rng)
    s = random_view(scene, rng, K, w, h)
    # cell centres lie at half pixels: render on a grid shifted by half a pixel
    K_half = K.copy()
    K_half[:2, 2] -= 0.5
    _, depth = render(scene, K_half, s.map_from_cam, w, h)
    ui = (s.pixels_N2 - 0.5).astype(int)
    np.testing.assert_allclose(s.depth_N, depth[ui[:, 1], ui[:, 0]], rtol=1e-4)
    assert s.grid_hw == (math.ceil(h / 8), math.ceil(w / 8))


def test_corruption_keeps_pose_and_moves_coordinates(scene):
    rng = np.random.default_rng(4)
    K, w, h = random_intrinsics(rng)
    s = random_view(scene, rng, K, w, h)
    c = corrupt(s, rng, scene.size, Corruption(clean_prob=0.0, outliers=(0.3, 0.3),
                                               smooth_m=(0.05, 0.05), region_prob=0.0))
    np.testing.assert_array_equal(c.map_from_cam, s.map_from_cam)
    moved = np.linalg.norm(c.coords_N3 - s.coords_N3, axis=1)
    assert np.mean(moved > 0.3) >= 0.2 and np.median(moved) < 0.3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dynamic_positional_encoding_follows_the_formula(dtype):
    K = torch.tensor([[[300.0, 0, 150.0], [0, 280.0, 110.0], [0, 0, 1]]], dtype=dtype)
    pixels = torch.tensor([[[3.5, 3.5], [151.5, 111.5], [299.5, 7.5]]], dtype=dtype)
    dim = 16
    enc = ray_encoding(pixels, K, dim)
    u = 400 * (pixels[0, :, 0] - 150.0 - 0.5) / 300.0
    v = 400 * (pixels[0, :, 1] - 110.0 - 0.5) / 280.0
    for k in range(dim // 4):
        w = 10000.0 ** (-4 * k / dim)
        torch.testing.assert_close(enc[0, :, 4 * k], torch.sin(w * u))
        torch.testing.assert_close(enc[0, :, 4 * k + 1], torch.cos(w * u))
        torch.testing.assert_close(enc[0, :, 4 * k + 2], torch.sin(w * v))
        torch.testing.assert_close(enc[0, :, 4 * k + 3], torch.cos(w * v))
    # A camera with twice the focal length and another principal point: the pixels on the same
    # rays get the same encoding, the same pixels another one.
    K2 = K.clone()
    K2[0, 0, 0], K2[0, 1, 1], K2[0, 0, 2] = 600.0, 560.0, 170.0
    same_rays = torch.stack([170.0 + 0.5 + 2 * (pixels[..., 0] - 150.0 - 0.5),
                             110.0 + 0.5 + 2 * (pixels[..., 1] - 110.0 - 0.5)], -1)
    torch.testing.assert_close(ray_encoding(same_rays, K2, dim), enc)
    assert not torch.allclose(ray_encoding(pixels, K2, dim), enc)


def test_nerf_encoding_clips_and_scales():
    xyz = torch.tensor([[[0.0, 25.0, -80.0]]])
    enc = nerf_encoding(xyz)
    assert enc.shape == (1, 1, 33)
    torch.testing.assert_close(enc[0, 0, :3], torch.tensor([0.0, math.pi / 2, -math.pi]))
    torch.testing.assert_close(enc[0, 0, 3:6], torch.sin(enc[0, 0, :3]))


def test_gram_schmidt_gives_rotations():
    R = gram_schmidt(torch.randn(64, 6, dtype=torch.float64))
    torch.testing.assert_close(R.transpose(1, 2) @ R, torch.eye(3, dtype=torch.float64).expand(64, 3, 3))
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(64, dtype=torch.float64))


def test_batched_rotation_angles_match_geometry():
    """The loss's torch angle and the reports' numpy angle are one formula, exact near 0 and
    near 180 degrees (where arccos of the trace is not)."""
    deg = np.array([0.0, 1e-5, 1e-3, 0.5, 45.0, 120.0, 179.9, 179.999, 180.0])
    axes = Rotation.random(len(deg), random_state=3).apply([0.0, 0.0, 1.0])
    R = Rotation.from_rotvec(axes * np.radians(deg)[:, None]).as_matrix()
    batched = rotation_angles(torch.from_numpy(R)).numpy()
    single = np.array([rotation_angle(r) for r in R])
    np.testing.assert_allclose(batched, single, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.degrees(batched), deg, rtol=1e-9, atol=1e-9)
    grad = torch.from_numpy(R).requires_grad_()
    rotation_angles(grad).sum().backward()
    assert torch.isfinite(grad.grad).all()


@pytest.mark.parametrize("canonical", [False, True])
def test_regressor_shapes_and_token_order_invariance(canonical):
    torch.manual_seed(0)
    cfg = RegressorConfig(dim=32, blocks=4, heads=4, group=2, canonical=canonical)
    model = PoseRegressor(cfg).eval()
    coords, pixels = torch.randn(2, 50, 3), torch.rand(2, 50, 2) * 100
    K = torch.tensor([[80.0, 0, 50], [0, 90.0, 50], [0, 0, 1]]).expand(2, 3, 3)
    centre = torch.randn(2, 3)
    poses = model(coords, pixels, K, centre)
    assert len(poses) == 2 and all(T.shape == (2, 4, 4) for T in poses)
    perm = torch.randperm(50)
    torch.testing.assert_close(model(coords[:, perm], pixels[:, perm], K, centre)[-1], poses[-1])
    assert CONFIGS["paper"] == RegressorConfig(dim=256, blocks=12, heads=8, group=4)


def test_canonical_regressor_is_equivariant_to_the_map_frame(views):
    """Rotating and shifting the map frame moves the regressed pose with it (no absolute pose)."""
    torch.manual_seed(0)
    model = PoseRegressor(RegressorConfig(dim=32, blocks=2, heads=4, group=2, canonical=True))
    s = views[1]
    J = random_rigid(np.random.default_rng(2))
    moved = rigid_jitter(s, J)
    T = regress_pose(model.double(), *tensors(s), s.K)[0]
    T_moved = regress_pose(model, *tensors(moved), s.K)[0]
    np.testing.assert_allclose(T_moved, J @ T, atol=1e-4)


def test_weak_perspective_rotation_is_rough_but_bounded(views):
    errs = []
    for s in views:
        coords, pixels = (t[None] for t in tensors(s))
        K = torch.from_numpy(s.K)[None].float()
        R0 = weak_perspective_rotation(coords, pixels, K, robust_centre(coords))[0]
        T = np.eye(4)
        T[:3, :3] = R0.double().numpy()
        errs.append(pose_error(T, s.map_from_cam)[1])
    assert max(errs) < 75, errs


def test_shipped_regressor_recovers_rendered_pose(views):
    model = load_regressor()
    refined = make_estimator("marepo+refine", short_side=240, regressor=model)
    for s in views:
        t, r = pose_error(regress_pose(model, *tensors(s), s.K)[0], s.map_from_cam)
        assert t < REGRESSION_TOL[0] and r < REGRESSION_TOL[1], (t, r)
        est = refined.estimate(*tensors(s), s.K)
        t, r = pose_error(est.map_from_cam, s.map_from_cam)
        assert t < REFINED_TOL[0] and r < REFINED_TOL[1], (t, r)


@pytest.mark.parametrize("name", ["marepo", "marepo+refine"])
def test_estimator_interface(name, views):
    assert name in ESTIMATORS
    est = make_estimator(name, short_side=240)
    assert est.name == name
    s = views[0]
    coords, pixels = tensors(s)
    coords = coords.clone()
    coords[:5] = torch.nan  # non-finite inputs are ignored
    e = est.estimate(coords, pixels, s.K)
    assert is_valid_pose(e.map_from_cam) and e.map_from_cam.dtype == np.float64
    assert e.covariance.shape == (6, 6)
    np.testing.assert_allclose(e.covariance, e.covariance.T)
    assert np.all(np.linalg.eigvalsh(e.covariance) > 0)
    assert 0 <= e.n_inliers <= len(coords) and e.inlier_ratio == e.n_inliers / len(coords)
    assert 0 <= e.confidence <= e.inlier_ratio
    assert "regress" in e.timings_ms and ("refine" in e.timings_ms) == (name == "marepo+refine")
    assert est.estimate(coords[:3], pixels[:3], s.K) is None
    with pytest.raises(ValueError):
        est.estimate(coords, pixels[:10], s.K)


def test_finetuning_lowers_the_loss_on_a_tiny_scene(views):
    from marepo_ros.mapping.marepo_s import finetune_regressor, mean_loss
    base = load_regressor()
    before = mean_loss(base, views)
    tuned, stats = finetune_regressor(base, views, epochs=6, lr=3e-5, batch_size=2, tokens=128)
    assert stats["steps"] == 12
    assert mean_loss(tuned, views) < before
    assert mean_loss(base, views) == before  # the input model is left unchanged


def test_marepo_s_is_stored_in_the_map_and_used(tmp_path, scene):
    from marepo_ros.mapping.frames import PosedImage
    from marepo_ros.mapping.marepo_s import marepo_s

    torch.manual_seed(0)
    encoder = Encoder().eval()
    scene_map = SceneMap(head=Head(mean=torch.tensor([0.0, 0.0, 1.2]), channels=32).eval(),
                         encoder_id=state_dict_hash(encoder), short_side=64)
    rng = np.random.default_rng(5)
    images = []
    for _ in range(4):
        K = np.array([[70.0, 0, 39.5], [0, 72.0, 31.5], [0, 0, 1]])
        T = random_view(scene, rng, K, 80, 64).map_from_cam
        images.append(PosedImage(lambda T=T, K=K: render(scene, K, T, 80, 64)[0], K, T))
    stats = marepo_s(scene_map, images, encoder, epochs=1, batch_size=2, tokens=32)
    assert stats["steps"] == 2 and stats["frames"] == 4
    path = tmp_path / "s.map"
    save_map(scene_map, path)
    assert read_header(path)["extras"] == ["regressor"]
    loaded = load_map(path)
    assert loaded.stats["marepo_s"]["steps"] == 2
    est = make_estimator("marepo", short_side=64, scene_map=loaded)
    tuned = regressor_from_dict(scene_map.extras["regressor"])
    for a, b in zip(est.regressor.state_dict().values(), tuned.state_dict().values()):
        torch.testing.assert_close(a, b)
    shipped = make_estimator("marepo", short_side=64).regressor.state_dict()
    assert any(not torch.equal(a, b) for a, b in zip(shipped.values(), tuned.state_dict().values()))


def test_training_stream_moves_through_scenes():
    stream = SampleStream(views_per_scene=2, start=5)
    samples = [next(stream) for _ in range(3)]
    assert stream.state() == 7  # scenes 5 and 6 used; a resumed stream starts at 7
    assert all(is_valid_pose(s.map_from_cam) for s in samples)


@pytest.mark.parametrize("model", ["marepo", "grr"])
def test_training_script_warm_starts_and_counts_steps(tmp_path, model):
    """scripts/train_regressor.py end to end for 2 steps from a saved marepo: the run's
    model.pt loads as the requested kind and records the steps in all (warm start's + its own)."""
    import subprocess
    import sys
    from pathlib import Path

    from marepo_ros.models.regressor_file import save_regressor
    base = tmp_path / "base.pt"
    save_regressor(PoseRegressor(CONFIGS["small"]), base, trained_steps=5)
    script = Path(__file__).resolve().parents[1] / "scripts" / "train_regressor.py"
    done = subprocess.run(
        [sys.executable, str(script), "--model", model, "--init", str(base), "--steps", "2",
         "--batch", "2", "--tokens", "32", "--val-scenes", "1", "--views-per-scene", "2",
         "--out", str(tmp_path), "--name", "run"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    saved = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert saved["trained_steps"] == 7
    assert load_regressor(tmp_path / "run" / "model.pt").kind == model
