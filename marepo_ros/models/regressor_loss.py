"""Training objectives of the pose regressors (``marepo`` and ``grr``) and one optimisation step.

- marepo: sum over the intermediate outputs of L1 camera-centre error (m) + rotation angle
  (rad).
- grr (GRLoc): per output, the same pose term for every solved translation form, plus the ray
  cosine term mean(1 - d_i . R_gt b_i) and the point term mean ||p_i - (c_gt + R_gt b_i)||
  (metres).
- GCR (GeLoc3r's geometric-consistency regularisation, optional, for either): per regressed
  pose P, + teacher_weight * pose term to the (stop-gradient) teacher pose, counted on the
  samples that have one, + reprojection_weight * Huber error of the exact coordinates
  reprojected under P, in normalised image units (pixels / focal), so that it does not depend on
  the image size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .grr import TRANSLATIONS
from .ray_solver import bearings
from .regressor import PoseRegressor, pose_errors, robust_centre

MIN_DEPTH_M = 0.05   # reprojection: points closer to (or behind) the camera are held at this depth


@dataclass(frozen=True)
class GCR:
    """GeLoc3r's regularisation weights (lambda_1, lambda_2) and the Huber threshold of the
    reprojection term (normalised image units: 0.02 is about 1.1 degrees)."""
    teacher_weight: float = 1.0
    reprojection_weight: float = 1.0
    huber: float = 0.02


def pose_term(T_B44: torch.Tensor, T_ref_B44: torch.Tensor) -> torch.Tensor:
    """(B,) L1 camera-centre error (m) + rotation angle (rad)."""
    t_err, r_err = pose_errors(T_B44, T_ref_B44)
    return t_err + r_err


def reprojection_term(T_B44: torch.Tensor, X_BN3: torch.Tensor, pixels_BN2: torch.Tensor,
                      K_B33: torch.Tensor, huber: float) -> torch.Tensor:
    """(B,) mean Huber error of map points (B, N, 3) reprojected under map_from_cam (B, 4, 4)
    against their pixels (B, N, 2), in normalised image units (depth >= MIN_DEPTH_M)."""
    cam = (X_BN3 - T_B44[:, None, :3, 3]) @ T_B44[:, :3, :3]        # R^T (X - c), row vectors
    projected = cam[..., :2] / cam[..., 2:].clamp_min(MIN_DEPTH_M)
    target = bearings(pixels_BN2, K_B33)
    target = target[..., :2] / target[..., 2:]
    err = (projected - target).norm(dim=-1)
    return F.huber_loss(err, torch.zeros_like(err), reduction="none", delta=huber).mean(-1) / huber


def gcr_term(T_B44: torch.Tensor, batch: dict[str, torch.Tensor], gcr: GCR) -> torch.Tensor:
    """GeLoc3r's two regularisers for one regressed pose (scalar)."""
    ok = batch["teacher_ok_B"].float()
    teacher = pose_term(T_B44, batch["teacher_B44"].detach())
    reproj = reprojection_term(T_B44, batch["exact_BN3"], batch["pixels_BN2"], batch["K_B33"],
                               gcr.huber)
    return gcr.teacher_weight * (ok * teacher).sum() / ok.sum().clamp_min(1) + \
        gcr.reprojection_weight * reproj.mean()


def regression_loss(outputs: list, batch: dict[str, torch.Tensor], gcr: GCR | None = None
                    ) -> tuple[torch.Tensor, dict[str, float]]:
    """(loss, the last output's mean errors of its first pose in cm and degrees) for a model's
    outputs (``PoseRegressor``: list of (B, 4, 4); ``GeometryRegressor``: list of ``RayOutput``)."""
    T_gt = batch["map_from_cam_B44"]
    total, a = 0.0, None
    for out in outputs:
        poses = [out] if isinstance(out, torch.Tensor) else list(out.poses.values())
        for T in poses:
            total = total + pose_term(T, T_gt).mean()
            if gcr is not None:
                total = total + gcr_term(T, batch, gcr)
        if not isinstance(out, torch.Tensor):
            if a is None:          # the true rays R_gt b_i, the same for every output
                a = bearings(batch["pixels_BN2"], batch["K_B33"]) @ T_gt[:, :3, :3].transpose(1, 2)
            total = total + (1 - (out.directions * a).sum(-1)).mean()
            total = total + (out.points - T_gt[:, None, :3, 3] - a).norm(dim=-1).mean()
    t_err, r_err = pose_errors(poses[0], T_gt)
    return total, {"t_cm": 100 * t_err.mean().item(), "r_deg": math.degrees(r_err.mean().item())}


def model_outputs(model: PoseRegressor, batch: dict[str, torch.Tensor]) -> list:
    """The model's outputs on a batch (``robust_centre`` centres; a ``grr`` model solves both
    translation forms, so both are trained)."""
    args = (batch["coords_BN3"], batch["pixels_BN2"], batch["K_B33"], robust_centre(batch["coords_BN3"]))
    return model(*args, translations=TRANSLATIONS) if model.kind == "grr" else model(*args)


def train_step(model: PoseRegressor, optimizer: torch.optim.Optimizer,
               batch: dict[str, torch.Tensor], gcr: GCR | None = None,
               max_grad_norm: float = 1.0) -> dict[str, float]:
    """One optimisation step on a ``regressor_batch.collate`` batch; returns the loss and the
    last output's mean errors (cm, deg)."""
    loss, info = regression_loss(model_outputs(model, batch), batch, gcr)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return {"loss": loss.item(), **info}
