"""marepo's scene-agnostic map-relative pose regressor (Chen et al., CVPR 2024).

Input: scene coordinates (a head's output at 1/8 resolution, map frame, metres), the pixels
they belong to and the camera's K. Output: ``map_from_cam`` of the camera.

- Dynamic positional encoding: each pixel's ray in camera-independent units,
  u' = 400 (u - cx - 0.5) / fx and v' = 400 (v - cy - 0.5) / fy, encoded with sin/cos of
  d/4 frequencies per axis, interleaved (sin u', cos u', sin v', cos v', ...) as LoFTR's sine
  encoding; plus a NeRF encoding of the coordinates (relative to a centre, clipped to ±50 m,
  scaled to ±pi, 5 frequencies: 3 + 3*2*5 = 33 dims) lifted to d by a 1x1 conv. The two add.
- Linear-attention transformer (elu + 1 kernel, LoFTR's encoder layer) over all tokens; the
  blocks come in groups, each group's input is added to its output ("re-attention" skip) and a
  pose head reads every group's output (intermediate supervision; the last one is the answer).
- Pose head: residual 1x1 conv block, average pooling over tokens, two Linear(d, d), then a
  homogeneous translation (4: xyz / h, + the centre) and a 6D rotation made orthonormal by
  Gram-Schmidt.

The tokens are a set: attention and pooling are permutation invariant, so any subset of a
coordinate map (e.g. the valid cells only) can be passed as (N, 3) coordinates with (N, 2)
pixels. Units: metres, radians, pixels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

COORD_CLIP_M = 50.0
NERF_FREQUENCIES = 5
NERF_DIMS = 3 + 3 * 2 * NERF_FREQUENCIES  # 33
RAY_SCALE = 400.0
DEFAULT_ERROR_SIGMA = (1.0, 0.5)  # (m, rad) per-axis error of an unvalidated regressor


@dataclass(frozen=True)
class RegressorConfig:
    """Transformer size: ``blocks`` attention layers of width ``dim`` with ``heads`` heads, a
    skip and an intermediate pose output every ``group`` blocks. ``canonical``: express the
    coordinates in the frame of ``weak_perspective_rotation`` before encoding them (our
    addition, see ``PoseRegressor``)."""
    dim: int = 256
    blocks: int = 12
    heads: int = 8
    group: int = 4
    canonical: bool = False

    def __post_init__(self):
        if self.blocks % self.group or self.dim % 4 or self.dim % self.heads:
            raise ValueError(f"invalid regressor config {self}: need blocks % group == 0, "
                             "dim % 4 == 0 and dim % heads == 0")


CONFIGS: dict[str, RegressorConfig] = {
    "paper": RegressorConfig(dim=256, blocks=12, heads=8, group=4),   # marepo as published
    "small": RegressorConfig(dim=128, blocks=6, heads=4, group=3, canonical=True),  # 2 CPU cores
}


def ray_coordinates(pixels_BN2: torch.Tensor, K_B33: torch.Tensor) -> torch.Tensor:
    """(u', v') (B, N, 2) = 400 * ((u, v) - (cx, cy) - 0.5) / (fx, fy) of pixels (B, N, 2)."""
    f = torch.stack([K_B33[:, 0, 0], K_B33[:, 1, 1]], -1)[:, None]
    c = torch.stack([K_B33[:, 0, 2], K_B33[:, 1, 2]], -1)[:, None]
    return RAY_SCALE * (pixels_BN2 - c - 0.5) / f


def ray_encoding(pixels_BN2: torch.Tensor, K_B33: torch.Tensor, dim: int) -> torch.Tensor:
    """Dynamic positional encoding (B, N, dim): for k < dim / 4 and w_k = 10000^(-4k / dim),
    channels 4k..4k+3 are sin(w_k u'), cos(w_k u'), sin(w_k v'), cos(w_k v')."""
    uv = ray_coordinates(pixels_BN2, K_B33)
    k = torch.arange(dim // 4, dtype=uv.dtype, device=uv.device)
    w = torch.exp(-4 * k * math.log(10000.0) / dim)
    a = uv[..., None] * w                                                 # (B, N, 2, dim/4)
    return torch.stack([a[..., 0, :].sin(), a[..., 0, :].cos(),
                        a[..., 1, :].sin(), a[..., 1, :].cos()], -1).flatten(-2)


def nerf_encoding(xyz_BN3: torch.Tensor) -> torch.Tensor:
    """NeRF encoding (B, N, 33): p = clip(xyz, ±50 m) * pi / 50, then p and sin/cos(2^i p)."""
    p = xyz_BN3.clamp(-COORD_CLIP_M, COORD_CLIP_M) * (math.pi / COORD_CLIP_M)
    freq = 2.0 ** torch.arange(NERF_FREQUENCIES, dtype=p.dtype, device=p.device)
    a = (p[..., None, :] * freq[:, None]).flatten(-2)                      # (B, N, 15)
    return torch.cat([p, a.sin(), a.cos()], -1)


@torch.no_grad()
def weak_perspective_rotation(coords_BN3: torch.Tensor, pixels_BN2: torch.Tensor,
                              K_B33: torch.Tensor, centre_B3: torch.Tensor,
                              iterations: int = 3) -> torch.Tensor:
    """A rough map_from_cam rotation (B, 3, 3) in closed form, equivariant to rotations of the
    map frame.

    With all depths equal (weak perspective), centred coordinates X_i - X_mean are
    d R (r_i - r_mean) for the normalised rays r_i = ((u - cx) / fx, (v - cy) / fy): the 3x2
    least-squares map from centred rays to centred coordinates, projected onto orthonormal
    columns, gives R's x and y columns, their cross product the z column. Points farther than
    twice the median from ``centre_B3`` are left out at first, then points whose weak-perspective
    residual exceeds twice the median, ``iterations`` times. Its error grows with the depth
    range of the view (median about 30° on rendered rooms).
    """
    K = K_B33.double()
    rays = (pixels_BN2.double() - K[:, None, :2, 2]) / torch.stack([K[:, 0, 0], K[:, 1, 1]], -1)[:, None]
    X = coords_BN3.double() - centre_B3.double()[:, None]
    dist = X.norm(dim=-1)
    w = (dist <= 2 * dist.median(1, keepdim=True).values).double()[..., None]
    eye2 = 1e-9 * torch.eye(2, dtype=K.dtype, device=K.device)
    for _ in range(iterations):
        n = w.sum(1, keepdim=True)
        Xc = X - (w * X).sum(1, keepdim=True) / n
        rc = rays - (w * rays).sum(1, keepdim=True) / n
        A = (w * Xc).transpose(1, 2) @ rc                                   # (B, 3, 2)
        S = (w * rc).transpose(1, 2) @ rc                                   # (B, 2, 2)
        U, sv, Vh = torch.linalg.svd(A @ torch.linalg.inv(S + eye2), full_matrices=False)
        Q = U @ Vh                                                          # (B, 3, 2)
        res = (Xc - sv.mean(-1)[:, None, None] * rc @ Q.transpose(1, 2)).norm(dim=-1)
        w = (res <= 2 * res.median(1, keepdim=True).values).double()[..., None]
    R = torch.cat([Q, torch.linalg.cross(Q[..., 0], Q[..., 1])[..., None]], -1)
    return R.to(coords_BN3.dtype)


def gram_schmidt(r6_B6: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (B, 3, 3) from 6D vectors (B, 6): columns b1, b2, b1 x b2."""
    a1, a2 = r6_B6[:, :3], r6_B6[:, 3:]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    return torch.stack([b1, b2, torch.linalg.cross(b1, b2)], -1)


def homogeneous_translation(t4_B4: torch.Tensor) -> torch.Tensor:
    """(B, 3) = xyz / h of a homogeneous (B, 4) output, h = softplus(.) + 0.25 (1 at 0, as ACE's
    head)."""
    h = F.softplus(t4_B4[:, 3:], beta=math.log(2) / (1 - 0.25)) + 0.25
    return t4_B4[:, :3] / h


class LinearAttention(nn.Module):
    """Linear attention with the elu(x) + 1 feature map (Katharopoulos et al.), as LoFTR."""

    def forward(self, q_BNHD: torch.Tensor, k_BNHD: torch.Tensor, v_BNHD: torch.Tensor,
                eps: float = 1e-6) -> torch.Tensor:
        """q, k, v (B, N, H, D) -> messages (B, N, H, D)."""
        q, k = F.elu(q_BNHD) + 1, F.elu(k_BNHD) + 1
        n = v_BNHD.shape[1]
        kv = torch.einsum("bnhd,bnhv->bhdv", k, v_BNHD / n)
        z = 1 / (torch.einsum("bnhd,bhd->bnh", q, k.sum(1)) + eps)
        return torch.einsum("bnhd,bhdv->bnhv", q, kv) * (z * n)[..., None]


class AttentionLayer(nn.Module):
    """LoFTR's encoder layer (self-attention): q/k/v/merge projections without bias, LayerNorm,
    MLP on [x, message], residual."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.attention = LinearAttention()
        self.merge = nn.Linear(dim, dim, bias=False)
        self.mlp = nn.Sequential(nn.Linear(2 * dim, 2 * dim, bias=False), nn.ReLU(True),
                                 nn.Linear(2 * dim, dim, bias=False))
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x_BNC: torch.Tensor) -> torch.Tensor:
        """Tokens (B, N, C) -> tokens (B, N, C)."""
        B, N, C = x_BNC.shape
        split = (B, N, self.heads, C // self.heads)
        msg = self.attention(self.q_proj(x_BNC).view(split), self.k_proj(x_BNC).view(split),
                             self.v_proj(x_BNC).view(split))
        msg = self.norm1(self.merge(msg.reshape(B, N, C)))
        msg = self.norm2(self.mlp(torch.cat([x_BNC, msg], -1)))
        return x_BNC + msg


class PooledHead(nn.Module):
    """The layers a pose head reads tokens with: a residual 1x1 conv block (per-token Linear
    layers), average pooling, two Linear(d, d) and a homogeneous translation (4), starting at 0.
    ``PoseHead`` adds a rotation, ``grr.RayHead`` per-token outputs; the shared names let a
    marepo head warm-start a grr one."""

    def __init__(self, dim: int):
        super().__init__()
        self.res1 = nn.Linear(dim, dim)
        self.res2 = nn.Linear(dim, dim)
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, dim)
        self.translation = nn.Linear(dim, 4)
        with torch.no_grad():
            self.translation.bias.zero_()

    def features(self, x_BNC: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens (B, N, C) -> (per-token features (B, N, C), pooled features (B, C))."""
        x = F.relu(x_BNC + self.res2(F.relu(self.res1(x_BNC))))
        return x, F.relu(self.fc2(F.relu(self.fc1(x.mean(1)))))


class PoseHead(PooledHead):
    """Tokens -> camera pose relative to the tokens' centre: ``PooledHead`` plus a 6D rotation
    (6), starting at the identity."""

    def __init__(self, dim: int):
        super().__init__(dim)
        self.rotation = nn.Linear(dim, 6)
        with torch.no_grad():
            self.rotation.bias.copy_(torch.tensor([1.0, 0, 0, 0, 1.0, 0]))

    def forward(self, x_BNC: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens (B, N, C) -> (rotation R_B33 of map_from_cam, camera centre t_B3 in metres
        relative to the tokens' centre)."""
        _, g = self.features(x_BNC)
        return gram_schmidt(self.rotation(g)), homogeneous_translation(self.translation(g))


class PoseRegressor(nn.Module):
    """marepo's transformer: scene coordinates + pixels + K -> map_from_cam (see module doc).

    ``error_sigma``: (metres, radians) typical per-axis error of the regressed pose, measured on
    held-out data when the weights were exported; the ``marepo`` estimator's covariance."""

    kind = "marepo"

    def __init__(self, config: RegressorConfig = CONFIGS["small"]):
        super().__init__()
        self.config = config
        self.coord_embed = nn.Conv1d(NERF_DIMS, config.dim, 1)
        self.layers = nn.ModuleList(AttentionLayer(config.dim, config.heads)
                                    for _ in range(config.blocks))
        self.heads = nn.ModuleList(PoseHead(config.dim)
                                   for _ in range(config.blocks // config.group))
        self.error_sigma = DEFAULT_ERROR_SIGMA

    def forward(self, coords_BN3: torch.Tensor, pixels_BN2: torch.Tensor, K_B33: torch.Tensor,
                centre_B3: torch.Tensor) -> list[torch.Tensor]:
        """Poses regressed after every group of blocks, the last one the final answer.

        coords_BN3: (B, N, 3) scene coordinates in the map frame, metres.
        pixels_BN2: (B, N, 2) their pixel positions (u, v) in the image of K.
        K_B33: (B, 3, 3) intrinsics.
        centre_B3: (B, 3) a point near the coordinates (metres): they are encoded relative to
            it and it is added to the regressed camera centre (the "scene centre").
        Returns a list of blocks / group tensors (B, 4, 4): map_from_cam, float.

        With ``config.canonical`` the coordinates are first rotated by the transpose of
        R0 = ``weak_perspective_rotation`` (B, 3, 3) and the heads' poses rotated back by R0:
        the regressor then only learns the pose relative to that rough frame, and its output
        is exactly equivariant to rotations of the map frame (marepo learns this from ±180°
        jitter over 10 GPU-days, which a CPU budget cannot buy).
        """
        x, _, R0 = self.embed(coords_BN3, pixels_BN2, K_B33, centre_B3)
        poses = []
        for x, head in zip(self.groups(x), self.heads):
            R, t = head(x)
            if R0 is not None:
                R, t = R0 @ R, (R0 @ t[..., None])[..., 0]
            T = torch.eye(4, dtype=R.dtype, device=R.device).repeat(len(R), 1, 1)
            T[:, :3, :3], T[:, :3, 3] = R, t + centre_B3
            poses.append(T)
        return poses

    def embed(self, coords_BN3: torch.Tensor, pixels_BN2: torch.Tensor, K_B33: torch.Tensor,
              centre_B3: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(tokens (B, N, dim), the coordinates as encoded (B, N, 3): relative to the centre and,
        with ``config.canonical``, rotated by R0^T, R0 (B, 3, 3) or None)."""
        X = coords_BN3 - centre_B3[:, None]
        R0 = None
        if self.config.canonical:
            R0 = weak_perspective_rotation(coords_BN3, pixels_BN2, K_B33, centre_B3)
            X = X @ R0
        x = self.coord_embed(nerf_encoding(X).transpose(1, 2))
        return x.transpose(1, 2) + ray_encoding(pixels_BN2, K_B33, self.config.dim), X, R0

    def groups(self, x_BNC: torch.Tensor):
        """Yields the tokens (B, N, dim) after each group of blocks (its input added)."""
        for g in range(self.config.blocks // self.config.group):
            skip = x_BNC
            for layer in self.layers[g * self.config.group:(g + 1) * self.config.group]:
                x_BNC = layer(x_BNC)
            x_BNC = x_BNC + skip
            yield x_BNC


@torch.no_grad()
def robust_centre(coords_BN3: torch.Tensor, iterations: int = 10) -> torch.Tensor:
    """Geometric median (B, 3) of coordinates (B, N, 3) by Weiszfeld iterations from the
    coordinate-wise median: robust to outliers and, unlike the coordinate-wise median,
    equivariant to rotations. The centre the regressor is given in training and inference."""
    c = coords_BN3.median(1).values
    for _ in range(iterations):
        w = 1 / (coords_BN3 - c[:, None]).norm(dim=-1).clamp_min(1e-6)
        c = (w[..., None] * coords_BN3).sum(1) / w.sum(1, keepdim=True)
    return c


def pose_errors(T_B44: torch.Tensor, T_gt_B44: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(L1 error of the camera centres (B,) in metres, rotation angle (B,) in radians)."""
    t_err = (T_B44[:, :3, 3] - T_gt_B44[:, :3, 3]).abs().sum(-1)
    return t_err, rotation_angles(T_B44[:, :3, :3].transpose(1, 2) @ T_gt_B44[:, :3, :3])


def rotation_angles(R_B33: torch.Tensor) -> torch.Tensor:
    """Angles (B,) in radians of rotations (B, 3, 3): ``geometry.rotation_angle``'s
    atan2(|vee(R - R^T)| / 2, (trace R - 1) / 2), batched and differentiable."""
    W = R_B33 - R_B33.transpose(-1, -2)
    sin = 0.5 * torch.stack([W[..., 2, 1], W[..., 0, 2], W[..., 1, 0]], -1).norm(dim=-1)
    cos = 0.5 * (torch.diagonal(R_B33, dim1=-2, dim2=-1).sum(-1) - 1)
    return torch.atan2(sin, cos)


@torch.inference_mode()
def regress_pose(model: PoseRegressor, coords_N3: torch.Tensor, pixels_N2: torch.Tensor,
                 K: np.ndarray) -> tuple[np.ndarray, float]:
    """(map_from_cam (4x4 float64), condition number) of one view from its (N, 3) coordinates
    (metres, map frame) and (N, 2) pixels under the 3x3 K; the centre is the coordinates'
    ``robust_centre``. The condition number is that of a ``grr`` model's translation system
    (large: a degenerate view), 1 for marepo, which solves nothing."""
    param = next(model.parameters())
    coords = coords_N3.to(param)[None]
    pixels = pixels_N2.to(param)[None]
    K_133 = torch.as_tensor(np.asarray(K), dtype=param.dtype, device=param.device)[None]
    out = model(coords, pixels, K_133, robust_centre(coords))[-1]
    T, condition = (out, 1.0) if isinstance(out, torch.Tensor) else \
        (out.poses[model.translation], float(out.condition[0]))
    T = T[0].double().cpu().numpy()
    T[3] = [0, 0, 0, 1]
    return T, condition
