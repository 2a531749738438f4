"""DSAC*-style RANSAC pose estimator: batched P3P hypotheses, soft inlier scoring, refinement.

The solver follows the DSAC* configuration ACE uses (64 hypotheses from 4-point minimal sets,
inlier threshold 10 px, soft inlier score with sharpness 5/tau, up to 100 rounds of iterative
refinement on the inliers), written as batched torch code that runs on the inputs' device.
Minimal solver: ``p3p`` (Lambda Twist); hypotheses are ``cam_from_map``.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from ..geometry import invert_pose, make_pose
from .estimate import Estimate, check_correspondences
from .p3p import p3p

_FIRST_ROUND_PER_HYPOTHESIS = 4  # minimal sets drawn per wanted hypothesis in the first round
_LM_ITERS = 20                   # Levenberg-Marquardt iterations per refinement round


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
