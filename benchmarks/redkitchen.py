#!/usr/bin/env python3
"""One run on 7-Scenes redkitchen, every row on the same 750/250 split and the same machine:

- the default map with depth (ACE head on our encoder + XFeat keyframe feature map), evaluated
  with `ransac` (head; poselib on the CPU, and the batched torch RANSAC on the same scene
  coordinates), `points` (keyframes; what `auto` picks on a map without head), `cascade` (what
  `auto` picks on this map: points, the head only where points is unsure) and `hybrid` (both);
- the default map without depth (`--no-depth`: keyframe points triangulated, the head trained
  with them as 3D targets), `points`, `ransac` and `hybrid`;
- a head on XFeat's dense features (`--encoder xfeat`), `ransac`;
- the classical baseline (SIFT keypoints lifted with depth, PnP-RANSAC).

    .venv/bin/python benchmarks/redkitchen.py [--data ../shared/data/7scenes-redkitchen]
                                              [--out runs/bench_redkitchen] [--preset fast]

Prints the rows side by side, writes OUT/results.json and OUT/results.md, and rewrites the
generated tables in docs/results.md and README.md (between their `bench:redkitchen` markers;
`--no-docs` leaves them alone). "wrong" counts the published poses (confidence >= the node's
min_confidence) that are more than 50 cm or 10 deg off.
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


def evaluate(data: Path, map_path: Path, estimator: str, out: Path, *extra: str) -> dict:
    assert cli.main(["eval", str(data), "--map", str(map_path), "--estimator", estimator,
                     "--out", str(out), *extra]) == 0
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
    rows = {}
    for depth in (True, False):
        tag, extra = ("", ()) if depth else (", no depth", ("--no-depth",))
        path = args.out / f"redkitchen{'' if depth else '_nodepth'}.map"
        built = build(args.data, path, args.preset, *extra)
        fm, stats = built["feature_map"], built["stats"]
        head = {"mapping_s": stats["buffer_seconds"] + stats["training_seconds"],
                "map_mb": built["file_mb"] - fm["megabytes"]}
        keyframes = {"mapping_s": stats["feature_map"]["total_seconds"], "map_mb": fm["megabytes"]}
        both = {"mapping_s": stats["total_seconds"], "map_mb": built["file_mb"]}
        runs = [(f"ace-{args.preset}+ransac{tag}", "ransac", head, ()),
                (f"xfeat-keyframes+points{tag}", "points", keyframes, ()),
                (f"cascade{tag}", "cascade", both, ()),
                (f"hybrid{tag}", "hybrid", both, ())]
        if depth:   # the batched torch RANSAC (for GPUs) on the same scene coordinates
            runs.insert(1, (f"ace-{args.preset}+ransac (torch)", "ransac", head,
                            ("--ransac-backend", "torch")))
        for name, estimator, cost, options in runs:
            out = args.out / f"eval_{estimator}{'_torch' if options else ''}{'' if depth else '_nodepth'}"
            rows[name] = {**evaluate(args.data, path, estimator, out, *options), **cost}
    xfeat = build(args.data, args.out / "redkitchen_xfeat.map", args.preset, "--encoder", "xfeat",
                  "--no-feature-map")
    rows[f"xfeat-{args.preset}+ransac"] = {
        **evaluate(args.data, args.out / "redkitchen_xfeat.map", "ransac", args.out / "eval_xfeat_ransac"),
        "mapping_s": xfeat["stats"]["total_seconds"], "map_mb": xfeat["file_mb"]}
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
         "xfeat-keyframes+points": "XFeat keyframes (depth) + `points` (`auto` without a head)",
         "cascade": "**default**: head + keyframes (depth) + `cascade` (`auto`)",
         "hybrid": "head + keyframes (depth) + `hybrid`",
         "xfeat-keyframes+points, no depth": "XFeat keyframes (triangulated) + `points` "
                                             "(`auto` without a head)",
         "cascade, no depth": "**default, no depth**: head + keyframes (no depth) + `cascade` (`auto`)",
         "hybrid, no depth": "head + keyframes (no depth) + `hybrid`"}


def results_table(rows: dict[str, dict]) -> str:
    """The markdown table of one run: a row per method."""
    md = ["| method | median cm / deg | 2cm/2° % | 5cm/5° % | 10cm/5° % | wrong / published "
          "| mapping s | ms/frame | stages, median ms | map MB |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        stages = ", ".join(f"{k} {v:.0f}" for k, v in r.get("stage_ms", {}).items())
        wrong = f"{r['n_wrong_published']} / {r['n_published']}" if "n_published" in r else "–"
        md.append(f"| {NAMES.get(name, f'`{name}`')} | {r['median_translation_cm']:.2f} / "
                  f"{r['median_rotation_deg']:.2f} | {r['pct_2cm_2deg']:.1f} | {r['pct_5cm_5deg']:.1f} | "
                  f"{r['pct_10cm_5deg']:.1f} | {wrong} | {r['mapping_s']:.0f} | {r['ms_per_frame']:.0f} | "
                  f"{stages} | {r['map_mb']:.1f} |")
    return "\n".join(md)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
