"""GRLoc's geometric representation regression (``grr``, Li et al. 2025) on marepo's transformer.

Same input and transformer as ``regressor.PoseRegressor`` (scene coordinates + pixels + K), but
instead of one pose per group of blocks, every token (a scene coordinate y_i at pixel u_i) gets
    d_i: the map-frame direction of the camera ray through u_i (unit; R b_i when exact),
    p_i: the map point one unit along that ray from the camera centre (c + R b_i: GRLoc's
         pointmap),
    w_i: a weight > 0,
and ``ray_solver.solve_pose`` turns them into the pose in closed form (weighted Kabsch, then the
camera centre as GRLoc's mean of p_i - R b_i, "points", or as the point nearest to the rays
through the y_i, "rays").

How the tokens predict them (our parametrisation, in the canonical frame of the regressor):
the pooled pose head's camera centre c (marepo's translation branch, so marepo's weights
warm-start it) plus a per-token offset gives each token's own centre estimate c_i; the ray
direction is the one from c_i to the token's coordinate plus a learnt correction,
d_i = normalize(normalize(y_i - c_i) + delta_i), and p_i = c_i + d_i. A token whose coordinate
is wrong says so through w_i. At initialisation (offsets and corrections 0, w_i = 1) the rays
all start at marepo's centre.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .ray_solver import bearings, solve_pose
from .regressor import (CONFIGS, PooledHead, PoseRegressor, RegressorConfig,
                        homogeneous_translation)

TRANSLATIONS = ("points", "rays")
WEIGHT_BIAS = math.log(math.e - 1)   # softplus(WEIGHT_BIAS) = 1


class RayHead(PooledHead):
    """Tokens -> (per-token camera centres c_i (B, N, 3), ray corrections delta_i (B, N, 3),
    weights w_i (B, N)), relative to the tokens' centre: ``PooledHead``'s centre plus per-token
    outputs (offsets, corrections and weights start at 0, 0 and 1)."""

    def __init__(self, dim: int):
        super().__init__(dim)
        self.token1 = nn.Linear(dim, dim)
        self.token2 = nn.Linear(dim, 7)
        with torch.no_grad():
            self.token2.weight.zero_()
            self.token2.bias.zero_()

    def forward(self, x_BNC: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, g = self.features(x_BNC)
        out = self.token2(F.relu(self.token1(x)))
        centres = homogeneous_translation(self.translation(g))[:, None] + out[..., :3]
        return centres, out[..., 3:6], F.softplus(out[..., 6] + WEIGHT_BIAS)


@dataclass
class RayOutput:
    """One group's per-token rays (map frame; B views, N tokens) and the poses solved from them:
    directions (B, N, 3) unit, points (B, N, 3) metres, weights (B, N); poses[form]
    map_from_cam (B, 4, 4) for each requested translation form; condition (B,): condition number
    of the translation system."""
    directions: torch.Tensor
    points: torch.Tensor
    weights: torch.Tensor
    poses: dict[str, torch.Tensor]
    condition: torch.Tensor


class GeometryRegressor(PoseRegressor):
    """GRLoc on marepo's transformer (see module doc). ``translation``: the form ``regress``
    and the estimator use by default; ``rounds``: Cauchy reweighting rounds of the solver."""
    kind = "grr"

    def __init__(self, config: RegressorConfig = CONFIGS["small"], *, translation: str = "rays",
                 rounds: int = 3):
        super().__init__(config)
        self.heads = nn.ModuleList(RayHead(config.dim) for _ in range(config.blocks // config.group))
        if translation not in TRANSLATIONS:
            raise ValueError(f"translation must be one of {TRANSLATIONS}, not {translation!r}")
        self.translation, self.rounds = translation, rounds

    def forward(self, coords_BN3: torch.Tensor, pixels_BN2: torch.Tensor, K_B33: torch.Tensor,
                centre_B3: torch.Tensor, translations: tuple[str, ...] | None = None
                ) -> list[RayOutput]:
        """Rays and poses after every group of blocks (the last one the answer); arguments as
        ``PoseRegressor.forward``; ``translations``: the forms to solve (default: this model's)."""
        x, X, R0 = self.embed(coords_BN3, pixels_BN2, K_B33, centre_B3)
        b = bearings(pixels_BN2, K_B33)
        outputs = []
        for x, head in zip(self.groups(x), self.heads):
            centres, delta, w = head(x)
            d = F.normalize(F.normalize(X - centres, dim=-1) + delta, dim=-1)
            p = centres + d
            if R0 is not None:                               # canonical -> map frame
                d, p = d @ R0.transpose(1, 2), p @ R0.transpose(1, 2)
            p = p + centre_B3[:, None]
            poses, condition = {}, None
            for form in translations or (self.translation,):
                poses[form], condition = solve_pose(d, b, w, p_BN3=p, y_BN3=coords_BN3,
                                                    translation=form, rounds=self.rounds)
            outputs.append(RayOutput(d, p, w, poses, condition))
        return outputs


def warm_start(model: GeometryRegressor, marepo: PoseRegressor) -> list[str]:
    """Copy a marepo regressor's embedding, transformer and pose heads' shared layers into
    ``model`` (same config); returns the names of the parameters left at their initial values."""
    if marepo.config != model.config:
        raise ValueError(f"configs differ: {marepo.config} vs {model.config}")
    own = model.state_dict()
    shared = {k: v for k, v in marepo.state_dict().items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(shared, strict=False)
    return sorted(set(own) - set(shared))
