#!/usr/bin/env python3
"""One run on 7-Scenes redkitchen, every row on the same 750/250 split and the same machine:

- the `fast` map (ACE head on our encoder + XFeat keyframe feature map, depth used), evaluated
  with `ransac` (head) and with `points` (feature map);
- the same without depth (`map build --no-depth --no-head`: points triangulated), `points`;
- the classical baseline (SIFT keypoints lifted with depth, PnP-RANSAC).

    .venv/bin/python benchmarks/redkitchen.py [--data ../shared/data/7scenes-redkitchen]
                                              [--out runs/bench_redkitchen] [--preset fast]

Prints the rows side by side, writes OUT/results.json and OUT/results.md, and rewrites the
generated tables in docs/results.md and README.md (between their `bench:redkitchen` markers;
`--no-docs` leaves them alone).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import marepo_ros  # noqa: F401  (before torch: sets how its OpenMP threads wait)
import numpy as np
from tqdm import tqdm

from marepo_ros import cli
from marepo_ros.evaluation.metrics import format_table, summarize
from marepo_ros.evaluation.sift_baseline import SiftPnPBaseline
from marepo_ros.io.dataset import SceneDataset
from marepo_ros.io.mapfile import read_header

from bench_docs import replace_block, run_stamp  # noqa: E402  (beside this script)

REPO = Path(__file__).resolve().parents[1]


def run_baseline(data: Path) -> dict:
    ds = SceneDataset(data)
    t0 = time.time()
    baseline = SiftPnPBaseline()
    baseline.build(ds.frames("mapping"), ds.K, ds.depth_K)
    build_s = time.time() - t0
    est, gt, ms, stages = [], [], [], {}
    for fr in tqdm(ds.frames("query"), desc="sift+pnp", unit="img"):
        img = fr.load_image()
        t = time.perf_counter()
        e = baseline.localize(img, ds.K)
        ms.append(1e3 * (time.perf_counter() - t))
        est.append(None if e is None else e.map_from_cam)
        gt.append(fr.map_from_cam)
        for k, v in (e.timings_ms.items() if e else ()):
            stages.setdefault(k, []).append(v)
    return {**summarize(est, gt, ms), "mapping_s": build_s,
            "stage_ms": {k: float(np.median(v)) for k, v in stages.items() if k != "total"},
            "map_mb": baseline.n_points * (128 * 4 + 3 * 8) / 1e6}


def build(data: Path, out: Path, preset: str, *extra: str) -> dict:
    """Build a map with the CLI; its header (stats, feature map summary) plus the file size."""
    assert cli.main(["map", "build", str(data), "--out", str(out), "--preset", preset, *extra]) == 0
    return {**read_header(out), "file_mb": out.stat().st_size / 1e6}


def evaluate(data: Path, map_path: Path, estimator: str, out: Path) -> dict:
    assert cli.main(["eval", str(data), "--map", str(map_path), "--estimator", estimator,
                     "--out", str(out)]) == 0
    return json.loads((out / "metrics.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared/data/7scenes-redkitchen")
    ap.add_argument("--out", type=Path, default=REPO / "runs/bench_redkitchen")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite the tables in the docs")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    full = build(args.data, args.out / "redkitchen.map", args.preset)
    fm = full["feature_map"]
    stats = full["stats"]
    rows = {}
    rows[f"ace-{args.preset}+ransac"] = {
        **evaluate(args.data, args.out / "redkitchen.map", "ransac", args.out / "eval_ransac"),
        "mapping_s": stats["buffer_seconds"] + stats["training_seconds"],
        "map_mb": full["file_mb"] - fm["megabytes"]}
    rows["xfeat-keyframes+points"] = {
        **evaluate(args.data, args.out / "redkitchen.map", "points", args.out / "eval_points"),
        "mapping_s": stats["feature_map"]["total_seconds"], "map_mb": fm["megabytes"]}
    no_depth = build(args.data, args.out / "redkitchen_nodepth.map", args.preset, "--no-depth", "--no-head")
    rows["xfeat-keyframes+points, no depth"] = {
        **evaluate(args.data, args.out / "redkitchen_nodepth.map", "points", args.out / "eval_points_nodepth"),
        "mapping_s": no_depth["stats"]["total_seconds"], "map_mb": no_depth["file_mb"]}
    if not args.skip_baseline:
        rows["sift+depth+pnp"] = run_baseline(args.data)
    print("\n" + format_table(rows))
    (args.out / "results.json").write_text(json.dumps(rows, indent=2, default=float) + "\n")
    table = results_table(rows)
    (args.out / "results.md").write_text(table + "\n")
    print(table)
    print(f"wrote {args.out / 'results.json'} and results.md")
    if not args.no_docs:
        stamp = run_stamp(time.time() - t0)
        for doc in (REPO / "docs/results.md", REPO / "README.md"):
            replace_block(doc, "bench:redkitchen", f"{table}\n\n{stamp}")
            print(f"updated the generated table in {doc.relative_to(REPO)}")


NAMES = {"sift+depth+pnp": "SIFT keypoints + depth + PnP-RANSAC (classical baseline)",
         "xfeat-keyframes+points": "XFeat keyframes (depth) + `points`",
         "xfeat-keyframes+points, no depth": "XFeat keyframes (triangulated, no depth) + `points`"}


def results_table(rows: dict[str, dict]) -> str:
    """The markdown table of one run: a row per method."""
    md = ["| method | median cm / deg | 2cm/2° % | 5cm/5° % | 10cm/5° % | mapping s | ms/frame "
          "| stages, median ms | map MB |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        stages = ", ".join(f"{k} {v:.0f}" for k, v in r.get("stage_ms", {}).items())
        md.append(f"| {NAMES.get(name, f'ours: `{name}`')} | {r['median_translation_cm']:.2f} / "
                  f"{r['median_rotation_deg']:.2f} | {r['pct_2cm_2deg']:.1f} | {r['pct_5cm_5deg']:.1f} | "
                  f"{r['pct_10cm_5deg']:.1f} | {r['mapping_s']:.0f} | {r['ms_per_frame']:.0f} | "
                  f"{stages} | {r['map_mb']:.1f} |")
    return "\n".join(md)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
