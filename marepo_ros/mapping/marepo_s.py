"""marepo_S: fine-tune the pose regressor on one scene's mapping frames.

Right after the head is trained, every mapping image goes through encoder and head (as at
localization time); the regressor then learns, for a few epochs at a small learning rate, to
map these coordinates to the frames' known poses, with a milder rigid jitter than in
scene-agnostic training (marepo: lr 1e-5, 2 epochs, 15°). The result is stored in the map
(``SceneMap.extras["regressor"]``, listed in the file header) and used by the ``marepo``
estimators whenever the map carries one.
"""
from __future__ import annotations

import copy
import math
import time
from typing import Callable

import numpy as np
import torch

from ..geometry import invert_pose, transform_points
from ..io.mapfile import SceneMap
from ..localization.pipeline import SceneCoordinateHead
from ..models.networks import OUTPUT_SUBSAMPLE, Encoder
from .frames import MappingCancelled, PosedImage, Progress
from ..models.regressor import PoseRegressor
from ..models.regressor_file import load_regressor, regressor_dict
from ..models.regressor_loss import model_outputs, regression_loss, train_step
from ..models.regressor_batch import Sample, collate, random_rigid, rigid_jitter


def head_samples(scene_map: SceneMap, images: list[PosedImage], encoder: Encoder, *,
                 device: str | torch.device = "cpu", progress: Progress | None = None,
                 cancel: Callable[[], bool] | None = None) -> list[Sample]:
    """One Sample per image: the map's scene coordinates of it (what localization sees), its
    cell pixels and K at the map's resolution, and its known map_from_cam."""
    coords_of = SceneCoordinateHead(scene_map, encoder, device)
    out = []
    for i, item in enumerate(images):
        if cancel is not None and cancel():
            raise MappingCancelled("mapping cancelled while computing marepo_S coordinates")
        view = coords_of(item.load_image(), item.K)
        coords, pixels, K = view.coords_N3, view.pixels_N2, view.K_small
        X = coords.double().cpu().numpy()
        depth = transform_points(invert_pose(item.map_from_cam), X)[:, 2]
        h = int(pixels[-1, 1].item() // OUTPUT_SUBSAMPLE) + 1  # rows of the row-major cell grid
        out.append(Sample(X.astype(np.float32), pixels.cpu().numpy(), K, item.map_from_cam,
                          depth.astype(np.float32), (h, len(X) // h)))
        if progress:
            progress("marepo_s_coords", i + 1, len(images), {})
    return out


@torch.no_grad()
def mean_loss(model: PoseRegressor, samples: list[Sample], *, tokens: int | None = None,
              seed: int = 0) -> float:
    """marepo's loss averaged over samples, one at a time (fixed token draws for ``seed``)."""
    model.eval()
    rng = np.random.default_rng(seed)
    total = 0.0
    for s in samples:
        b = collate([s], tokens, rng)
        total += regression_loss(model_outputs(model, b), b)[0].item()
    return total / len(samples)


def finetune_regressor(regressor: PoseRegressor, samples: list[Sample], *, epochs: float = 2.0,
                       lr: float = 1e-5, batch_size: int = 8, tokens: int = 256,
                       max_rotation_deg: float = 15.0, max_translation_m: float = 1.0,
                       seed: int = 0, progress: Progress | None = None,
                       cancel: Callable[[], bool] | None = None) -> tuple[PoseRegressor, dict]:
    """A fine-tuned copy of ``regressor`` (the input is left unchanged) and statistics.

    ``epochs`` passes over ``samples`` in batches of ``batch_size`` views, ``tokens`` random
    cells each, every view rigidly jittered (up to ``max_rotation_deg`` / ``max_translation_m``);
    AdamW at the constant learning rate ``lr``."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = copy.deepcopy(regressor).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    steps = max(1, math.ceil(epochs * len(samples) / batch_size))
    order, pos, avg = rng.permutation(len(samples)), 0, None
    for step in range(steps):
        if cancel is not None and cancel():
            raise MappingCancelled("mapping cancelled while fine-tuning the regressor")
        if pos + batch_size > len(order):
            order, pos = rng.permutation(len(samples)), 0
        views = [rigid_jitter(samples[i], random_rigid(rng, max_rotation_deg=max_rotation_deg,
                                                       max_translation_m=max_translation_m))
                 for i in order[pos:pos + batch_size]]
        pos += batch_size
        info = train_step(model, opt, collate(views, tokens, rng))
        avg = info if avg is None else {k: 0.9 * avg[k] + 0.1 * info[k] for k in info}
        if progress:
            progress("marepo_s", step + 1, steps, avg)
    model.error_sigma = regressor.error_sigma
    return model.eval(), {"steps": steps, "epochs": epochs, "lr": lr, "batch_size": batch_size,
                          "tokens": tokens, "max_rotation_deg": max_rotation_deg,
                          "final_train_loss": round(avg["loss"], 4)}


def marepo_s(scene_map: SceneMap, images: list[PosedImage], encoder: Encoder, *,
             regressor: PoseRegressor | None = None, device: str | torch.device = "cpu",
             progress: Progress | None = None, cancel: Callable[[], bool] | None = None,
             **options) -> dict:
    """Fine-tune ``regressor`` (default: the shipped one) on the map's mapping frames and store
    it in ``scene_map`` (``extras["regressor"]``, ``stats["marepo_s"]``); returns the statistics
    (with marepo's loss on the mapping frames before and after, 256 fixed cells per frame).
    ``options`` go to ``finetune_regressor``. For a mapping service: plain arguments, progress
    and cancel callbacks as ``mapping.build_map``."""
    t0 = time.time()
    samples = head_samples(scene_map, images, encoder, device=device, progress=progress,
                           cancel=cancel)
    base = (regressor or load_regressor()).cpu()
    before = mean_loss(base, samples, tokens=256)
    tuned, stats = finetune_regressor(base, samples, progress=progress, cancel=cancel, **options)
    stats.update({"frames": len(samples), "loss_before": round(before, 4),
                  "loss_after": round(mean_loss(tuned, samples, tokens=256), 4),
                  "seconds": round(time.time() - t0, 1)})
    scene_map.extras["regressor"] = regressor_dict(tuned)
    scene_map.stats["marepo_s"] = stats
    return stats
