#!/usr/bin/env python3
"""A map built from a recorded bag is the map of the same frames as a scene folder:
`marepo-ros map build BAG` on the redkitchen mapping split (750 frames) written as a bag whose
poses come only through a robot's TF tree (map -> odom, drifting at 2 Hz, -> base_link ->
camera_link -> optical frame; no pose topic, no depth), against `marepo-ros map build SCENE
--no-head --no-depth` of the folder; both scored by `marepo-ros eval` on the query split (250).
Target: the bag's map >= 90 % within 5 cm/5°, within 3 points of the folder's.

    .venv/bin/python benchmarks/map_from_bag.py [--estimator auto] [--out runs/bench_map_from_bag]

Writes the table between the `bench:map_from_bag` markers of docs/results.md (not with --no-docs).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import marepo_ros  # noqa: F401  (before torch: sets how its OpenMP threads wait)
import numpy as np

from marepo_ros import cli
from marepo_ros.io.bag import BagFrames, export_bag
from marepo_ros.io.dataset import SceneDataset
from marepo_ros.io.mapfile import load_map

from bench_docs import replace_block, run_stamp  # noqa: E402  (beside this script)

REPO = Path(__file__).resolve().parents[1]
POSE_TF = "map:camera_optical_frame"


def build(source: Path, out: Path, options: list[str]) -> float:
    """Seconds `marepo-ros map build SOURCE --no-head OPTIONS --out OUT` took."""
    t0 = time.time()
    if cli.main(["map", "build", str(source), "--no-head", *options, "--out", str(out)]) != 0:
        raise SystemExit(f"map build {source} failed")
    return time.time() - t0


def evaluate(data: Path, map_path: Path, out: Path, estimator: str) -> dict:
    """metrics.json of `marepo-ros eval` on the query split."""
    if cli.main(["eval", str(data), "--map", str(map_path), "--estimator", estimator,
                 "--split", "query", "--out", str(out)]) != 0:
        raise SystemExit(f"eval of {map_path} failed")
    return json.loads((out / "metrics.json").read_text())


def row(name: str, poses: str, seconds: float, fm, m: dict) -> str:
    return (f"| {name} | {poses} | {len(fm.map_from_cam_K44)} | {len(fm.points_P3)} | {seconds:.0f} | "
            f"{m['median_translation_cm']:.2f} | {m['pct_5cm_5deg']:.1f} | {m['pct_10cm_5deg']:.1f} | "
            f"{m['n_wrong_published']} / {m['n_published']} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared/data/7scenes-redkitchen")
    ap.add_argument("--estimator", default="auto")
    ap.add_argument("--out", type=Path, default=REPO / "runs/bench_map_from_bag")
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite the table in the docs")
    args = ap.parse_args()
    t_start = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    bag = args.out / "mapping_tf_bag"
    if not bag.exists():
        export_bag(SceneDataset(args.data), bag, split="mapping", compressed=True, tf_tree=True,
                   pose_topic=False)
    topics = BagFrames(bag).topics
    assert "/camera/pose" not in topics and not any("depth" in t for t in topics), topics
    seconds = {"bag": build(bag, args.out / "bag.map", ["--pose-tf", POSE_TF]),
               "folder": build(args.data, args.out / "folder.map", ["--no-depth"])}
    maps = {k: load_map(args.out / f"{k}.map").feature_map for k in seconds}
    metrics = {k: evaluate(args.data, args.out / f"{k}.map", args.out / f"ev_{k}", args.estimator)
               for k in seconds}
    same = (len(maps["bag"].map_from_cam_K44) == len(maps["folder"].map_from_cam_K44)
            and np.allclose(maps["bag"].map_from_cam_K44, maps["folder"].map_from_cam_K44, atol=1e-6))
    gap = metrics["bag"]["pct_5cm_5deg"] - metrics["folder"]["pct_5cm_5deg"]
    ok = metrics["bag"]["pct_5cm_5deg"] >= 90 and abs(gap) <= 3
    (args.out / "results.json").write_text(json.dumps({**metrics, "seconds": seconds,
                                                       "same_keyframes": bool(same)}, indent=1))
    table = "\n".join([
        f"Redkitchen mapping split (750 frames) mapped `--no-head` (keyframes, triangulated: no depth), "
        f"scored on the query split (250 frames), estimator `{args.estimator}`.",
        "",
        "| map built from | mapping poses | keyframes | points | build s | median cm | 5cm/5° % | "
        "10cm/5° % | wrong / published |",
        "|---|---|---|---|---|---|---|---|---|",
        row("bag (`map build BAG --pose-tf map:camera_optical_frame`)",
            "TF only: map → odom (drifting) → base_link → camera_link → optical frame", seconds["bag"],
            maps["bag"], metrics["bag"]),
        row("scene folder (`map build SCENE --no-depth`)", "pose files", seconds["folder"],
            maps["folder"], metrics["folder"]),
        "",
        f"Keyframes and their poses {'the same (within 1e-6)' if same else 'DIFFER'}; the bag's map "
        f"{gap:+.1f} points against the folder's; target (>= 90 %, within 3 points) "
        f"{'met' if ok else 'NOT met'}. Build times include reading the bag (JPEG images) or the folder.",
        "", run_stamp(time.time() - t_start)])
    print(table)
    if not args.no_docs:
        replace_block(REPO / "docs/results.md", "bench:map_from_bag", table)


if __name__ == "__main__":
    main()
