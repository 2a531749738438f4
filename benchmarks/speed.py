#!/usr/bin/env python3
"""Per-stage query time of every estimator on real 640x480 frames, on the CPU and, when CUDA
is present, on the GPU (batch 1, one image at a time, as the node runs).

Loads a map (by default the one `benchmarks/redkitchen.py` builds: head + keyframe feature
map, with depth) and localizes the first N query frames of redkitchen with each estimator on
each device, after two warm-up frames. Prints, per device and estimator, the median ms of every
stage the estimator reports, the median total, frames per second, and the ratio of the total
to `points` on the same device; writes OUT/speed.json.

    .venv/bin/python benchmarks/speed.py [--map runs/bench_redkitchen/redkitchen.map]
                     [--frames 60] [--estimators points ransac hybrid] [--out runs/bench_speed]

On a CPU, `ransac` runs on poselib; the batched torch RANSAC is measured as `ransac/torch`.
On CUDA, `ransac` is the torch RANSAC on the GPU (poselib is CPU-only).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import marepo_ros  # noqa: F401  (before torch: sets how its OpenMP threads wait)
import numpy as np
import torch

from marepo_ros.io.dataset import SceneDataset
from marepo_ros.io.mapfile import load_map
from marepo_ros.localization.estimator import make_estimator
from marepo_ros.localization.localizer import Localizer
from marepo_ros.models.networks import load_encoder

REPO = Path(__file__).resolve().parents[1]


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_estimator(map_path: Path, name: str, device: str, images: list, K: np.ndarray) -> dict:
    """Median ms per stage and in total, and fps, of one estimator on one device."""
    scene_map = load_map(map_path, device)
    options = {}
    if name.endswith("/torch"):
        name, options = name.split("/")[0], {"backend": "torch"}
    estimator = make_estimator(name, short_side=scene_map.short_side, scene_map=scene_map,
                               device=device, **options)
    encoder = None if hasattr(estimator, "localize") else load_encoder(scene_map.encoder or None, device)
    localizer = Localizer(scene_map, encoder, estimator, device=device)
    for image in images[:2]:                                    # warm-up
        localizer.localize(image, K)
    stages, totals = {}, []
    for image in images:
        _sync(device)
        t0 = time.perf_counter()
        est = localizer.localize(image, K)
        _sync(device)
        totals.append(1e3 * (time.perf_counter() - t0))
        for k, v in (est.timings_ms.items() if est else ()):
            if k != "total":
                stages.setdefault(k, []).append(v)
    total = float(np.median(totals))
    return {"stages_ms": {k: float(np.median(v)) for k, v in stages.items()}, "total_ms": total,
            "fps": 1e3 / total}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--map", type=Path, default=REPO / "runs/bench_redkitchen/redkitchen.map")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared/data/7scenes-redkitchen")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--estimators", nargs="+", default=["points", "ransac", "ransac/torch", "hybrid"])
    ap.add_argument("--out", type=Path, default=REPO / "runs/bench_speed")
    args = ap.parse_args()
    if not args.map.exists():
        raise SystemExit(f"{args.map}: no map; build it first (benchmarks/redkitchen.py or "
                         f"marepo-ros map build)")
    ds = SceneDataset(args.data)
    frames = ds.frames("query")[:args.frames]
    images = [f.load_image() for f in frames]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if len(devices) == 1:
        print("no CUDA device: CPU only")
    results = {}
    for device in devices:
        for name in args.estimators:
            if device == "cuda" and name == "ransac/torch":
                continue                                           # the same as ransac there
            results[f"{device} {name}"] = r = time_estimator(args.map, name, device, images, ds.K)
            print(f"{device:4s} {name:13s} {r['total_ms']:6.1f} ms  {r['fps']:5.1f} fps  "
                  + ", ".join(f"{k} {v:.1f}" for k, v in r["stages_ms"].items()), flush=True)
    for device in devices:
        base = results.get(f"{device} points")
        if base:
            print(f"{device}: total / points: " + ", ".join(
                f"{k.split(' ', 1)[1]} {v['total_ms'] / base['total_ms']:.2f}x"
                for k, v in results.items() if k.startswith(device)))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed.json").write_text(json.dumps(
        {"map": str(args.map), "frames": len(images), "image_size": list(ds.image_size),
         "cpu_threads": torch.get_num_threads(),
         "cuda": torch.cuda.get_device_name() if "cuda" in devices else None,
         "results": results}, indent=2) + "\n")
    print(f"wrote {args.out / 'speed.json'}")


if __name__ == "__main__":
    main()
