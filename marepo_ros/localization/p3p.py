"""Batched Lambda Twist P3P (Persson & Nordberg, ECCV 2018) in torch, on the inputs' device.

``p3p(rays_B33, points_B33)``: unit camera-frame bearing vectors (B, 3, 3) and their map-frame
points (B, 3, 3) in metres -> up to 4 cam_from_map poses per set: R (B, 4, 3, 3), t (B, 4, 3)
metres, valid (B, 4).
"""
from __future__ import annotations

import torch

_EPS = 1e-12


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
