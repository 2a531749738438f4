#!/usr/bin/env python3
"""Head training cost per step on CPU: 1x1 convs as matrix products (shipped) vs convolutions.

Times ``mapping.train_head`` (ACE's loss, AdamW, one-cycle; the `fast` preset's batch of 1024)
on a random feature buffer, once as shipped (``networks.apply_1x1`` runs ``F.linear``) and
once with ``apply_1x1`` replaced by the layer's own ``Conv2d`` over N x C x 1 x 1 tensors, the
way a head of 1x1 convolutions computes it. Prints ms per step and the ratio.

    .venv/bin/python benchmarks/head_speed.py [--widths 128 256] [--steps 100] [--threads 2]
"""
from __future__ import annotations

import argparse
import time
from unittest import mock

import marepo_ros  # noqa: F401  (before torch: sets how its OpenMP threads wait)
import numpy as np
import torch

from marepo_ros.geometry import make_pose
from marepo_ros.mapping.build import FeatureBuffer, preset, train_head
from marepo_ros.mapping.frames import PosedImage


def apply_as_conv(layer: torch.nn.Module, x_NC: torch.Tensor) -> torch.Tensor:
    """The layer run as a convolution over (N, C, 1, 1)."""
    return layer(x_NC[:, :, None, None])[:, :, 0, 0]


def random_problem(n_images: int = 50, n_features: int = 60_000, seed: int = 0):
    """A feature buffer of random features whose pixels see points 2 m in front of random
    cameras near the origin, and those PosedImages."""
    rng = np.random.default_rng(seed)
    K = np.array([[262.5, 0, 160], [0, 262.5, 120], [0, 0, 1]])
    images = [PosedImage(lambda: None, K, make_pose(np.eye(3), rng.normal(0, 0.3, 3)))
              for _ in range(n_images)]
    buffer = FeatureBuffer(torch.randn(n_features, 512).half(),
                           torch.from_numpy(rng.uniform(0, [320, 240], (n_features, 2))).float(),
                           torch.from_numpy(rng.integers(0, n_images, n_features)).int(),
                           torch.full((n_features, 3), float("nan")))
    return buffer, images


def ms_per_step(buffer, images, width: int, steps: int) -> float:
    cfg = preset("fast", head_channels=width, epochs=steps * 1024 / len(buffer))
    t0 = time.perf_counter()
    _, stats = train_head(buffer, images, cfg, torch.device("cpu"))
    return 1e3 * (time.perf_counter() - t0) / stats["iterations"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    buffer, images = random_problem()
    print(f"head training, batch 1024, {args.steps} steps, {args.threads} threads")
    print(f"{'width':>5}  {'matmul ms/step':>14}  {'conv ms/step':>12}  {'speed-up':>8}")
    for width in args.widths:
        ms_per_step(buffer, images, width, 10)  # warm-up
        fast = ms_per_step(buffer, images, width, args.steps)
        with mock.patch("marepo_ros.models.networks.apply_1x1", apply_as_conv):
            slow = ms_per_step(buffer, images, width, args.steps)
        print(f"{width:>5}  {fast:>14.1f}  {slow:>12.1f}  {slow / fast:>7.1f}x")


if __name__ == "__main__":
    main()
