#!/usr/bin/env python3
"""Maps with no poses: `marepo-ros map build SCENE --no-poses` tracks each mapping image's pose
from the depth of the images before it (`mapping/odometry.py`), then bundle-adjusts the keyframes
(`--refine-poses always`, its default; `never` to see what the tracking alone gives). The map's
frame is the first image's camera frame, so the estimated query trajectory is aligned to the
ground truth by one rigid transform (no scale; `drift.aligned_scores`) and scored with `points`.

Scenes as in `benchmarks/drift.py`: `redkitchen-images` (redkitchen with poses that agree with
its colour images; the drift benchmark's cache), `redkitchen` (its KinectFusion poses, which
its colour images do not follow at the cm level); `room` (a rendered room, exact poses) only when
asked: its mapping stream is cut where the query blocks were taken out, and the tracking follows
one continuous stream.

    .venv/bin/python benchmarks/no_poses.py [--scenes redkitchen-images redkitchen room]
                     [--out runs/bench_no_poses] [--no-docs] [--reuse]

Writes the table between the `bench:no_poses` markers of docs/results.md (not with --no-docs).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import marepo_ros  # noqa: F401  (before torch: sets how its OpenMP threads wait)

from marepo_ros import cli
from marepo_ros.io.mapfile import load_map

from bench_docs import replace_block, run_stamp  # noqa: E402  (beside this script)
from drift import aligned_scores, image_consistent_poses, room_scene, write_scene  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODES = {"redkitchen-images": ["never", "always"], "redkitchen": ["always"], "room": ["never", "always"]}


def run(label: str, scene: Path, mode: str, out: Path, n_queries: int) -> dict:
    """Map ``scene`` with --no-poses and ``mode``, localize its queries, score them aligned."""
    stem = f"{label}_{mode}"
    map_path, ev = out / f"{stem}.map", out / f"eval_{stem}"
    t0 = time.time()
    if cli.main(["map", "build", str(scene), "--no-poses", "--no-head", "--refine-poses", mode,
                 "--out", str(map_path)]) != 0:
        raise SystemExit(f"map build --no-poses {scene} failed")
    seconds = time.time() - t0
    if cli.main(["eval", str(scene), "--map", str(map_path), "--estimator", "points",
                 "--split", "query", "--out", str(ev)]) != 0:
        raise SystemExit(f"eval of {map_path} failed")
    stats = load_map(map_path).stats
    return {"tracking": stats["pose_tracking"], "refinement": stats["feature_map"].get("refinement") or {},
            "keyframes": stats["feature_map"]["keyframes"], "mapping_seconds": seconds,
            "metrics": json.loads((ev / "metrics.json").read_text()), "aligned": aligned_scores(ev, n_queries)}


def row(label: str, mode: str, r: dict) -> str:
    t, f, s, m = r["tracking"], r["refinement"], r["aligned"], r["metrics"]
    refined = (f"{f['before']['median_px']} -> {f['after']['median_px']} px, moved "
               f"{f['moved_cm_median']} cm" if f and "before" in f else "–")
    return (f"| {label} | `{mode}` | {t['located']} / {t['images']} ({t['relocated']} after a loss) | "
            f"{r['keyframes']} | {refined} | {r['mapping_seconds']:.0f} ({t['seconds']:.0f} tracking) | "
            f"{s['median_cm']:.2f} | {s['pct_5cm_5deg']:.1f} | {s['pct_10cm_5deg']:.1f} | "
            f"{s['n_wrong']} / {m['n_published']} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared/data/7scenes-redkitchen")
    ap.add_argument("--scenes", nargs="+", default=["redkitchen-images", "redkitchen"], choices=list(MODES),
                    help="room: the drift table's rendered room, whose mapping split jumps 0.6-1.5 m "
                         "where its query blocks were cut out: the tracking stops at the first jump "
                         "(40 of 120 images located), so it is not in the default table")
    ap.add_argument("--drift-out", type=Path, default=REPO / "runs/bench_drift",
                    help="the drift benchmark's folder (its image-consistent poses and room are reused)")
    ap.add_argument("--out", type=Path, default=REPO / "runs/bench_no_poses")
    ap.add_argument("--no-docs", action="store_true")
    ap.add_argument("--reuse", action="store_true", help="reuse the maps and evaluations OUT holds "
                    "from an earlier run (no_poses.json); the aligned scores are computed again")
    args = ap.parse_args()
    t_all = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    earlier = (json.loads((args.out / "no_poses.json").read_text())
               if args.reuse and (args.out / "no_poses.json").exists() else {})
    results, rows = {}, []
    for label in args.scenes:
        if label == "redkitchen":
            scene, n_queries = args.data, 250
        elif label == "redkitchen-images":
            poses, _ = image_consistent_poses(args.data, args.drift_out / "redkitchen_images_poses")
            scene, n_queries = write_scene(args.data, args.drift_out / "redkitchen_images_source", poses), 250
        else:
            scene, n_queries = room_scene(args.drift_out / "room_source"), 40
        for mode in MODES[label]:
            ev = args.out / f"eval_{label}_{mode}"
            if f"{label} {mode}" in earlier and (ev / "metrics.json").exists():
                r = {**earlier[f"{label} {mode}"], "aligned": aligned_scores(ev, n_queries)}
            else:
                r = run(label, scene, mode, args.out, n_queries)
            results[f"{label} {mode}"] = r
            rows.append(row(label, mode, r))
            print(rows[-1], flush=True)
            (args.out / "no_poses.json").write_text(json.dumps(results, indent=1, default=float))
    table = "\n".join([
        "`map build SCENE --no-poses --no-head`: the mapping images' poses tracked from depth "
        "(frame to keyframe), then the keyframes bundle-adjusted (`--refine-poses`); the scene's "
        "poses are not read. Depth maps, `points`; query errors after one rigid alignment of the "
        "estimated query trajectory to the ground truth (no scale; as the drift table). "
        "redkitchen-images: redkitchen with poses that agree with its colour images as ground truth "
        "(the drift table's `image_consistent_poses`); redkitchen: its KinectFusion poses; room: "
        "the drift table's rendered room (with `--scenes room`). Located: mapping images the tracking placed (after a "
        "loss: by VLAD retrieval of earlier keyframes). Refinement: median reprojection of the "
        "keyframes' tracks before -> after, and how far the keyframes moved (median).",
        "",
        "| scene | `--refine-poses` | located / mapping images | keyframes | refinement | "
        "mapping s | median cm | 5cm/5° % | 10cm/5° % | wrong / published |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows, "", *(["Maps and evaluations reused from an earlier run (`--reuse`); mapping s as "
                      "measured then.", ""] if earlier else []), run_stamp(time.time() - t_all)])
    print(table)
    if not args.no_docs:
        replace_block(REPO / "docs/results.md", "bench:no_poses", table)


if __name__ == "__main__":
    main()
