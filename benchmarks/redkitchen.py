#!/usr/bin/env python3
"""One run on 7-Scenes redkitchen: map with the `fast` preset, evaluate the query split, and run
the classical baseline (SIFT keypoints lifted with depth, PnP-RANSAC) on the same split.

    .venv/bin/python benchmarks/redkitchen.py [--data ../shared/data/7scenes-redkitchen]
                                              [--out runs/bench_redkitchen] [--preset fast]

Prints both rows side by side and writes OUT/results.json and OUT/results.md.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from marepo_ros import cli
from marepo_ros.evaluation.metrics import format_table, summarize
from marepo_ros.evaluation.sift_baseline import SiftPnPBaseline
from marepo_ros.io.dataset import SceneDataset

REPO = Path(__file__).resolve().parents[1]


def run_baseline(data: Path) -> tuple[dict, float]:
    ds = SceneDataset(data)
    t0 = time.time()
    baseline = SiftPnPBaseline()
    baseline.build(ds.frames("mapping"), ds.K, ds.depth_K)
    build_s = time.time() - t0
    est, gt, ms = [], [], []
    for fr in tqdm(ds.frames("query"), desc="sift+pnp", unit="img"):
        img = fr.load_image()
        t = time.perf_counter()
        e = baseline.localize(img, ds.K)
        ms.append(1e3 * (time.perf_counter() - t))
        est.append(None if e is None else e.map_from_cam)
        gt.append(fr.map_from_cam)
    return summarize(est, gt, ms), build_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared/data/7scenes-redkitchen")
    ap.add_argument("--out", type=Path, default=REPO / "runs/bench_redkitchen")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--skip-baseline", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    map_path = args.out / "redkitchen.map"

    t0 = time.time()
    assert cli.main(["map", "build", str(args.data), "--out", str(map_path), "--preset", args.preset]) == 0
    map_s = time.time() - t0
    assert cli.main(["eval", str(args.data), "--map", str(map_path), "--out", str(args.out / "eval")]) == 0
    ours = json.loads((args.out / "eval/metrics.json").read_text())
    ours["mapping_s"] = map_s
    rows = {f"ace-{args.preset}+ransac": ours}
    if not args.skip_baseline:
        base, build_s = run_baseline(args.data)
        base["mapping_s"] = build_s
        rows["sift+depth+pnp"] = base
    print("\n" + format_table(rows))
    for name, r in rows.items():
        print(f"{name:24s} mapping {r['mapping_s']:.0f} s")
    (args.out / "results.json").write_text(json.dumps(rows, indent=2, default=float) + "\n")
    md = ["| method | median cm | median deg | 5cm/5deg % | 10cm/5deg % | 2cm/2deg % | mapping s | ms/query |",
          "|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        md.append(f"| {name} | {r['median_translation_cm']:.1f} | {r['median_rotation_deg']:.2f} | "
                  f"{r['pct_5cm_5deg']:.1f} | {r['pct_10cm_5deg']:.1f} | {r['pct_2cm_2deg']:.1f} | "
                  f"{r['mapping_s']:.0f} | {r['ms_per_frame']:.0f} |")
    (args.out / "results.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    print(f"wrote {args.out / 'results.json'} and results.md")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
