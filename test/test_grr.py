"""GRLoc's ray solver and the grr regressor, GeLoc3r's GCR terms, and the regressor estimators."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import jittered_views
from scipy.spatial.transform import Rotation

from marepo_ros.geometry import invert_pose, pose_error, transform_points
from marepo_ros.localization.registry import make_estimator
from marepo_ros.models.grr import GeometryRegressor, warm_start
from marepo_ros.models.ray_solver import bearings, kabsch_rotation, solve_pose
from marepo_ros.models.regressor import regress_pose, robust_centre
from marepo_ros.models.regressor_file import load_regressor, regressor_dict, regressor_from_dict
from marepo_ros.models.regressor_batch import collate, random_rigid, rigid_jitter
from marepo_ros.models.regressor_loss import GCR, gcr_term, pose_term, reprojection_term, train_step
from marepo_ros.synthetic.scene import random_scene
from marepo_ros.training.regressor_data import VALIDATION_SEEDS, SampleStream

K = np.array([[300.0, 0, 160], [0, 310.0, 120], [0, 0, 1]])


def pose_T(rng) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.random(random_state=rng.integers(1 << 30)).as_matrix()
    T[:3, 3] = rng.uniform(-3, 3, 3)
    return T


def rays_of(T: np.ndarray, n: int, rng, *, spread_px: float = 150.0):
    """(d, b, p, y) as (1, n, 3) float64 tensors for exact rays of a camera at map_from_cam T."""
    pixels = np.array([160.0, 120.0]) + rng.uniform(-spread_px, spread_px, (n, 2))
    b = bearings(torch.from_numpy(pixels)[None], torch.from_numpy(K)[None])
    R, c = torch.from_numpy(T[:3, :3]), torch.from_numpy(T[:3, 3])
    d = b @ R.T
    depth = torch.from_numpy(rng.uniform(0.5, 4.0, (1, n, 1)))
    return d, b, c + d, c + depth * d


def solved(T_B44) -> np.ndarray:
    return T_B44[0].detach().numpy()


@pytest.mark.parametrize("translation", ["points", "rays"])
def test_solver_recovers_the_pose_exactly_from_noise_free_rays(translation):
    rng = np.random.default_rng(0)
    for _ in range(5):
        T = pose_T(rng)
        d, b, p, y = rays_of(T, 200, rng)
        w = torch.from_numpy(rng.uniform(0.2, 2.0, (1, 200)))
        out, cond = solve_pose(d, b, w, p_BN3=p, y_BN3=y, translation=translation)
        moved, turned = pose_error(solved(out), T)
        assert moved < 1e-6 and turned < 1e-6
        assert cond.item() < 100


def test_horn_rotation_equals_the_svd_kabsch_solution():
    rng = np.random.default_rng(1)
    T = pose_T(rng)
    d, b, _, _ = rays_of(T, 100, rng)
    d = torch.nn.functional.normalize(d + 0.05 * torch.from_numpy(rng.normal(size=d.shape)), dim=-1)
    w = torch.from_numpy(rng.uniform(0.1, 1.0, (1, 100)))
    M = torch.einsum("bn,bni,bnj->bij", w, d, b)[0]
    U, _, Vh = torch.linalg.svd(M)
    R_svd = U @ torch.diag(torch.tensor([1.0, 1.0, torch.det(U @ Vh).item()], dtype=U.dtype)) @ Vh
    torch.testing.assert_close(kabsch_rotation(d, b, w)[0], R_svd, atol=1e-9, rtol=0)


@pytest.mark.parametrize("translation", ["points", "rays"])
def test_solver_degrades_gracefully_with_30_percent_outliers(translation):
    """Noisy rays (0.5°, 1 cm) with 30 % replaced by random ones: the Cauchy rounds keep the pose
    near the truth where the plain weighted solve is pulled away."""
    rng = np.random.default_rng(2)
    errors = {0: [], 3: []}
    for _ in range(10):
        T = pose_T(rng)
        d, b, p, y = rays_of(T, 300, rng)
        d = torch.nn.functional.normalize(d + 0.009 * torch.from_numpy(rng.normal(size=d.shape)), dim=-1)
        y = y + 0.01 * torch.from_numpy(rng.normal(size=y.shape))
        p = p + 0.01 * torch.from_numpy(rng.normal(size=p.shape))
        bad = torch.from_numpy(rng.random(300) < 0.3)
        d[0, bad] = torch.nn.functional.normalize(torch.from_numpy(rng.normal(size=(int(bad.sum()), 3))), dim=-1)
        p[0, bad] = torch.from_numpy(rng.uniform(-5, 5, (int(bad.sum()), 3)))
        y[0, bad] = torch.from_numpy(rng.uniform(-5, 5, (int(bad.sum()), 3)))
        for rounds in errors:
            out, _ = solve_pose(d, b, torch.ones(1, 300, dtype=d.dtype), p_BN3=p, y_BN3=y,
                                translation=translation, rounds=rounds)
            errors[rounds].append(pose_error(solved(out), T))
    plain, robust = np.median(errors[0], 0), np.median(errors[3], 0)
    assert robust[0] < 0.10 and robust[1] < 2.0, robust
    assert robust[0] < plain[0] / 2 and robust[1] < plain[1] / 2, (plain, robust)


def test_a_degenerate_view_is_flagged_by_the_condition_number():
    rng = np.random.default_rng(3)
    T = pose_T(rng)
    d, b, p, y = rays_of(T, 100, rng, spread_px=150)
    _, normal = solve_pose(d, b, torch.ones(1, 100, dtype=d.dtype), p_BN3=p, y_BN3=y, translation="rays")
    d, b, p, y = rays_of(T, 100, rng, spread_px=0.2)      # all rays nearly parallel
    _, narrow = solve_pose(d, b, torch.ones(1, 100, dtype=d.dtype), p_BN3=p, y_BN3=y, translation="rays")
    assert normal.item() < 100 < 1e4 < narrow.item()


def test_solver_gradients_stay_finite_for_a_symmetric_square_view():
    """A square grid of pixels centred on the principal point: M's two smaller singular values
    coincide (where an SVD's backward divides by zero); the quaternion solve stays finite."""
    u, v = np.meshgrid(np.linspace(60, 260, 9), np.linspace(20, 220, 9))
    Ks = np.array([[300.0, 0, 160], [0, 300.0, 120], [0, 0, 1]])
    b = bearings(torch.from_numpy(np.stack([u.ravel(), v.ravel()], -1))[None], torch.from_numpy(Ks)[None])
    d = b.clone().requires_grad_(True)
    w = torch.ones(1, len(b[0]), dtype=b.dtype, requires_grad=True)
    T, _ = solve_pose(d, b, w, p_BN3=d + 0.0, translation="points")
    (T[:, :3, :3].sum() + T[:, :3, 3].sum()).backward()
    assert torch.isfinite(d.grad).all() and torch.isfinite(w.grad).all()


@pytest.fixture(scope="module")
def views():
    return jittered_views(random_scene(VALIDATION_SEEDS[-2]), 5, 3)


def forward(model, sample, translations=None):
    c = torch.from_numpy(sample.coords_N3)[None]
    kw = {} if translations is None else {"translations": translations}
    return model(c, torch.from_numpy(sample.pixels_N2)[None],
                 torch.from_numpy(sample.K).float()[None], robust_centre(c), **kw)


def test_warm_started_grr_starts_at_marepos_camera_centre(views):
    """Offsets 0 at initialisation: every token's ray starts at marepo's regressed centre
    (p_i - d_i), and the "points" form returns it up to the weighted mean of d_i - R b_i."""
    marepo = load_regressor()
    grr = GeometryRegressor(marepo.config, translation="points").eval()
    left = warm_start(grr, marepo)
    assert left and all(".token" in k for k in left)
    with torch.no_grad():
        for s in views:
            centre = forward(marepo, s)[-1][:, :3, 3]
            out = forward(grr, s)[-1]
            starts = out.points - out.directions
            torch.testing.assert_close(starts, centre[:, None].expand_as(starts), atol=1e-4, rtol=0)
            assert (out.poses["points"][:, :3, 3] - centre).norm() < 0.03


def test_grr_is_equivariant_to_the_map_frame_and_survives_a_save(views):
    torch.manual_seed(0)
    grr = GeometryRegressor(translation="rays")
    with torch.no_grad():
        for prm in grr.parameters():
            prm.add_(0.02 * torch.randn_like(prm))
    grr = grr.double().eval()
    s = views[0]
    J = random_rigid(np.random.default_rng(9))
    T, _ = regress_pose(grr, torch.from_numpy(s.coords_N3).double(), torch.from_numpy(s.pixels_N2).double(), s.K)
    moved = rigid_jitter(s, J)
    T_moved, _ = regress_pose(grr, torch.from_numpy(moved.coords_N3).double(),
                              torch.from_numpy(moved.pixels_N2).double(), s.K)
    moved_m, turned = pose_error(T_moved, J @ T)
    assert moved_m < 1e-3 and turned < 0.05
    again = regressor_from_dict(regressor_dict(grr.float(), half=False))
    assert again.kind == "grr" and again.translation == "rays"
    T_again, cond = regress_pose(again, torch.from_numpy(s.coords_N3), torch.from_numpy(s.pixels_N2), s.K)
    assert pose_error(T_again, T)[0] < 1e-3 and math.isfinite(cond)


def test_gcr_terms_vanish_at_the_truth_and_a_grr_step_lowers_its_loss():
    stream = SampleStream(seeds=VALIDATION_SEEDS, teacher=True, views_per_scene=4)
    samples = [next(stream) for _ in range(8)]
    assert any(s.teacher is not None for s in samples) and any(s.exact_N3 is not None for s in samples)
    for s in samples:           # exact coordinates and teacher moved by the jitter with the pose
        if s.teacher is not None:
            assert pose_error(s.teacher, s.map_from_cam)[0] <= 0.10
        cam = transform_points(invert_pose(s.map_from_cam),
                               (s.coords_N3 if s.exact_N3 is None else s.exact_N3).astype(np.float64))
        uv = cam[:, :2] / cam[:, 2:] * np.diag(s.K)[:2] + s.K[:2, 2]
        np.testing.assert_allclose(uv, s.pixels_N2, atol=0.05)
    batch = collate(samples, 64, np.random.default_rng(0))
    T_gt = batch["map_from_cam_B44"]
    assert reprojection_term(T_gt, batch["exact_BN3"], batch["pixels_BN2"], batch["K_B33"], 0.02).max() < 1e-3
    torch.manual_seed(0)
    grr = GeometryRegressor()
    warm_start(grr, load_regressor())
    opt = torch.optim.SGD(grr.parameters(), lr=0.0)
    ok = batch["teacher_ok_B"]
    teacher_only = pose_term(T_gt, batch["teacher_B44"])[ok].mean()   # reprojection term ~0
    assert gcr_term(T_gt, batch, GCR()).item() == pytest.approx(teacher_only.item(), abs=1e-3)
    before = train_step(grr, opt, batch, GCR())["loss"]
    opt.param_groups[0]["lr"] = 1e-3
    for _ in range(3):
        train_step(grr, opt, batch, GCR())
    opt.param_groups[0]["lr"] = 0.0
    assert train_step(grr, opt, batch, GCR())["loss"] < before


def test_grr_estimators_by_name(views):
    s = views[1]
    coords, pixels = torch.from_numpy(s.coords_N3), torch.from_numpy(s.pixels_N2)
    for name in ("grr", "grr+refine"):
        est = make_estimator(name, short_side=240, translation="points")
        assert est.name == name and est.regressor.translation == "points"
        e = est.estimate(coords, pixels, s.K)
        assert e is not None and np.isfinite(e.map_from_cam).all()
    refined = make_estimator("grr+refine", short_side=240).estimate(coords, pixels, s.K)
    assert pose_error(refined.map_from_cam, s.map_from_cam)[0] < 0.01
    with pytest.raises(ValueError, match="keyframe feature map"):
        make_estimator("grr+kf")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_grr_and_its_solver_run_on_cuda_as_on_the_cpu(views):
    s = views[2]
    grr = load_regressor(kind="grr")
    T_cpu, c_cpu = regress_pose(grr, torch.from_numpy(s.coords_N3), torch.from_numpy(s.pixels_N2), s.K)
    est = make_estimator("grr+refine", short_side=240, device="cuda")
    assert next(est.regressor.parameters()).is_cuda
    T_gpu, c_gpu = regress_pose(est.regressor, torch.from_numpy(s.coords_N3).cuda(),
                                torch.from_numpy(s.pixels_N2).cuda(), s.K)
    moved, turned = pose_error(T_gpu, T_cpu)
    assert moved < 1e-3 and turned < 0.05
    e = est.estimate(torch.from_numpy(s.coords_N3).cuda(), torch.from_numpy(s.pixels_N2).cuda(), s.K)
    assert e is not None and pose_error(e.map_from_cam, s.map_from_cam)[0] < 0.01
