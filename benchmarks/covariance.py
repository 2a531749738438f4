#!/usr/bin/env python3
"""How honest is the published covariance? On real frames (redkitchen query split, a keyframe
map of its mapping split with depth, estimator ``points``), the fraction of estimates whose
error lies inside the covariance's 2-sigma region (Mahalanobis distance, 3 dof each for the
camera position and the orientation), and the factor the covariance needs (variance scale)
for 95.45 % to lie inside, as the node's ``covariance_scale`` applies it: fitted on every
other frame, checked on the frames in between (held out).

    .venv/bin/python benchmarks/covariance.py [--every 2] [--out covariance.md]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import marepo_ros  # noqa: F401  (before torch: sets how its OpenMP threads wait)
import numpy as np
from scipy.spatial.transform import Rotation

from marepo_ros.camera import Camera
from marepo_ros.io.dataset import SceneDataset
from marepo_ros.localization.pipeline import Pipeline, PipelineConfig
from marepo_ros.mapping.build import build_map, preset
from marepo_ros.mapping.frames import posed_images_from_dataset

from bench_docs import emit  # noqa: E402  (beside this script)

REPO = Path(__file__).resolve().parents[1]
SCENE = Path(os.environ.get("MAREPO_REDKITCHEN", REPO.parent / "shared/data/7scenes-redkitchen"))
CHI2_3DOF_2SIGMA = 8.0249  # P(chi2_3 <= x) = 0.9545, the 2-sigma mass of one dimension


def errors_and_covariances(every: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(translation errors N3 m, rotation errors N3 rad (map frame), covariances N66, t_err_cm N)."""
    ds = SceneDataset(SCENE)
    scene_map = build_map(posed_images_from_dataset(ds, "mapping"), None, preset("fast", head=False))
    pipeline = Pipeline(scene_map, PipelineConfig("points"))
    e_t, e_r, covs = [], [], []
    for frame in ds.frames("query")[::every]:
        est = pipeline.localize(frame.load_image(), Camera(ds.K))
        if est is None or not np.all(np.isfinite(est.covariance)):
            continue
        gt = frame.map_from_cam
        e_t.append(est.map_from_cam[:3, 3] - gt[:3, 3])
        e_r.append(Rotation.from_matrix(est.map_from_cam[:3, :3] @ gt[:3, :3].T).as_rotvec())
        covs.append(est.covariance)
    return np.array(e_t), np.array(e_r), np.array(covs)


def mahalanobis2(errors_N3: np.ndarray, cov_N33: np.ndarray) -> np.ndarray:
    return np.einsum("ni,nij,nj->n", errors_N3, np.linalg.pinv(cov_N33), errors_N3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--every", type=int, default=2, help="use every n-th query frame")
    ap.add_argument("--scale", type=float, default=250.0, help="a variance scale to check on the "
                    "held-out half (the node's covariance_scale default)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if not (SCENE / "rgb").is_dir():
        print(f"needs the redkitchen scene at {SCENE} (MAREPO_REDKITCHEN)", file=sys.stderr)
        return 1
    e_t, e_r, covs = errors_and_covariances(args.every)
    rows = ["| part | frames | median error | median 1-sigma (sqrt of mean variance) | inside 2 sigma | "
            "variance scale for 95.45 % (fitted on half) | held-out half inside 2 sigma, scaled by it | "
            f"... scaled by {args.scale:g} |", "|---|---|---|---|---|---|---|---|"]
    for name, err, block, unit, k in (("position", e_t, covs[:, :3, :3], "cm", 100.0),
                                     ("orientation", e_r, covs[:, 3:, 3:], "deg", np.degrees(1.0))):
        d2 = mahalanobis2(err, block)
        sigma = np.sqrt(np.trace(block, axis1=1, axis2=2) / 3)
        scale = float(np.quantile(d2[::2], 0.9545) / CHI2_3DOF_2SIGMA)
        held_out = d2[1::2]
        rows.append(f"| {name} | {len(err)} | {k * np.median(np.linalg.norm(err, axis=1)):.2f} {unit} | "
                    f"{k * np.median(sigma):.3f} {unit} | {100 * np.mean(d2 <= CHI2_3DOF_2SIGMA):.1f} % | "
                    f"{scale:.0f} | {100 * np.mean(held_out / scale <= CHI2_3DOF_2SIGMA):.1f} % | "
                    f"{100 * np.mean(held_out / args.scale <= CHI2_3DOF_2SIGMA):.1f} % |")
    emit("\n".join(rows), f"redkitchen query (every {args.every}), keyframe map with depth, "
         f"`points`; `benchmarks/covariance.py --every {args.every}`", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
