#!/usr/bin/env python3
"""Synthetic room renderer cost per view on CPU: 640 x 480 vs a small 160 x 120 render.

Renders the same view of one ``synthetic.scene.random_scene`` room at both sizes (after one
warm-up render each) and prints the median ms per render and their ratio, beside the ratio of
pixel counts (16x): how far the cost scales with the pixels.

    .venv/bin/python benchmarks/render_speed.py [--scene 7] [--repeats 5]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from marepo_ros.synthetic.paths import default_intrinsics, random_camera_path
from marepo_ros.synthetic.raycast import render
from marepo_ros.synthetic.scene import random_scene

SIZES = ((640, 480), (160, 120))


def ms_per_render(scene, map_from_cam: np.ndarray, width: int, height: int, repeats: int) -> float:
    """Median wall time (ms) of ``repeats`` renders of one view, after one warm-up render."""
    K = default_intrinsics(width, height)
    render(scene, K, map_from_cam, width, height)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        render(scene, K, map_from_cam, width, height)
        times.append(1e3 * (time.perf_counter() - t0))
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scene", type=int, default=7, help="random_scene seed (default 7)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    scene = random_scene(args.scene)
    T = random_camera_path(scene, 2, 0)[0]
    print(f"scene {args.scene} ({len(scene.boxes)} boxes), median of {args.repeats} renders")
    ms = {}
    for w, h in SIZES:
        ms[w, h] = ms_per_render(scene, T, w, h, args.repeats)
        print(f"  {w:4d} x {h:<4d} {ms[w, h]:8.1f} ms/render")
    (w0, h0), (w1, h1) = SIZES
    print(f"ratio {w0}x{h0} / {w1}x{h1}: {ms[w0, h0] / ms[w1, h1]:.1f}x "
          f"({w0 * h0 / (w1 * h1):.0f}x the pixels)")


if __name__ == "__main__":
    main()
