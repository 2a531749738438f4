"""DSAC*-style RANSAC pose estimator: batched P3P hypotheses, soft inlier scoring, refinement.

The solver follows the DSAC* configuration ACE uses (64 hypotheses from 4-point minimal sets,
inlier threshold 10 px, soft inlier score with sharpness 5/tau, up to 100 rounds of iterative
refinement on the inliers), written as batched torch code that runs on the inputs' device.
P3P is Lambda Twist (Persson & Nordberg, ECCV 2018); hypotheses are ``cam_from_map``.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from ..geometry import invert_pose, make_pose
from .estimator import Estimate, check_correspondences

_FIRST_ROUND_PER_HYPOTHESIS = 4  # minimal sets drawn per wanted hypothesis in the first round
_LM_ITERS = 20                   # Levenberg-Marquardt iterations per refinement round
_EPS = 1e-12


def skew(v_B3: torch.Tensor) -> torch.Tensor:
    """Cross-product matrices (..., 3, 3) of vectors (..., 3): skew(a) @ b = a x b."""
    x, y, z = v_B3.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(*v_B3.shape[:-1], 3, 3)


def so3_exp(w_B3: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) of rotation vectors (..., 3) in radians (Rodrigues)."""
    theta2 = (w_B3 * w_B3).sum(-1, keepdim=True)[..., None]
    theta = theta2.sqrt()
    small = theta2 < 1e-12
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta.clamp_min(1e-30))
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta2.clamp_min(1e-30))
    W = skew(w_B3)
    eye = torch.eye(3, dtype=w_B3.dtype, device=w_B3.device)
    return eye + a * W + b * (W @ W)


def _adjugate3(M_B33: torch.Tensor) -> torch.Tensor:
    """Adjugate (..., 3, 3) of 3x3 matrices: adj(M) @ M = det(M) I."""
    c0, c1, c2 = M_B33.unbind(-1)
    return torch.stack([torch.linalg.cross(c1, c2), torch.linalg.cross(c2, c0),
                        torch.linalg.cross(c0, c1)], -2)


def _det3(M_B33: torch.Tensor, adj_B33: torch.Tensor) -> torch.Tensor:
    """Determinants (...,) of 3x3 matrices given their adjugates."""
    return (adj_B33[..., 0, :] * M_B33[..., :, 0]).sum(-1)


def _real_cubic_root(b: torch.Tensor, c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """A real root of x^3 + b x^2 + c x + d (the largest of three), Newton-polished."""
    p = c - b * b / 3
    q = 2 * b ** 3 / 27 - b * c / 3 + d
    disc = (q / 2) ** 2 + (p / 3) ** 3
    sq = disc.clamp_min(0).sqrt()
    u, v = -q / 2 + sq, -q / 2 - sq
    one = u.sign() * u.abs().pow(1 / 3) + v.sign() * v.abs().pow(1 / 3)
    pn = p.clamp_max(-1e-300)
    arg = (3 * q / (2 * pn) * (-3 / pn).sqrt()).clamp(-1, 1)
    three = 2 * (-pn / 3).sqrt() * torch.cos(torch.arccos(arg) / 3)
    x = torch.where(disc >= 0, one, three) - b / 3
    for _ in range(2):
        f = ((x + b) * x + c) * x + d
        df = (3 * x + 2 * b) * x + c
        x = torch.where(df.abs() > _EPS, x - f / torch.where(df == 0, 1.0, df), x)
    return x


def _eigenvector(M_B33: torch.Tensor, e_B: torch.Tensor) -> torch.Tensor:
    """Unit eigenvectors (B, 3) of symmetric 3x3 matrices for simple eigenvalues e_B (B,)."""
    A = M_B33 - e_B[:, None, None] * torch.eye(3, dtype=M_B33.dtype, device=M_B33.device)
    r0, r1, r2 = A.unbind(-2)
    c = torch.stack([torch.linalg.cross(r0, r1), torch.linalg.cross(r0, r2),
                     torch.linalg.cross(r1, r2)], 1)                         # (B, 3, 3)
    norms = c.norm(dim=-1)
    best = norms.argmax(1)
    rows = torch.arange(len(c), device=c.device)
    return c[rows, best] / norms[rows, best].clamp_min(1e-300)[:, None]


def _nonzero_eigen(M_B33: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Smaller and larger eigenvalue (B,) and their unit eigenvectors (B, 3) of singular
    symmetric 3x3 matrices (the third eigenvalue is 0), in closed form."""
    tr = torch.diagonal(M_B33, dim1=-2, dim2=-1).sum(-1)
    m = torch.diagonal(_adjugate3(M_B33), dim1=-2, dim2=-1).sum(-1)         # e_a * e_b
    sq = (tr * tr - 4 * m).clamp_min(0).sqrt()
    e_lo, e_hi = (tr - sq) / 2, (tr + sq) / 2
    return e_lo, e_hi, _eigenvector(M_B33, e_lo), _eigenvector(M_B33, e_hi)


def _refine_depths(L_B3: torch.Tensor, a_B3: torch.Tensor, b_B3: torch.Tensor,
                   iters: int = 2) -> torch.Tensor:
    """Newton steps on the three law-of-cosines equations for depths (..., 3) (Lambda Twist)."""
    (a12, a13, a23), (b12, b13, b23) = a_B3.unbind(-1), b_B3.unbind(-1)
    for _ in range(iters):
        l1, l2, l3 = L_B3.unbind(-1)
        f = torch.stack([l1 * l1 + l2 * l2 + b12 * l1 * l2 - a12,
                         l1 * l1 + l3 * l3 + b13 * l1 * l3 - a13,
                         l2 * l2 + l3 * l3 + b23 * l2 * l3 - a23], -1)
        o = torch.zeros_like(l1)
        J = torch.stack([2 * l1 + b12 * l2, 2 * l2 + b12 * l1, o,
                         2 * l1 + b13 * l3, o, 2 * l3 + b13 * l1,
                         o, 2 * l2 + b23 * l3, 2 * l3 + b23 * l2], -1).reshape(*f.shape, 3)
        adj = _adjugate3(J)
        det = _det3(J, adj)
        ok = det.abs() > 1e-12 * L_B3.abs().amax(-1) ** 3
        step = (adj @ f[..., None])[..., 0] / torch.where(ok, det, 1.0)[..., None]
        L_B3 = torch.where(ok[..., None], L_B3 - step, L_B3)
    return L_B3


def p3p(rays_B33: torch.Tensor, points_B33: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batched Lambda Twist P3P: all camera poses that see 3 points along 3 rays.

    rays_B33: (B, 3, 3) unit bearing vectors in the camera frame, one per row.
    points_B33: (B, 3, 3) the matching 3D points in the map frame (metres), one per row.
    Returns cam_from_map rotations R_B433 (B, 4, 3, 3), translations t_B43 (B, 4, 3) and
    valid_B4 (B, 4) marking the real solutions with all three points in front of the camera;
    invalid slots hold arbitrary values. Degenerate inputs (collinear points) give no solution.
    """
    y1, y2, y3 = rays_B33.unbind(-2)
    x1, x2, x3 = points_B33.unbind(-2)
    b12, b13, b23 = (-2 * (y1 * y2).sum(-1), -2 * (y1 * y3).sum(-1), -2 * (y2 * y3).sum(-1))
    d12, d13, d23 = x1 - x2, x1 - x3, x2 - x3
    a12, a13, a23 = (d12 * d12).sum(-1), (d13 * d13).sum(-1), (d23 * d23).sum(-1)

    # Lambda^T D Lambda = 0 for D1 = a23 M12 - a12 M23 and D2 = a23 M13 - a13 M23.
    o, one = torch.zeros_like(a12), torch.ones_like(a12)
    M12 = torch.stack([one, b12 / 2, o, b12 / 2, one, o, o, o, o], -1).reshape(-1, 3, 3)
    M13 = torch.stack([one, o, b13 / 2, o, o, o, b13 / 2, o, one], -1).reshape(-1, 3, 3)
    M23 = torch.stack([o, o, o, o, one, b23 / 2, o, b23 / 2, one], -1).reshape(-1, 3, 3)
    D1 = a23[:, None, None] * M12 - a12[:, None, None] * M23
    D2 = a23[:, None, None] * M13 - a13[:, None, None] * M23

    # det(D1 + g D2) = det D1 + g tr(adj(D1) D2) + g^2 tr(D1 adj(D2)) + g^3 det D2 = 0.
    adj1, adj2 = _adjugate3(D1), _adjugate3(D2)
    c3 = _det3(D2, adj2)
    c2 = (D1 * adj2.transpose(-1, -2)).sum((-1, -2))
    c1 = (adj1 * D2.transpose(-1, -2)).sum((-1, -2))
    c0 = _det3(D1, adj1)
    ok_cubic = c3.abs() > 1e-12 * D2.abs().amax((-1, -2)).clamp_min(_EPS) ** 3
    c3s = torch.where(ok_cubic, c3, 1.0)
    g = _real_cubic_root(c2 / c3s, c1 / c3s, c0 / c3s)

    # D0 = D1 + g D2 is a pair of planes: s0 (v0.L)^2 + s2 (v2.L)^2 = 0 with s0 < 0 < s2.
    sig0, sig2, v0, v2 = _nonzero_eigen(D1 + g[:, None, None] * D2)
    ok_sig = (sig0 < 0) & (sig2 > 0)
    s = (-sig2 / torch.where(ok_sig, sig0, -1.0)).sqrt()
    s = torch.stack([s, -s], 1)                                              # (B, 2)
    n = v0[:, None] - s[..., None] * v2[:, None]                             # (B, 2, 3)
    ok_n = n[..., 0].abs() > 1e-10
    n0 = torch.where(ok_n, n[..., 0], 1.0)
    w0, w1 = -n[..., 1] / n0, -n[..., 2] / n0                                # l1 = w0 l2 + w1 l3

    # With l3 = tau l2: A tau^2 + Bq tau + C = 0 (ratio of the 12 and 13 equations).
    a12_, a13_, b12_, b13_ = (v[:, None] for v in (a12, a13, b12, b13))
    A = (a13_ - a12_) * w1 * w1 - a12_ * b13_ * w1 - a12_
    Bq = 2 * (a13_ - a12_) * w0 * w1 + a13_ * b12_ * w1 - a12_ * b13_ * w0
    C = (a13_ - a12_) * w0 * w0 + a13_ * b12_ * w0 + a13_
    disc = Bq * Bq - 4 * A * C
    qq = -(Bq + torch.where(Bq >= 0, 1.0, -1.0) * disc.clamp_min(0).sqrt()) / 2
    tiny = _EPS * (a12_ + a13_)
    qq_ok, A_ok = qq.abs() > tiny, A.abs() > tiny
    tau = torch.stack([qq / torch.where(A_ok, A, 1.0), C / torch.where(qq_ok, qq, 1.0)], -1)
    ok = ((ok_cubic & ok_sig)[:, None, None] & ok_n[..., None] & (disc >= 0)[..., None]
          & qq_ok[..., None] & (tau > 0))                                    # (B, 2, 2)
    ok[..., 0] &= A_ok

    den = tau * (b23[:, None, None] + tau) + 1
    l2 = (a23[:, None, None] / torch.where(den > _EPS, den, 1.0)).clamp_min(0).sqrt()
    l3 = tau * l2
    l1 = w0[..., None] * l2 + w1[..., None] * l3
    L = torch.stack([l1, l2, l3], -1).reshape(-1, 4, 3)                      # (B, 4, 3)
    ok = (ok & (den > _EPS)).reshape(-1, 4)
    L = _refine_depths(L, torch.stack([a12, a13, a23], -1)[:, None],
                       torch.stack([b12, b13, b23], -1)[:, None])
    ok &= (L > 0).all(-1) & torch.isfinite(L).all(-1)

    # R maps X = [d12, d13, d12 x d13] (map) onto Y = [e12, e13, e12 x e13] (camera).
    X = torch.stack([d12, d13, torch.linalg.cross(d12, d13)], -1)            # (B, 3, 3)
    adjX = _adjugate3(X)
    detX = _det3(X, adjX)
    ok_X = detX > 1e-10 * a12 * a13                                          # sin^2 > 1e-10
    Xinv = adjX / torch.where(ok_X, detX, 1.0)[:, None, None]
    cam = L[..., None] * rays_B33[:, None]                                   # (B, 4, 3, 3)
    e12, e13 = cam[..., 0, :] - cam[..., 1, :], cam[..., 0, :] - cam[..., 2, :]
    Y = torch.stack([e12, e13, torch.linalg.cross(e12, e13)], -1)
    R = (Y.reshape(-1, 12, 3) @ Xinv).reshape(-1, 4, 3, 3)
    t = cam[..., 0, :] - (R * x1[:, None, None]).sum(-1)
    valid = ok & ok_X[:, None] & torch.isfinite(t).all(-1)
    return R, t, valid


def rays_from_pixels(pixels_N2: torch.Tensor, K_33: torch.Tensor) -> torch.Tensor:
    """Unit bearing vectors (..., 3) in the camera frame of pixels (..., 2) under intrinsics K."""
    uv1 = torch.cat([pixels_N2, torch.ones_like(pixels_N2[..., :1])], -1)
    rays = uv1 @ torch.linalg.inv(K_33).T
    return rays / rays.norm(dim=-1, keepdim=True)


def reprojection_errors(R_H33: torch.Tensor, t_H3: torch.Tensor, coords_N3: torch.Tensor,
                        pixels_N2: torch.Tensor, K_33: torch.Tensor,
                        max_error: float) -> torch.Tensor:
    """Pixel errors (H, N) of map points under cam_from_map poses, clamped at ``max_error``.

    Points at or behind the camera plane (depth <= 0) get ``max_error``.
    """
    H, N = len(R_H33), len(coords_N3)
    P = K_33 @ torch.cat([R_H33, t_H3[..., None]], -1)                       # (H, 3, 4)
    coords_4N = torch.cat([coords_N3, torch.ones_like(coords_N3[:, :1])], 1).T
    u, v, z = (P.reshape(3 * H, 4) @ coords_4N).reshape(H, 3, N).unbind(1)   # (H, N) each
    front = z > 1e-9
    inv_z = torch.where(front, z, 1.0).reciprocal_()
    err = torch.hypot(u.mul_(inv_z).sub_(pixels_N2[:, 0]), v.mul_(inv_z).sub_(pixels_N2[:, 1]))
    return torch.where(front, err.clamp_max_(max_error), max_error)


def _residuals_jacobian(R: torch.Tensor, t: torch.Tensor, X_N3: torch.Tensor,
                        x_N2: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Residuals (2N,) in pixels and their Jacobian (2N, 6) w.r.t. a left update of cam_from_map.

    The update xi = (dt, w) maps (R, t) to (exp(w) R, exp(w) t + dt), so points move by
    dP = dt + w x P in the camera frame.
    """
    P = X_N3 @ R.T + t
    inv_z = 1 / P[:, 2]
    xn, yn = P[:, 0] * inv_z, P[:, 1] * inv_z
    fx, skew_, cx, fy, cy = K[0, 0], K[0, 1], K[0, 2], K[1, 1], K[1, 2]
    r = torch.stack([fx * xn + skew_ * yn + cx, fy * yn + cy], 1) - x_N2
    o, xy = torch.zeros_like(xn), xn * yn
    dxn = torch.stack([inv_z, o, -xn * inv_z, -xy, 1 + xn * xn, -yn], 1)   # d(x/z) / d xi
    dyn = torch.stack([o, inv_z, -yn * inv_z, -1 - yn * yn, xy, xn], 1)    # d(y/z) / d xi
    J = torch.stack([fx * dxn + skew_ * dyn, fy * dyn], 1)                  # (N, 2, 6)
    return r.reshape(-1), J.reshape(-1, 6)


def _apply_update(R: torch.Tensor, t: torch.Tensor, xi: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(exp(w) R, exp(w) t + dt) for xi = (dt, w)."""
    dR = so3_exp(xi[3:])
    return dR @ R, dR @ t + xi[:3]


def _levenberg_marquardt(R: torch.Tensor, t: torch.Tensor, X_N3: torch.Tensor,
                         x_N2: torch.Tensor, K: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """cam_from_map (R (3,3), t (3,)) minimising the squared pixel error of X_N3 onto x_N2."""
    r, J = _residuals_jacobian(R, t, X_N3, x_N2, K)
    cost, mu = float(r @ r), 1e-4
    for _ in range(_LM_ITERS):
        H = J.T @ J
        xi = -torch.linalg.solve_ex(H + mu * torch.diag(torch.diagonal(H)), J.T @ r)[0]
        R2, t2 = _apply_update(R, t, xi)
        r2, J2 = _residuals_jacobian(R2, t2, X_N3, x_N2, K)
        cost2 = float(r2 @ r2)
        converged = abs(cost - cost2) <= 1e-10 * cost + 1e-20 * len(r)
        if cost2 < cost:
            R, t, r, J, cost, mu = R2, t2, r2, J2, cost2, max(mu / 10, 1e-10)
        else:
            mu *= 10
        if converged or mu > 1e8:
            break
    return R, t


def map_frame_covariance(R: torch.Tensor, t: torch.Tensor, X_N3: torch.Tensor,
                         x_N2: torch.Tensor, K: torch.Tensor) -> np.ndarray:
    """6x6 covariance of (camera position, orientation) in the map frame of the cam_from_map
    pose (R, t) fitted to points X_N3 seen at pixels x_N2; see RansacEstimator."""
    r, J = _residuals_jacobian(R, t, X_N3, x_N2, K)
    sigma2 = float(r @ r) / max(r.numel() - 6, 1)
    cov_xi = sigma2 * torch.linalg.pinv(J.T @ J, hermitian=True)
    G = torch.block_diag(R.T, R.T)                     # (dt, w) -> (dc, dtheta) = -G (dt, w)
    cov = (G @ cov_xi @ G.T).cpu().numpy()
    return (cov + cov.T) / 2


def refine_on_inliers(R: torch.Tensor, t: torch.Tensor, X_N3: torch.Tensor, x_N2: torch.Tensor,
                      K: torch.Tensor, *, threshold_px: float, max_error_px: float,
                      max_rounds: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Alternate inlier selection (error < threshold_px) and LM fitting of the cam_from_map pose
    (R (3, 3), t (3,)) for at most ``max_rounds`` rounds; returns R, t, inliers (N,) bool.

    Errors are clamped at ``max_error_px`` (points behind the camera get it). Stops when the
    inlier set repeats, or keeps the last set when the next has < 4 points.
    """
    def select(R, t):
        return reprojection_errors(R[None], t[None], X_N3, x_N2, K, max_error_px)[0] < threshold_px

    inliers = select(R, t)
    for _ in range(max_rounds):
        R, t = _levenberg_marquardt(R, t, X_N3[inliers], x_N2[inliers], K)
        new = select(R, t)
        if torch.equal(new, inliers) or int(new.sum()) < 4:
            break
        inliers = new
    return R, t, inliers


def _nearest_rotation(M_B33: torch.Tensor) -> torch.Tensor:
    """Closest rotations (B, 3, 3) in Frobenius norm to matrices (B, 3, 3) (SVD projection)."""
    U, _, Vh = torch.linalg.svd(M_B33)
    d = torch.det(U @ Vh)
    U = torch.cat([U[..., :2], U[..., 2:] * d[:, None, None]], -1)
    return U @ Vh


def _sync(device: torch.device) -> None:
    """Wait for queued GPU work so that stage timings are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class RansacEstimator:
    """DSAC*-style RANSAC + iterative refinement (``PoseEstimator`` named ``"ransac"``).

    Options (keyword-only):
        n_hypotheses: pose hypotheses scored per call (DSAC*: 64).
        inlier_threshold_px: tau, reprojection error (pixels) below which a point is an inlier.
        score_beta: sharpness of the soft inlier score sum sigmoid(-beta (e - tau)); None gives
            DSAC*'s 5 / tau (1/pixels).
        max_refine_iters: at most this many rounds of "select inliers, fit by
            Levenberg-Marquardt"; stops early when the inlier set no longer changes.
        min_inliers: inlier count from which the confidence equals the inlier ratio.
        max_reprojection_error: errors are clamped at this (pixels) before scoring; points
            behind the camera get it.
        max_minimal_sets: at most this many 4-point sets are drawn per call, in rounds sized by
            the pass rate seen so far, until n_hypotheses pass the minimal-set check; fewer
            hypotheses are scored when the budget runs out.
        seed: seeds the sampling afresh on every call (same inputs and seed give the same
            output on any device); None draws from torch's global generator.

    A hypothesis comes from a random 4-point minimal set: P3P on the first three points, the
    4th choosing among the up to 4 solutions; it is kept only when all 4 points lie in front of
    the camera and reproject within tau (the DSAC* check). The best-scoring hypothesis is
    refined on its inliers.

    ``estimate`` returns an ``Estimate`` with:
        map_from_cam: 4x4 float64 camera-to-map pose.
        covariance: 6x6 float64 over (x, y, z, rot_x, rot_y, rot_z): the camera centre c in
            the map frame (metres) and a rotation vector dtheta in the map frame (radians),
            perturbing the estimate as c' = c + dc, R_map_from_cam' = exp(dtheta) R_map_from_cam.
            It is sigma^2 (J^T J)^-1 of the final fit on the inliers, with sigma^2 the residual
            variance sum(r^2) / (2 n_inliers - 6) (pixels^2), rotated into the map frame.
        n_inliers: points reprojecting within tau under the final pose.
        inlier_ratio: n_inliers / N, with N all input correspondences.
        confidence: inlier_ratio * min(1, n_inliers / min_inliers), in [0, 1].
        timings_ms: "hypotheses", "scoring", "refine" (milliseconds).
    """
    name = "ransac"

    def __init__(self, *, n_hypotheses: int = 64, inlier_threshold_px: float = 10.0,
                 score_beta: float | None = None, max_refine_iters: int = 100,
                 min_inliers: int = 100, max_reprojection_error: float = 100.0,
                 max_minimal_sets: int = 8192, seed: int | None = 0):
        if not 1 <= n_hypotheses <= max_minimal_sets:
            raise ValueError("need 1 <= n_hypotheses <= max_minimal_sets")
        if not 0 < inlier_threshold_px <= max_reprojection_error:
            raise ValueError("need 0 < inlier_threshold_px <= max_reprojection_error")
        self.n_hypotheses = n_hypotheses
        self.inlier_threshold_px = float(inlier_threshold_px)
        self.score_beta = 5.0 / self.inlier_threshold_px if score_beta is None else score_beta
        self.max_refine_iters = max_refine_iters
        self.min_inliers = max(int(min_inliers), 1)
        self.max_reprojection_error = float(max_reprojection_error)
        self.max_minimal_sets = max_minimal_sets
        self.seed = seed

    def estimate(self, coords_N3: torch.Tensor, pixels_N2: torch.Tensor,
                 K: np.ndarray) -> Estimate | None:
        """Pose from (N, 3) map-frame scene coordinates and their (N, 2) pixels; see class doc."""
        n_total = check_correspondences(coords_N3, pixels_N2, K)
        dtype = coords_N3.dtype
        dtype = dtype if dtype in (torch.float32, torch.float64) else torch.float32
        coords = coords_N3.to(dtype)
        pixels = pixels_N2.to(device=coords.device, dtype=dtype)
        finite = torch.isfinite(coords).all(1) & torch.isfinite(pixels).all(1)
        coords, pixels = coords[finite], pixels[finite]
        if len(coords) < 4:
            return None
        device = coords.device
        K64 = torch.as_tensor(np.asarray(K, dtype=np.float64), device=device)
        timings = {}

        t0 = time.perf_counter()
        R_H33, t_H3 = self._hypotheses(coords, pixels, K64)
        _sync(device)
        timings["hypotheses"] = (time.perf_counter() - t0) * 1e3
        if len(R_H33) == 0:
            return None

        t0 = time.perf_counter()
        err_HN = reprojection_errors(R_H33.to(dtype), t_H3.to(dtype), coords, pixels,
                                     K64.to(dtype), self.max_reprojection_error)
        score_H = err_HN.sub_(self.inlier_threshold_px).mul_(-self.score_beta).sigmoid_().sum(1)
        best = int(score_H.argmax())
        _sync(device)
        timings["scoring"] = (time.perf_counter() - t0) * 1e3

        t0 = time.perf_counter()
        X, x = coords.double(), pixels.double()
        R, t, inliers = refine_on_inliers(R_H33[best], t_H3[best], X, x, K64,
                                          threshold_px=self.inlier_threshold_px,
                                          max_error_px=self.max_reprojection_error,
                                          max_rounds=self.max_refine_iters)
        cov = map_frame_covariance(R, t, X[inliers], x[inliers], K64)
        _sync(device)
        timings["refine"] = (time.perf_counter() - t0) * 1e3

        n_inliers = int(inliers.sum())
        ratio = n_inliers / n_total
        cam_from_map = make_pose(R.cpu().numpy(), t.cpu().numpy())
        return Estimate(map_from_cam=invert_pose(cam_from_map), covariance=cov,
                        n_inliers=n_inliers, inlier_ratio=ratio,
                        confidence=ratio * min(1.0, n_inliers / self.min_inliers),
                        timings_ms=timings)

    def _generator(self) -> torch.Generator | None:
        if self.seed is None:
            return None
        return torch.Generator().manual_seed(self.seed)

    def _hypotheses(self, coords_N3: torch.Tensor, pixels_N2: torch.Tensor,
                    K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Up to n_hypotheses cam_from_map poses (H, 3, 3), (H, 3) in float64 passing the
        minimal-set check, in sampling order."""
        n, gen = len(coords_N3), self._generator()
        Rs, ts, found, drawn = [], [], 0, 0
        size = min(_FIRST_ROUND_PER_HYPOTHESIS * self.n_hypotheses, self.max_minimal_sets)
        while size > 0:
            idx = torch.randint(n, (size, 4), generator=gen).to(coords_N3.device)
            R, t = self._solve_minimal_sets(coords_N3[idx].double(), pixels_N2[idx].double(), K)
            Rs.append(R)
            ts.append(t)
            found, drawn = found + len(R), drawn + size
            missing, budget = self.n_hypotheses - found, self.max_minimal_sets - drawn
            if missing <= 0:
                break
            size = min(budget, max(self.n_hypotheses,
                                   math.ceil(1.25 * missing * drawn / max(found, 1))))
        return torch.cat(Rs)[:self.n_hypotheses], torch.cat(ts)[:self.n_hypotheses]

    def _solve_minimal_sets(self, X_B43: torch.Tensor, x_B42: torch.Tensor, K: torch.Tensor
                            ) -> tuple[torch.Tensor, torch.Tensor]:
        """P3P on points 0-2 of each minimal set, the solution that reprojects all 4 points best;
        returns only the sets whose 4 points lie in front and within tau: (M, 3, 3), (M, 3)."""
        eye = torch.eye(4, dtype=torch.bool, device=X_B43.device)
        distinct = ((X_B43[:, :, None] != X_B43[:, None]).any(-1) | eye).all((-1, -2))
        R, t, valid = p3p(rays_from_pixels(x_B42[:, :3], K), X_B43[:, :3])   # (B, 4, ...)
        B = len(R)
        P = ((K @ R).reshape(B, 12, 3) @ X_B43.transpose(1, 2)).reshape(B, 4, 3, 4)
        u, v, z = (P + (K @ t[..., None])).unbind(2)                        # (B, 4 sol, 4 pt)
        front = z > 0
        inv_z = torch.where(front, z, 1.0).reciprocal()
        err = torch.hypot(u * inv_z - x_B42[:, None, :, 0], v * inv_z - x_B42[:, None, :, 1])
        err = torch.where(front & valid[..., None], err, torch.inf).amax(-1)  # (B, 4 sol)
        err, sol = err.min(-1)
        keep = (err < self.inlier_threshold_px) & distinct
        rows = torch.arange(len(R), device=R.device)
        return _nearest_rotation(R[rows, sol][keep]), t[rows, sol][keep]
