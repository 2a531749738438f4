#!/usr/bin/env python3
"""Maps from drifting poses: the mapping poses of redkitchen and of a rendered room (exact poses)
perturbed as a VIO drifts, mapped with each `map build --refine-poses` mode (never; auto, the
default: the refined poses used when they explain the images at least 2.5x better; always),
against the map of the ground-truth poses.

Scenes: `redkitchen` scored against its KinectFusion poses (the depth camera's; its colour
images disagree with them as much as with a 3 % drift: the refinement cannot win against them);
`redkitchen-images` the same recording with poses that agree with its colour images
(``image_consistent_poses``: one bundle adjustment of all 1000 frames, the KinectFusion poses as
priors; its own map localizes its queries to 0.50 cm) as ground truth; `room` a rendered room.

The whole recording (all frames, capture order) gets a drifting trajectory
(`evaluation.drift.drifted_poses`: heading and position-bias random walks from the first frame,
scaled to DRIFT % of the distance travelled and HEADING deg/m); the mapping frames take their
drifted poses, the query frames keep the ground truth. Each map (`marepo-ros map build --no-head`,
depth) localizes the query frames with `points`; the estimated query trajectory is aligned to the
ground truth by one rotation and translation of whole poses (no scale;
`evaluation.drift.align_poses`) and scored.

    .venv/bin/python benchmarks/drift.py [--scenes redkitchen redkitchen-images room]
                     [--drift 1.5 3] [--heading 0.2] [--modes never auto always]
                     [--out runs/bench_drift] [--reuse]

Writes the table between the `bench:drift` markers of docs/results.md (not with --no-docs).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

import marepo_ros  # noqa: F401  (before torch: sets how its OpenMP threads wait)
import numpy as np

from marepo_ros import cli
from marepo_ros.evaluation.drift import align_poses, drift_summary, drifted_poses
from marepo_ros.evaluation.metrics import WRONG
from marepo_ros.geometry import pose_error, pose_from_quat
from marepo_ros.io.dataset import SceneDataset
from marepo_ros.io.mapfile import load_map
from marepo_ros.mapping.refine import RefineConfig
from marepo_ros.runtime.planar import map_up

from bench_docs import replace_block, run_stamp  # noqa: E402  (beside this script)

REPO = Path(__file__).resolve().parents[1]


def write_scene(data: Path, out: Path, poses: dict[str, np.ndarray]) -> Path:
    """A scene folder like ``data`` (images, depth, splits linked) whose poses/ are ``poses``."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("rgb", "depth", "splits", "intrinsics.txt", "depth_intrinsics.txt"):
        if (data / name).exists() and not (out / name).exists():
            os.symlink((data / name).resolve(), out / name)
    (out / "poses").mkdir(exist_ok=True)
    for name, T in poses.items():
        np.savetxt(out / "poses" / f"{name}.pose.txt", T)
    return out


def read_tum(path: Path) -> dict[float, np.ndarray]:
    """stamp -> 4x4 pose of a TUM file."""
    out = {}
    for line in path.read_text().split("\n"):
        if line.strip():
            v = [float(x) for x in line.split()]
            out[round(v[0], 4)] = pose_from_quat(np.array(v[1:4]), np.array(v[4:8]))
    return out


def aligned_scores(eval_dir: Path, n_queries: int) -> dict:
    """Query errors after aligning the estimated trajectory to the ground truth (one rigid
    transform of whole poses, ``align_poses``); n_wrong: published estimates then more than
    ``metrics.WRONG`` off."""
    est, gt = read_tum(eval_dir / "estimate.tum"), read_tum(eval_dir / "groundtruth.tum")
    stamps = sorted(set(est) & set(gt))
    E, G = np.stack([est[s] for s in stamps]), np.stack([gt[s] for s in stamps])
    A = align_poses(E, G)
    err = np.array([pose_error(A @ e, g) for e, g in zip(E, G)])
    ok5 = (err[:, 0] < 0.05) & (err[:, 1] < 5)
    ok10 = (err[:, 0] < 0.10) & (err[:, 1] < 5)
    moved, turned = pose_error(A, np.eye(4))
    rows = [r for r in csv.DictReader((eval_dir / "per_frame.csv").open()) if r["translation_cm"] != "inf"]
    min_confidence = json.loads((eval_dir / "metrics.json").read_text())["min_confidence"]
    published = np.array([float(r["confidence"]) >= min_confidence for r in rows])   # estimate.tum's order
    wrong = published & ((100 * err[:, 0] > WRONG[0]) | (err[:, 1] > WRONG[1]))
    return {"localized": len(stamps), "n_wrong": int(wrong.sum()), "median_cm": float(100 * np.median(err[:, 0])),
            "pct_5cm_5deg": 100 * ok5.sum() / n_queries, "pct_10cm_5deg": 100 * ok10.sum() / n_queries,
            "alignment_cm": 100 * moved, "alignment_deg": turned}


def room_scene(out: Path, seed: int = 101) -> Path:
    """A rendered room with exact poses (the suite's rendered room ``seed``: 120 mapping + 40
    query frames, 640x480, depth), rendered into ``out`` once."""
    from marepo_ros.synthetic.folders import write_scene_folder
    from marepo_ros.synthetic.scene import random_scene

    if not (out / "splits/query.txt").exists():
        write_scene_folder(random_scene(seed), out, n_mapping=120, n_query=40, with_depth=True,
                           width=640, height=480, seed=seed)
    return out


def pose_pairs(map_from_cam_N44: np.ndarray, sequential: int = 3, loops: int = 5,
               min_gap: int = 30, max_m: float = 0.3, max_deg: float = 20.0) -> np.ndarray:
    """(P, 2) frame pairs i < j to match for ``image_consistent_poses``: each frame with its next
    ``sequential`` frames, and with up to ``loops`` frames at least ``min_gap`` frames away whose
    camera is within ``max_m`` and looks within ``max_deg`` (nearest first): a recording at 30 Hz
    has its look-alikes next to it, so retrieval alone would pair no frames across a loop."""
    T = np.asarray(map_from_cam_N44)
    n = len(T)
    centre, axis = T[:, :3, 3], T[:, :3, 2]
    pairs = {(i, j) for i in range(n) for j in range(i + 1, min(n, i + sequential + 1))}
    for i in range(n):
        dist = np.linalg.norm(centre - centre[i], axis=1)
        near = ((np.abs(np.arange(n) - i) >= min_gap) & (dist <= max_m)
                & (axis @ axis[i] >= np.cos(np.radians(max_deg))))
        for j in np.nonzero(near)[0][np.argsort(dist[near])][:loops]:
            pairs.add((min(i, int(j)), max(i, int(j))))
    return np.array(sorted(pairs), np.int64).reshape(-1, 2)


def image_consistent_poses(data: Path, out: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Poses of every frame of ``data`` that agree with its colour images, as the SfM pseudo
    ground truth of Brachmann et al. (ICCV 2021) re-estimates 7-Scenes' depth-SLAM poses from its
    colour images: one bundle adjustment of all frames (capture order) with the given poses as
    priors (``refine.refine_keyframe_poses``), over the tracks of ``pose_pairs``. Cached in
    ``out`` (poses.npz). Returns name -> map_from_cam and the refinement report."""
    cache = out / "poses.npz"
    ds = SceneDataset(data)
    names = ds.names
    if cache.exists():
        saved = np.load(cache, allow_pickle=False)
        if list(saved["names"]) == names:
            return dict(zip(names, saved["poses"])), json.loads(str(saved["report"]))
    from marepo_ros.mapping.feature_map import FeatureMapConfig, lift_with_depth
    from marepo_ros.mapping.frames import posed_images_from_dataset
    from marepo_ros.mapping.refine import observation_arrays, refine_keyframe_poses
    from marepo_ros.mapping.tracks import build_tracks
    from marepo_ros.models.preprocess import to_grey
    from marepo_ros.models.xfeat import XFeatExtractor

    images = posed_images_from_dataset(ds, "all")
    fm = FeatureMapConfig()
    extractor = XFeatExtractor()
    feats, depth = [], []
    for n, im in enumerate(images):
        f = extractor.extract(to_grey(im.load_image()), top_k=1024, short_side=fm.short_side)
        d = im.load_depth()
        feats.append(f)
        depth.append(lift_with_depth(f.keypoints_N2.astype(np.float64), d, im.K, np.eye(4),
                                     fm.max_depth_jump)[:, 2] if d is not None
                     else np.full(len(f.keypoints_N2), np.nan))
        if n % 100 == 0:
            print(f"image-consistent poses: features {n}/{len(images)}", flush=True)
    given = np.stack([im.map_from_cam for im in images])
    Ks = np.stack([im.K for im in images])
    tracks = build_tracks(feats, Ks, pose_pairs(given))
    uv, depth_M = observation_arrays(tracks, feats, depth)
    refined = refine_keyframe_poses(tracks, uv, depth_M, given, Ks, RefineConfig())
    report = refined.report
    out.mkdir(parents=True, exist_ok=True)
    np.savez(cache, names=np.array(names), poses=refined.map_from_cam_K44, report=json.dumps(report))
    return dict(zip(names, refined.map_from_cam_K44)), report


MODE_TAGS = {"never": "", "auto": " refined", "always": " always"}   # run names (--reuse)


def drift_rows(label: str, data: Path, out: Path, args, earlier: dict, results: dict) -> list[str]:
    """Table rows of one scene: ground-truth and drifting mapping poses, each mapped with and
    without the pose refinement, the queries scored after rigid alignment."""
    ds = SceneDataset(data)
    names = ds.names
    truth = {n: ds.frame(n).map_from_cam for n in names}
    mapping = set(ds.split_names("mapping"))
    n_queries = len(ds.split_names("query"))
    gt_stack = np.stack([truth[n] for n in names])
    mapped = [i for i, n in enumerate(names) if n in mapping]
    up, _, _ = map_up("auto", gt_stack[mapped], np.eye(4))
    rows = []
    for rate in [0.0, *args.drift]:
        if rate == 0:
            poses, summary = truth, None
        else:
            drifted = drifted_poses(gt_stack, up, drift_per_m=rate / 100,
                                    heading_deg_per_m=args.heading, seed=args.seed)
            summary = drift_summary(drifted[mapped], gt_stack[mapped])
            poses = {n: (drifted[i] if n in mapping else truth[n]) for i, n in enumerate(names)}
        scene = write_scene(data, out / f"scene_{rate:g}", poses)
        for mode in args.modes:
            tag = f"{label} {rate:g}{MODE_TAGS[mode]}"
            stem = tag.replace(" ", "_")
            map_path, ev = out / f"map_{stem}.map", out / f"eval_{stem}"
            if args.reuse and tag in earlier and (ev / "metrics.json").exists():
                seconds = earlier[tag]["mapping_seconds"]
            else:
                t0 = time.time()
                if cli.main(["map", "build", str(scene), "--no-head", "--refine-poses", mode,
                             "--out", str(map_path)]) != 0:
                    raise SystemExit(f"map build {scene} failed")
                seconds = time.time() - t0
                if cli.main(["eval", str(scene), "--map", str(map_path), "--estimator", "points",
                             "--split", "query", "--out", str(ev)]) != 0:
                    raise SystemExit(f"eval of {map_path} failed")
            fm_stats = load_map(map_path).stats.get("feature_map", {})
            m = json.loads((ev / "metrics.json").read_text())
            s = aligned_scores(ev, n_queries)
            r = fm_stats.get("refinement") or {}
            results[tag] = {"drift": summary, "mapping_seconds": seconds, "refinement": r,
                            "metrics": m, "aligned": s}
            disagreement = (f"{r['before']['median_px']} / {r['before']['p90_px']} -> "
                            f"{r['after']['median_px']} / {r['after']['p90_px']} ({r['gain']}x)"
                            if r else "–")
            used = (f"{'yes' if r.get('applied') else 'no'} (`{mode}`"
                    f"{': gain under ' + str(r.get('min_gain', RefineConfig.min_gain)) + 'x' if mode == 'auto' and not r.get('applied') else ''})")
            rows.append(f"| {label} | {'ground truth' if rate == 0 else f'drift {rate:g} %'} | {used} | "
                        f"{summary['end_cm'] if summary else 0:.1f} cm ({summary['end_percent'] if summary else 0:.2f} %) | "
                        f"{disagreement} | {r.get('moved_cm_median', '–')} | {seconds:.0f} | "
                        f"{s['median_cm']:.2f} | {s['pct_5cm_5deg']:.1f} | {s['pct_10cm_5deg']:.1f} | "
                        f"{m['n_wrong_published']} / {m['n_published']} |")
            print(rows[-1], flush=True)
            (args.out / "drift.json").write_text(json.dumps(results, indent=1))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared/data/7scenes-redkitchen")
    ap.add_argument("--scenes", nargs="+", default=["redkitchen", "redkitchen-images", "room"],
                    choices=["redkitchen", "redkitchen-images", "room"],
                    help="redkitchen (--data, its KinectFusion poses), redkitchen-images (its poses "
                         "made to agree with its colour images, image_consistent_poses), room (a "
                         "rendered room with exact poses)")
    ap.add_argument("--drift", type=float, nargs="+", default=[1.5, 3.0], help="% of distance travelled")
    ap.add_argument("--heading", type=float, default=0.2, help="heading drift, deg per metre")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--modes", nargs="+", default=["never", "auto", "always"], choices=list(MODE_TAGS),
                    help="map build --refine-poses modes to compare")
    ap.add_argument("--out", type=Path, default=REPO / "runs/bench_drift")
    ap.add_argument("--no-docs", action="store_true")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse the maps and evaluations OUT holds from an earlier run (drift.json)")
    args = ap.parse_args()
    t_all = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    earlier = (json.loads((args.out / "drift.json").read_text())
               if args.reuse and (args.out / "drift.json").exists() else {})
    results, rows, consistent = {}, [], {}
    for label in args.scenes:
        if label == "redkitchen":
            data = args.data
        elif label == "redkitchen-images":
            poses, consistent[label] = image_consistent_poses(args.data, args.out / "redkitchen_images_poses")
            data = write_scene(args.data, args.out / "redkitchen_images_source", poses)
        else:
            data = room_scene(args.out / "room_source")
        rows += drift_rows(label, data, args.out / label, args, earlier, results)
    table = "\n".join([
        f"Depth maps, `points`; drift {args.heading:g} deg/m of heading plus the given % of the distance "
        f"travelled, seed {args.seed}; redkitchen: 250 queries, KinectFusion poses as ground truth; "
        "redkitchen-images: the same with poses that agree with the colour images as ground truth "
        "(one bundle adjustment of all 1000 frames with the KinectFusion poses as priors, "
        + (f"which moved them by {consistent['redkitchen-images']['moved_cm_median']} cm (median), "
           f"up to {consistent['redkitchen-images']['moved_cm_max']} cm and "
           f"{consistent['redkitchen-images']['turned_deg_max']}°; " if consistent else "")
        + "`image_consistent_poses`); "
        "room: a rendered room (the suite's seed 101, 120 mapping / 40 query frames) with exact poses. "
        "Refined poses used: `map build --refine-poses` mode, and whether the refined poses were used. "
        "Disagreement: reprojection error of the keyframes' feature tracks (median / 90th percentile px) "
        "with the given poses (points fitted to them) -> after the bundle adjustment, and the gain. "
        "Query errors after one rigid alignment of the estimated query trajectory to the ground truth "
        "(no scale, as evo's `--align`, but of whole poses: each pose's centre and the points 1 m "
        "along its axes; the centres alone turned a drifted map's queries by up to 6.7°).",
        "",
        "| scene | mapping poses | refined poses used | drift at the end | disagreement px (gain) | keyframes moved by the refinement, cm (median) | mapping s | median cm | 5cm/5° % | 10cm/5° % | wrong / published |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *rows, "", *(["Maps and evaluations reused from an earlier run (`--reuse`); mapping s as "
                      "measured then.", ""] if earlier else []),
        run_stamp(time.time() - t_all)])
    print(table)
    if not args.no_docs:
        replace_block(REPO / "docs/results.md", "bench:drift", table)


if __name__ == "__main__":
    main()
