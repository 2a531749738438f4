#!/usr/bin/env python3
"""Pose-estimator cost per frame on CPU: marepo regressor vs DSAC*-style RANSAC, same input.

The input is what a head gives at the `fast` preset's resolution (short side 240: a 40 x 30
grid of scene coordinates at 1/8 of a 320 x 240 image), rendered from held-out scenes and
corrupted like a head's output. Only the estimator is timed (encoder and head cost the same
for all of them).

    .venv/bin/python benchmarks/regressor_speed.py [--threads 1] [--frames 30]
"""
from __future__ import annotations

import argparse
import time

import marepo_ros  # noqa: F401  (before torch: sets how its OpenMP threads wait)
import numpy as np
import torch

from marepo_ros.geometry import pose_error
from marepo_ros.localization.registry import make_estimator
from marepo_ros.synthetic.paths import default_intrinsics
from marepo_ros.synthetic.scene import random_scene
from marepo_ros.training.regressor_data import (VALIDATION_SEEDS, Corruption, corrupt,
                                       random_view)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--frames", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    K, w, h = default_intrinsics(320, 240), 320, 240
    frames = []
    for i in range(args.frames):
        scene = random_scene(VALIDATION_SEEDS[100 + i % 5])
        frames.append(corrupt(random_view(scene, rng, K, w, h), rng, scene.size,
                              Corruption(clean_prob=0.0)))
    print(f"{args.frames} frames, {len(frames[0].coords_N3)} scene coordinates each "
          f"({w}x{h} image, 1/8 grid), {args.threads} thread(s)")
    results = {}
    for name in ("marepo", "marepo+refine", "ransac"):
        est = make_estimator(name, short_side=240)
        est.estimate(torch.from_numpy(frames[0].coords_N3), torch.from_numpy(frames[0].pixels_N2), K)
        times, errs = [], []
        for s in frames:
            coords, pixels = torch.from_numpy(s.coords_N3), torch.from_numpy(s.pixels_N2)
            t0 = time.perf_counter()
            e = est.estimate(coords, pixels, K)
            times.append(1e3 * (time.perf_counter() - t0))
            errs.append(pose_error(e.map_from_cam, s.map_from_cam))
        errs = np.array(errs)
        results[name] = float(np.median(times))
        print(f"  {name:14s} {results[name]:7.1f} ms/frame (median)   median error "
              f"{100 * np.median(errs[:, 0]):.1f} cm / {np.median(errs[:, 1]):.2f} deg")
    print(f"ransac / marepo: {results['ransac'] / results['marepo']:.1f}x;  "
          f"ransac / marepo+refine: {results['ransac'] / results['marepo+refine']:.1f}x")


if __name__ == "__main__":
    main()
