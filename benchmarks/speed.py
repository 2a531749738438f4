#!/usr/bin/env python3
"""Per-stage query time of every estimator on real 640x480 frames, on the CPU and, when CUDA
is present, on the GPU (batch 1, one image at a time, as the node runs), with the SIFT
baseline on the CPU.

Loads a map (by default the one `benchmarks/redkitchen.py` builds: head + keyframe feature
map, with depth) and localizes the first N query frames of redkitchen with each estimator on
each device, one method after the other, each after two warm-up frames (run it on a quiet
machine: other load slows whichever method runs meanwhile). Prints, per device and method, the median ms of
every stage it reports, the median total, frames per second, and the ratio of the total to
`points` on the same device; writes OUT/speed.json and the table between the `bench:speed`
markers of docs/results.md and README.md (not with --no-docs).

    .venv/bin/python benchmarks/speed.py [--map runs/bench_redkitchen/redkitchen.map]
                     [--frames 60] [--estimators points ransac hybrid] [--out runs/bench_speed]

On a CPU, `ransac` runs on poselib; the batched torch RANSAC is measured as `ransac/torch`.
On CUDA, `ransac` is the torch RANSAC on the GPU (poselib is CPU-only).
"""
from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

import marepo_ros  # noqa: F401  (before torch: sets how its OpenMP threads wait)
import numpy as np
import torch

from marepo_ros.camera import Camera
from marepo_ros.evaluation.sift_baseline import SiftPnPBaseline
from marepo_ros.io.dataset import SceneDataset
from marepo_ros.localization.pipeline import Pipeline, PipelineConfig

from bench_docs import replace_block, run_stamp  # noqa: E402  (beside this script)

REPO = Path(__file__).resolve().parents[1]


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def make_pipeline(map_path: Path, name: str, device: str) -> Pipeline:
    """The Pipeline of the map with one estimator ("ransac/torch": ransac on the torch backend)."""
    name, _, backend = name.partition("/")
    return Pipeline.from_file(map_path, PipelineConfig(name, {"backend": backend} if backend else {},
                                                       device))


def time_method(localize, images: list, device: str) -> dict:
    """Median ms per stage and in total, and fps, of one method (``localize(image)`` ->
    Estimate or None) over the images after two warm-up frames, as a node running that one
    estimator would see them. (Taking turns frame by frame was tried: whichever method
    followed `points` paid 15-55 ms more, SIFT included, so the figures depended on the order.)"""
    for image in images[:2]:
        localize(image)
    stages, totals = {}, []
    for image in images:
        _sync(device)
        t0 = time.perf_counter()
        est = localize(image)
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
    ap.add_argument("--estimators", nargs="+", default=["points", "cascade", "ransac", "ransac/torch", "hybrid"])
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite the tables in the docs")
    ap.add_argument("--no-sift", action="store_true", help="leave out the SIFT baseline (its map "
                    "takes a minute or two to build)")
    ap.add_argument("--out", type=Path, default=REPO / "runs/bench_speed")
    args = ap.parse_args()
    t_start = time.time()
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
        camera = Camera(ds.K)
        methods = {name: functools.partial(make_pipeline(args.map, name, device).localize,
                                           camera=camera)
                   for name in args.estimators
                   if not (device == "cuda" and name == "ransac/torch")}  # the same as ransac there
        if device == "cpu" and not args.no_sift:
            sift = SiftPnPBaseline()
            sift.build(ds.frames("mapping"), ds.K, ds.depth_K)
            methods["sift"] = functools.partial(sift.localize, K=ds.K)
        for name, method in methods.items():
            results[f"{device} {name}"] = r = time_method(method, images, device)
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
    if not args.no_docs:
        text = (f"{len(images)} redkitchen queries, 640x480, the `make bench` depth map; one method "
                f"after the other, median per frame.\n\n{speed_table(results)}\n\n{run_stamp(time.time() - t_start)}")
        for doc in (REPO / "docs/results.md", REPO / "README.md"):
            replace_block(doc, "bench:speed", text)
            print(f"updated the generated table in {doc.relative_to(REPO)}")


NAMES = {"points": "`points` (`auto` without a head)", "ransac": "`ransac` (poselib on a CPU)",
         "ransac/torch": "`ransac` (batched torch)", "hybrid": "`hybrid`",
         "cascade": "`cascade` (default: the head only where points is unsure)",
         "sift": "SIFT + PnP baseline"}


def speed_table(results: dict) -> str:
    """Markdown: device, method, median ms, fps, x points, stages."""
    md = ["| device | method | median ms | fps | x `points` | stages, median ms |",
          "|---|---|---|---|---|---|"]
    for key, r in results.items():
        device, name = key.split(" ", 1)
        base = results.get(f"{device} points", r)["total_ms"]
        stages = ", ".join(f"{k} {v:.0f}" for k, v in r["stages_ms"].items())
        md.append(f"| {device} | {NAMES.get(name, name)} | {r['total_ms']:.0f} | {r['fps']:.1f} | "
                  f"{r['total_ms'] / base:.2f} | {stages} |")
    return "\n".join(md)


if __name__ == "__main__":
    main()
