"""GRLoc's closed-form pose from per-pixel rays (Li et al. 2025), batched and differentiable.

Given, for N pixels of one view,
    b_i: the pixel's bearing in the camera frame, normalize(K^-1 [u, v, 1])  (unit, (B, N, 3)),
    d_i: the same ray's predicted direction in the map frame (unit),
    p_i: a predicted map point one unit along that ray from the camera centre,
    w_i: a predicted weight >= 0,
and optionally the scene coordinates y_i the rays pass through (map frame, metres):

- rotation (weighted Kabsch): the R maximising sum w_i d_i . R b_i. Solved with Horn's unit
  quaternion (top eigenvector of a symmetric 4x4), which gives the same R as the SVD of
  M = sum w_i d_i b_i^T with R = U diag(1, 1, det(U V^T)) V^T, but a gradient that stays finite
  when two singular values of M coincide (they nearly do for any square image: the spread of
  bearings in x and y is alike), where the SVD's backward divides by their difference;
- camera centre c, two forms:
    "points" (GRLoc): c = sum w_i (p_i - R b_i) / sum w_i;
    "rays" (tied to the scene coordinates): with a_i = R b_i, the point nearest to all rays
      through the y_i, c = [sum w_i (I - a_i a_i^T)]^-1 sum w_i (I - a_i a_i^T) y_i;
- robustness: ``rounds`` of Cauchy reweighting on each ray's residual (the chord between d_i
  and R b_i plus the ray's miss: ||p_i - c - R b_i|| for "points", the angle at which the
  ray through y_i misses c for "rays"), on a scale of ``CAUCHY_SCALE`` times the median;
- conditioning: the condition number of A = sum w_i (I - a_i a_i^T), large when the rays are
  nearly parallel (a narrow or collapsed view): the translation is then ill-determined, for
  both forms alike.
"""
from __future__ import annotations

import torch

CAUCHY_SCALE = 2.0
EPS = 1e-9


def bearings(pixels_BN2: torch.Tensor, K_B33: torch.Tensor) -> torch.Tensor:
    """Unit camera-frame bearings (B, N, 3) of pixels (B, N, 2) under intrinsics (B, 3, 3)."""
    uv1 = torch.cat([pixels_BN2, torch.ones_like(pixels_BN2[..., :1])], -1)
    rays = uv1 @ torch.linalg.inv(K_B33).transpose(1, 2)
    return torch.nn.functional.normalize(rays, dim=-1)


def quaternion_matrix(q_B4: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (B, 3, 3) of unit quaternions (B, 4) ordered (w, x, y, z)."""
    w, x, y, z = q_B4.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1).view(-1, 3, 3)


def kabsch_rotation(d_BN3: torch.Tensor, b_BN3: torch.Tensor, w_BN: torch.Tensor) -> torch.Tensor:
    """R (B, 3, 3) maximising sum_i w_i d_i . R b_i (rotates bearings onto directions), by Horn's
    quaternion method in float64."""
    S = torch.einsum("bn,bni,bnj->bij", w_BN.double(), b_BN3.double(), d_BN3.double())
    xx, xy, xz = S[:, 0, 0], S[:, 0, 1], S[:, 0, 2]
    yx, yy, yz = S[:, 1, 0], S[:, 1, 1], S[:, 1, 2]
    zx, zy, zz = S[:, 2, 0], S[:, 2, 1], S[:, 2, 2]
    N = torch.stack([
        xx + yy + zz, yz - zy, zx - xz, xy - yx,
        yz - zy, xx - yy - zz, xy + yx, zx + xz,
        zx - xz, xy + yx, -xx + yy - zz, yz + zy,
        xy - yx, zx + xz, yz + zy, -xx - yy + zz], -1).view(-1, 4, 4)
    q = torch.linalg.eigh(N).eigenvectors[..., -1]            # largest eigenvalue
    return quaternion_matrix(q).to(d_BN3.dtype)


def translation_system(a_BN3: torch.Tensor, w_BN: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """(A (B, 3, 3) = sum w (I - a a^T), the per-ray projectors (B, N, 3, 3)) for unit a."""
    P = torch.eye(3, dtype=a_BN3.dtype, device=a_BN3.device) - a_BN3[..., :, None] * a_BN3[..., None, :]
    return (w_BN[..., None, None] * P).sum(1), P


def condition_number(A_B33: torch.Tensor) -> torch.Tensor:
    """Largest over smallest eigenvalue (B,) of symmetric PSD 3x3 matrices (inf when singular)."""
    ev = torch.linalg.eigvalsh(A_B33.double())
    return (ev[:, -1] / ev[:, 0].clamp_min(0)).to(A_B33.dtype)


def solve_once(d_BN3, b_BN3, w_BN, p_BN3, y_BN3, translation: str
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(R (B, 3, 3), c (B, 3), residuals (B, N), A (B, 3, 3)) for fixed weights."""
    R = kabsch_rotation(d_BN3, b_BN3, w_BN)
    a = b_BN3 @ R.transpose(1, 2)                                  # R b_i, map frame
    A, P = translation_system(a, w_BN)
    chord = (d_BN3 - a).norm(dim=-1)
    if translation == "points":
        c = (w_BN[..., None] * (p_BN3 - a)).sum(1) / w_BN.sum(1, keepdim=True).clamp_min(EPS)
        miss = (p_BN3 - a - c[:, None]).norm(dim=-1)
    elif translation == "rays":
        rhs = (w_BN[..., None, None] * P @ y_BN3[..., None]).sum(1)
        ridge = 1e-9 * A.diagonal(dim1=1, dim2=2).sum(-1)[:, None, None] * torch.eye(
            3, dtype=A.dtype, device=A.device)
        c = torch.linalg.solve(A + ridge, rhs)[..., 0]
        off = c[:, None] - y_BN3
        miss = (P @ off[..., None])[..., 0].norm(dim=-1) / off.norm(dim=-1).clamp_min(1e-6)
    else:
        raise ValueError(f"translation must be 'points' or 'rays', not {translation!r}")
    return R, c, chord + miss, A


def solve_pose(d_BN3: torch.Tensor, b_BN3: torch.Tensor, w_BN: torch.Tensor, *,
               p_BN3: torch.Tensor | None = None, y_BN3: torch.Tensor | None = None,
               translation: str = "points", rounds: int = 3
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(map_from_cam (B, 4, 4), condition number (B,)) from rays; see the module doc.

    d_BN3: unit ray directions (map frame); b_BN3: unit bearings (camera frame); w_BN: weights
    >= 0; p_BN3: points one unit along the rays (needed for "points"); y_BN3: scene coordinates
    the rays pass through, metres (needed for "rays"); rounds: Cauchy reweighting rounds after
    the first solve (0: plain weighted solve). Differentiable in d, p, w and y.
    """
    if (p_BN3 if translation == "points" else y_BN3) is None:
        raise ValueError(f"translation {translation!r} needs "
                         f"{'p_BN3' if translation == 'points' else 'y_BN3'}")
    weights = w_BN
    for r in range(rounds + 1):
        R, c, residual, A = solve_once(d_BN3, b_BN3, weights, p_BN3, y_BN3, translation)
        if r < rounds:
            scale = CAUCHY_SCALE * residual.detach().median(1, keepdim=True).values.clamp_min(1e-4)
            weights = w_BN / (1 + (residual.detach() / scale) ** 2)   # IRLS: weights fixed
    T = torch.eye(4, dtype=R.dtype, device=R.device).repeat(len(R), 1, 1)
    T[:, :3, :3], T[:, :3, 3] = R, c
    return T, condition_number(A)
